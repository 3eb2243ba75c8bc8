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
