package data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"conveyor/internal/procstat"
	"conveyor/internal/testlog"
)

// collector records what OnFlush saw.
type collector struct {
	mu      sync.Mutex
	batches [][]*Failure
}

func (c *collector) onFlush(fs []*Failure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, append([]*Failure(nil), fs...))
}

func (c *collector) all() []*Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Failure
	for _, b := range c.batches {
		out = append(out, b...)
	}
	return out
}

func newWriter(t *testing.T, db *DB, opts FailureWriterOptions) *FailureWriter {
	t.Helper()
	w := NewFailureWriter(db, opts)
	t.Cleanup(func() {
		if err := w.Close(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("close writer: %v", err)
		}
	})
	return w
}

func TestFailureWriterBurst(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	var col collector
	w := newWriter(t, db, FailureWriterOptions{BatchSize: 100, OnFlush: col.onFlush})
	const producers, each = 4, 600
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, f := range genFailures(each, uint64(p+10), clk.Now()) {
				w.Add(f)
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Added != producers*each || st.Written != producers*each || st.Dropped != 0 || st.Failed != 0 || st.Pending != 0 {
		t.Fatalf("stats = %+v", st)
	}
	seen := map[int64]bool{}
	for _, b := range col.batches {
		if len(b) > 100 {
			t.Fatalf("batch of %d exceeds BatchSize", len(b))
		}
	}
	for _, f := range col.all() {
		if f.ID == 0 || seen[f.ID] {
			t.Fatalf("OnFlush saw id %d twice or unset", f.ID)
		}
		seen[f.ID] = true
	}
	if len(seen) != producers*each {
		t.Fatalf("OnFlush saw %d failures", len(seen))
	}
	if n, _, _ := db.CountFailures(t.Context(), FailureFilter{}); n != producers*each {
		t.Fatalf("%d failures stored", n)
	}
}

func TestFailureWriterDropsBeyondMaxPending(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w := newWriter(t, db, FailureWriterOptions{BatchSize: 5, MaxPending: 10, OnFlush: func([]*Failure) {
		once.Do(func() {
			close(entered)
			<-release // hold the writer inside its first OnFlush
		})
	}})
	fs := genFailures(16, 20, clk.Now())
	w.Add(fs[0])
	<-entered
	for _, f := range fs[1:] {
		w.Add(f)
	}
	if st := w.Stats(); st.Pending != 11 || st.Dropped != 5 || st.Added != 11 {
		close(release)
		t.Fatalf("while held: %+v, want 11 pending (10 waiting, 1 being written), 5 dropped", st)
	}
	select {
	case <-w.Lost(): // the drops were signalled
	default:
		t.Fatal("Lost did not signal the drops")
	}
	close(release)
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != 11 || st.Dropped != 5 || st.Pending != 0 {
		t.Fatalf("after release: %+v", st)
	}
	select {
	case <-w.Lost():
		t.Fatal("Lost signalled again with nothing lost since")
	default:
	}
}

func TestFailureWriterIsolatesInvalidFailures(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	var col collector
	w := newWriter(t, db, FailureWriterOptions{OnFlush: col.onFlush, Logger: testlog.New(t)})
	fs := genFailures(3, 21, clk.Now())
	fs[1].Kind = "cosmic-ray"
	for _, f := range fs {
		w.Add(f)
	}
	err := w.Flush(t.Context())
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "failures[0].Kind" {
		t.Fatalf("Flush = %v, want the FieldError of the invalid failure", err)
	}
	if st := w.Stats(); st.Written != 2 || st.Failed != 1 {
		t.Fatalf("stats = %+v", st)
	}
	select {
	case <-w.Lost():
	default:
		t.Fatal("Lost did not signal the failure that was not written")
	}
	if got := len(col.all()); got != 2 {
		t.Fatalf("OnFlush saw %d failures, want 2", got)
	}
	// The error was reported once.
	if err := w.Flush(t.Context()); err != nil {
		t.Fatalf("second Flush = %v", err)
	}
}

func TestFailureWriterCloseDrainsAndRefuses(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	w := NewFailureWriter(db, FailureWriterOptions{Linger: time.Hour}) // only Close makes it write
	for _, f := range genFailures(120, 22, clk.Now()) {
		w.Add(f)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	w.Add(genFailures(1, 23, clk.Now())[0])
	if st := w.Stats(); st.Written != 120 || st.Dropped != 1 || st.Pending != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if n, _, _ := db.CountFailures(t.Context(), FailureFilter{}); n != 120 {
		t.Fatalf("%d stored", n)
	}
}

func TestFailureWriterCloseGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	entered, release, abandoned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	w := NewFailureWriter(db, FailureWriterOptions{BatchSize: 1, OnFlush: func([]*Failure) {
		once.Do(func() { close(entered); <-release })
	}})
	w.onAbandon = func() { close(abandoned) }
	for _, f := range genFailures(4, 24, clk.Now()) {
		w.Add(f)
	}
	<-entered // the writer holds the first failure in OnFlush
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush(cancelled) = %v", err)
	}
	closed := make(chan error)
	go func() { closed <- w.Close(ctx) }()
	<-abandoned
	if st := w.Stats(); st.Failed != 3 || st.Pending != 1 {
		close(release)
		t.Fatalf("after giving up: %+v, want the 3 waiting failures failed and 1 being written", st)
	}
	close(release)
	if err := <-closed; !errors.Is(err, context.Canceled) {
		t.Fatalf("Close(cancelled) = %v", err)
	}
	if st := w.Stats(); st.Written != 1 || st.Failed != 3 {
		t.Fatalf("final stats = %+v", st)
	}
}

// BenchmarkFailureWriter measures how many failures a second the writer
// commits: a burst as fast as one producer can add, and a 10,000/s stream
// held for two seconds (reporting the largest backlog and any drops).
func BenchmarkFailureWriter(b *testing.B) {
	b.Run("burst", func(b *testing.B) {
		db, _ := setup(b)
		w := NewFailureWriter(db, FailureWriterOptions{})
		defer w.Close(b.Context())
		r := newBenchRand()
		const n = 50_000
		fs := make([]*Failure, n)
		var elapsed, cpu time.Duration
		var rows int
		for b.Loop() {
			for i := range fs {
				fs[i] = benchFailure(r, 0)
				fs[i].ID, fs[i].OccurredAt = 0, time.Now()
			}
			start, cpu0 := time.Now(), procstat.CPUTime()
			for _, f := range fs {
				w.Add(f)
			}
			if err := w.Flush(b.Context()); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
			cpu += procstat.CPUTime() - cpu0
			rows += n
		}
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		// CPU time is what the writer costs on a machine shared with other
		// work; rows per CPU-second is its capacity on one idle core.
		b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
		if st := w.Stats(); st.Dropped != 0 || st.Failed != 0 {
			b.Fatalf("stats = %+v", st)
		}
	})
	for _, interval := range []time.Duration{time.Nanosecond, DefaultFailureInterval} {
		b.Run(fmt.Sprintf("sustained-10k/interval=%s", interval), func(b *testing.B) {
			sustained(b, interval)
		})
	}
}

// sustained adds 10,000 failures a second for two seconds per iteration,
// and reports the largest backlog, the drops, and the CPU the process
// spent per failure (the writer's cost, plus the producer's).
func sustained(b *testing.B, interval time.Duration) {
	db, _ := setup(b)
	w := NewFailureWriter(db, FailureWriterOptions{Interval: interval})
	defer w.Close(b.Context())
	r := newBenchRand()
	var maxPending, rows int
	var cpu time.Duration
	for b.Loop() {
		cpu0 := procstat.CPUTime()
		start := time.Now()
		tick := time.NewTicker(time.Millisecond)
		sent := 0
		for time.Since(start) < 2*time.Second {
			<-tick.C
			due := int(time.Since(start).Seconds() * 10_000)
			for ; sent < due; sent++ {
				f := benchFailure(r, 0)
				f.ID, f.OccurredAt = 0, time.Now()
				w.Add(f)
			}
			maxPending = max(maxPending, w.Stats().Pending)
		}
		tick.Stop()
		if err := w.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		cpu += procstat.CPUTime() - cpu0
		rows += sent
	}
	st := w.Stats()
	b.ReportMetric(float64(maxPending), "max-pending")
	b.ReportMetric(float64(st.Dropped), "dropped")
	b.ReportMetric(float64(cpu.Microseconds())/float64(rows), "cpu-µs/row")
	if st.Dropped != 0 {
		b.Errorf("dropped %d at 10,000/s", st.Dropped)
	}
}

// TestFailureWriterHoldsFewErrorsAndCloseReportsOnlyItsOwn: write errors
// wait for the next Flush, a bounded number of them (a disk full for hours
// must not grow memory); Close does not report the ones that happened
// before it (they were logged and counted then), only its own.
func TestFailureWriterHoldsFewErrorsAndCloseReportsOnlyItsOwn(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	w := newWriter(t, db, FailureWriterOptions{Logger: testlog.New(t)})
	const bad = 3 * maxHeldErrors
	fs := genFailures(bad, 24, clk.Now())
	for _, f := range fs {
		f.Kind = "cosmic-ray"
		w.Add(f)
	}
	// Wait, without Flush, until the writer has been through them all.
	for {
		w.mu.Lock()
		done, ch := w.done, w.progress
		held := len(w.errs)
		w.mu.Unlock()
		if done == bad {
			if held != maxHeldErrors {
				t.Fatalf("%d errors held, want %d", held, maxHeldErrors)
			}
			break
		}
		<-ch
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatalf("Close = %v, want nil: the failed writes happened before it", err)
	}
	if st := w.Stats(); st.Failed != bad {
		t.Fatalf("stats = %+v", st)
	}
}
