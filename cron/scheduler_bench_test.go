package cron

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

const benchClass = "BenchCronJob"

// benchStorage opens a real store (fsync on) and a real SQLite database in
// a temp dir, and a registry with benchClass on queue default.
func benchStorage(b *testing.B, now func() time.Time) (*queue.Store, *data.DB, *lanes.Registry) {
	b.Helper()
	dir := b.TempDir()
	st, err := queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{Now: now})
	if err != nil {
		b.Fatal(err)
	}
	db, err := data.Open(context.Background(), filepath.Join(dir, "conveyor.db"), data.Options{Now: now, ReadConns: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		db.Close()
		st.Close()
	})
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		b.Fatal(err)
	}
	return st, db, reg
}

// BenchmarkScheduler1000 is the scheduler's cost with 1,000 entries, on a
// real store and database with fsync on, driven by a FakeClock.
//
//   - wakeup: all 1,000 entries are due every minute; one op is one
//     wake-up that decides, enqueues (one batch, one fsync) and records
//     (one SQLite transaction) 1,000 ticks.
//   - hour: 1,000 entries of assorted shapes and zones (every 5 or 15
//     minutes, hourly, every 2 hours, daily, weekdays, monthly); one op is
//     one hour of schedule, minute by minute.
func BenchmarkScheduler1000(b *testing.B) {
	b.Run("wakeup", func(b *testing.B) {
		entries := make([]Entry, 1000)
		for i := range entries {
			entries[i] = mustEntry(b, "* * * * *")
			entries[i].Name, entries[i].Class = fmt.Sprintf("entry-%04d", i), benchClass
		}
		r := benchScheduler(b, entries)
		b.ResetTimer()
		for b.Loop() {
			r.step(time.Minute)
		}
		b.StopTimer()
		h := r.s.Health()
		b.ReportMetric(float64(h.Fires)/float64(b.N), "fires/op")
		if h.Fires != uint64(b.N)*1000 {
			b.Fatalf("fired %d ticks in %d wake-ups", h.Fires, b.N)
		}
	})
	b.Run("hour", func(b *testing.B) {
		entries := benchEntries(b, 1000)
		for i := range entries {
			entries[i].Class = benchClass
		}
		r := benchScheduler(b, entries)
		var wakes uint64
		b.ResetTimer()
		for b.Loop() {
			for range 60 {
				r.step(time.Minute)
			}
		}
		b.StopTimer()
		r.s.mu.Lock()
		wakes = r.s.passes
		r.s.mu.Unlock()
		h := r.s.Health()
		b.ReportMetric(float64(h.Fires)/float64(b.N), "fires/hour")
		b.ReportMetric(float64(wakes)/float64(b.N), "wakeups/hour")
	})
}

type benchRig struct {
	b   *testing.B
	clk *FakeClock
	s   *Scheduler
}

func benchScheduler(b *testing.B, entries []Entry) *benchRig {
	b.Helper()
	clk := NewFakeClock(time.Date(2026, 5, 4, 0, 0, 30, 0, time.UTC))
	st, db, reg := benchStorage(b, clk.Now)
	reg.MustRegister(lanes.Class{Name: benchClass, Queue: "default", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })})
	s, err := NewScheduler(Options{Entries: entries, Store: st, DB: db, Registry: reg, Topology: lanes.DefaultTopology(), Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Stop(context.Background()) })
	r := &benchRig{b: b, clk: clk, s: s}
	r.step(0)
	return r
}

func (r *benchRig) step(d time.Duration) {
	r.clk.Advance(d)
	if err := r.s.Sync(context.Background(), r.clk.Now()); err != nil {
		r.b.Fatal(err)
	}
}

// BenchmarkTickLateness measures how late ticks fire while the queue runs
// a steady load: producers offer 20,000 no-op jobs a second (two of them,
// batches of 100 every 10 ms) to the default lane's 34 workers, fsync on,
// and ten entries fire every second ("* * * * * *") on the system clock.
// A tick's lateness is the time from its scheduled instant until its jobs
// (the ten entries share one batch) are durable in the queue; wake is the
// part before the scheduler's pass began. One op is one tick (a second):
// run it with -benchtime=120x.
func BenchmarkTickLateness(b *testing.B) {
	st, db, reg := benchStorage(b, nil)
	var processed atomic.Int64
	reg.MustRegister(lanes.Class{Name: "LoadJob", Queue: "default", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
		processed.Add(1)
		return nil
	})})
	reg.MustRegister(lanes.Class{Name: benchClass, Queue: "maintenance", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })})
	pool, err := lanes.New(st, reg, lanes.DefaultTopology(), lanes.Options{ShutdownTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if err := pool.Start(); err != nil {
		b.Fatal(err)
	}
	defer pool.Stop(context.Background())

	entries := make([]Entry, 10)
	for i := range entries {
		entries[i] = mustEntry(b, "* * * * * *")
		entries[i].Name, entries[i].Class = fmt.Sprintf("every-second-%d", i), benchClass
	}
	s, err := NewScheduler(Options{Entries: entries, Store: st, DB: db, Registry: reg, Topology: lanes.DefaultTopology()})
	if err != nil {
		b.Fatal(err)
	}
	var (
		late, wake []time.Duration // per tick; written under s.mu (onFire runs with it held)
		tick       = make(chan struct{}, 1)
	)
	s.onFire = func(entry string, t, firedAt time.Time) {
		if entry != entries[0].Name {
			return
		}
		late = append(late, firedAt.Sub(t))
		wake = append(wake, s.passFrom.Sub(t))
		select {
		case tick <- struct{}{}:
		default:
		}
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	args := json.RawMessage(`{"n":1}`)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]queue.NewJob, 100)
			for i := range batch {
				batch[i] = queue.NewJob{Class: "LoadJob", Queue: "default", Args: args}
			}
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if _, err := st.EnqueueMany(ctx, batch); err != nil && ctx.Err() == nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	// Let the load reach its pace before the scheduler starts.
	time.Sleep(2 * time.Second)
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	start, base := time.Now(), processed.Load()
	b.ResetTimer()
	for b.Loop() {
		<-tick
	}
	b.StopTimer()
	elapsed, done := time.Since(start), processed.Load()-base
	stopLoad()
	wg.Wait()
	s.Stop(context.Background())

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(late) == 0 {
		b.Fatal("no tick fired")
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(ds []time.Duration, p float64) float64 {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ms(ds[min(len(ds)-1, int(p*float64(len(ds))))])
	}
	b.ReportMetric(q(late, 0.5), "p50-ms")
	b.ReportMetric(q(late, 0.99), "p99-ms")
	b.ReportMetric(q(late, 1), "max-ms")
	b.ReportMetric(q(wake, 0.99), "wake-p99-ms")
	b.ReportMetric(float64(done)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(len(late)), "ticks")
	if s.stats.misses > 0 {
		b.Errorf("ticks were missed under load: %d missed ranges", s.stats.misses)
	}
}
