package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/internal/procstat"
	"conveyor/lanes"
	"conveyor/queue"
)

// BenchmarkFanOut100k fans 100,000 accounts out with one orchestrator run
// and its continuations (batches of 100: 1,000 runs, each one fsynced
// commit of 100 per-account jobs and the next continuation), on a real
// bbolt file with fsync on and a real SQLite database. It reports the
// time, jobs enqueued per second and memory: bytes allocated per job,
// the heap in use at the end, and the process's peak RSS (which includes
// the setup: inserting the accounts).
//
//	go test -run '^$' -bench FanOut100k -benchtime 1x ./jobs/
func BenchmarkFanOut100k(b *testing.B) {
	const accounts = 100_000
	ctx := context.Background()
	dir := b.TempDir()
	log := slog.New(slog.DiscardHandler)
	clk := cron.NewFakeClock(time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC))
	db, err := data.Open(ctx, filepath.Join(dir, "conveyor.db"), data.Options{Now: clk.Now, Logger: log, ReadConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for start := 0; start < accounts; start += 10_000 {
		batch := make([]*data.Account, 10_000)
		for i := range batch {
			batch[i] = &data.Account{Username: fmt.Sprintf("bench%06d", start+i), AvatarSync: true}
		}
		if err := db.CreateAccounts(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		st, err := queue.Open(filepath.Join(dir, fmt.Sprintf("queue-%d.bolt", n)), queue.Options{Now: clk.Now, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		reg := lanes.NewRegistry()
		cat, err := New(Options{DB: db, Store: st, Registry: reg, Topology: lanes.DefaultTopology(), MediaDir: dir, Now: clk.Now, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		if err := cat.Register(); err != nil {
			b.Fatal(err)
		}
		cls, _ := reg.Lookup(EnqueueAvatarSync)
		tick := clk.Now()
		nj, _ := reg.NewJob(lanes.DefaultTopology(), lanes.JobRequest{Class: EnqueueAvatarSync, Context: map[string]string{
			cron.CtxTick: tick.Format(time.RFC3339), cron.CtxNext: tick.Add(24 * time.Hour).Format(time.RFC3339)}})
		res, _ := st.Enqueue(ctx, nj)
		job, _ := st.Get(res.ID)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()

		start := time.Now()
		runs := 0
		cursor := ""
		for job != nil {
			if err := cls.Handler.Perform(ctx, job); err != nil {
				b.Fatal(err)
			}
			runs++
			// The continuation, the next scheduled orchestrator job by due
			// time; the clock moves to when it falls due.
			next, err := st.List(queue.ListFilter{State: queue.StateScheduled, Class: EnqueueAvatarSync, Limit: 1, After: cursor})
			if err != nil {
				b.Fatal(err)
			}
			job = nil
			if len(next.Jobs) > 0 {
				job, cursor = next.Jobs[0], next.Next
				clk.Set(job.RunAt)
			}
		}
		took := time.Since(start)
		b.StopTimer()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		enqueued := st.Counts()[queue.StateScheduled] + st.Counts()[queue.StateReady] - int64(runs)
		if enqueued != accounts || runs != accounts/DefaultBatchSize {
			b.Fatalf("%d per-account jobs in %d runs, want %d in %d", enqueued, runs, accounts, accounts/DefaultBatchSize)
		}
		perSec := float64(accounts) / took.Seconds()
		b.ReportMetric(took.Seconds(), "s/fanout")
		b.ReportMetric(perSec, "jobs/s")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/accounts, "B-alloc/job")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(procstat.PeakRSS())/(1<<20), "MiB-peak-RSS")
		fmt.Printf("fan-out of %d accounts: %d runs in %v, %.0f jobs enqueued/s, %.0f bytes allocated per job, heap in use %.1f MiB, peak RSS %.1f MiB\n",
			accounts, runs, took.Round(time.Millisecond), perSec, float64(after.TotalAlloc-before.TotalAlloc)/accounts,
			float64(after.HeapInuse)/(1<<20), float64(procstat.PeakRSS())/(1<<20))
		st.Close()
		clk.Set(tick)
		b.StartTimer()
	}
}
