package data

import (
	"sync"
	"testing"
	"time"
)

// TestFailureWriterMaxRate: with MaxRate the writer pauses after each batch
// for the rest of the batch's share of a second, and writes everything.
func TestFailureWriterMaxRate(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	var (
		mu     sync.Mutex
		pauses []time.Duration
	)
	w := newWriter(t, db, FailureWriterOptions{BatchSize: 100, MaxRate: 10})
	w.pause = func(d time.Duration, _ <-chan struct{}) {
		mu.Lock()
		pauses = append(pauses, d)
		mu.Unlock()
	}
	for _, f := range genFailures(250, 3, clk.Now()) {
		w.Add(f)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 250 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pauses) == 0 {
		t.Fatal("no pause")
	}
	// A batch of k failures at 10 a second pauses for at most k/10 s.
	for _, d := range pauses {
		if d <= 0 || d > 10*time.Second {
			t.Errorf("pause %v", d)
		}
	}
}

// TestFailureWriterNoRateNoPause: without MaxRate the writer never pauses.
func TestFailureWriterNoRateNoPause(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	w := newWriter(t, db, FailureWriterOptions{BatchSize: 10})
	w.pause = func(time.Duration, <-chan struct{}) { t.Error("paused without MaxRate") }
	for _, f := range genFailures(30, 4, clk.Now()) {
		w.Add(f)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFailureWriterHoldsWhileBusy: while Busy says the lanes are busy, the
// writer holds failures (even full batches) until BusyHold of them wait,
// then writes them all; Flush cuts a hold short.
func TestFailureWriterHoldsWhileBusy(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	asked := make(chan struct{}, 100)
	batches := make(chan int, 100)
	w := newWriter(t, db, FailureWriterOptions{BatchSize: 2, BusyHold: 5, BusyInterval: time.Hour, Interval: time.Hour,
		Busy:    func() bool { asked <- struct{}{}; return true },
		OnFlush: func(fs []*Failure) { batches <- len(fs) }})
	fs := genFailures(7, 5, clk.Now())
	for _, f := range fs[:4] {
		w.Add(f)
	}
	<-asked // the writer has seen the failures and asked: it holds them
	if st := w.Stats(); st.Written != 0 || st.Pending != 4 {
		t.Fatalf("while busy with 4 waiting: %+v, want none written", st)
	}
	w.Add(fs[4]) // BusyHold reached: all five are written, two at a time
	var sizes []int
	for got := 0; got < 5; {
		n := <-batches
		sizes = append(sizes, n)
		got += n
	}
	if len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 || sizes[2] != 1 {
		t.Errorf("batches %v, want [2 2 1]", sizes)
	}
	// Held again; a Flush writes them at once.
	w.Add(fs[5])
	w.Add(fs[6])
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 7 || st.Pending != 0 {
		t.Errorf("after Flush: %+v", st)
	}
}
