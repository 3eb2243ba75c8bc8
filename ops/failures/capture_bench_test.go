package failures

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/procstat"
	"conveyor/lanes"
	"conveyor/queue"
)

// burstJobs is the size of one burst in BenchmarkFailureBurst.
const burstJobs = 50_000

// BenchmarkFailureBurst runs the real lanes (the default topology's 34
// workers, fsync on) through a backlog of burstJobs jobs on the default
// queue: NoopJob (the no-failure rate), FailJob without the capture
// middleware, FailJob with it (failures written to SQLite at up to
// DefaultFailureWriteRate a second, issues upserted) and FailJob with an
// unpaced writer. It reports the lanes' rate (jobs/s), the process's CPU
// per job while the lanes ran, and, with capture, how fast failures were
// recorded (failures/s: from the start of the burst until the last one was
// committed) and the lanes' rate as a share of the no-failure rate
// (noop_ratio) and of the failing rate without capture (fail_ratio).
// "mixed" is the burst the issue describes: one job in eight fails among
// jobs that succeed (at ~150,000 jobs/s, about 19,000 failing jobs a
// second); "mixed" alone is the queue's own cost of failing, "mixed+capture"
// records the failures as the app does (the writer holds them while the
// lanes are busy, failures.LanesBusy), "mixed+capture-steady" with a writer
// that never holds. Run it with -benchtime=1x (each iteration is a whole
// burst; ns/op includes setting it up):
//
//	go test -run '^$' -bench BenchmarkFailureBurst -benchtime=1x ./ops/failures
func BenchmarkFailureBurst(b *testing.B) {
	runBursts(b, burstJobs, []burstCase{{"noop", 0}, {"fail", 0}, {"fail+capture", DefaultFailureWriteRate},
		{"fail+capture-unpaced", 0}, {"mixed", 0}, {"mixed+capture", DefaultFailureWriteRate},
		{"mixed+capture-steady", DefaultFailureWriteRate}})
}

// BenchmarkFailureBurstSustained is BenchmarkFailureBurst's mixed burst
// made ten times longer (500,000 jobs, several seconds): longer than the
// writer holds failures while the lanes are busy (BusyInterval), so that
// it shows the lanes' rate while the writer writes, at its paced rate,
// during the burst.
//
//	go test -run '^$' -bench BenchmarkFailureBurstSustained -benchtime=1x ./ops/failures
func BenchmarkFailureBurstSustained(b *testing.B) {
	runBursts(b, 10*burstJobs, []burstCase{{"noop", 0}, {"mixed", 0}, {"mixed+capture", DefaultFailureWriteRate}})
}

// burstCase is one burst of a benchmark: its mode (noop, fail or mixed,
// +capture, -unpaced, -steady) and the writer's MaxRate.
type burstCase struct {
	name      string
	writeRate int
}

// runBursts runs each case as a sub-benchmark of bursts of n jobs and
// reports its rates; the ratios compare with the "noop" and "fail" cases
// run before it.
func runBursts(b *testing.B, n int, cases []burstCase) {
	var noopRate, failRate float64
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var r burstResult
			for range b.N {
				r = failureBurst(b, c.name, c.writeRate, n)
			}
			b.ReportMetric(r.rate, "jobs/s")
			b.ReportMetric(r.cpuPerJob, "cpu-µs/job")
			switch c.name {
			case "noop":
				noopRate = r.rate
				return
			case "fail":
				failRate = r.rate
				return
			}
			if noopRate > 0 {
				b.ReportMetric(r.rate/noopRate, "noop_ratio")
			}
			if failRate > 0 && strings.HasPrefix(c.name, "fail") {
				b.ReportMetric(r.rate/failRate, "fail_ratio")
			}
			if r.recorded > 0 {
				b.ReportMetric(r.recorded, "failures/s")
			}
		})
	}
}

// burstResult is what one burst measured.
type burstResult struct {
	rate      float64 // jobs/s through the lanes
	recorded  float64 // failures/s recorded, with capture
	cpuPerJob float64 // the process's CPU µs per job while the lanes ran
}

// failureBurst runs one burst of n jobs.
func failureBurst(b *testing.B, mode string, writeRate, n int) burstResult {
	ctx := context.WithoutCancel(b.Context())
	store, db := benchStores(b, n, false)
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		b.Fatal(err)
	}
	tracker, err := NewTracker(TrackerOptions{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	defer tracker.Close()
	var busy atomic.Pointer[func() bool] // set once the pool exists
	wopts := data.FailureWriterOptions{OnFlush: tracker.RecordFailures, MaxRate: writeRate}
	if mode == "mixed+capture" { // as the app: hold while busy, up to half the queue's dead-job limit
		wopts.BusyHold = queue.DefaultDeadLimit / 2
		wopts.Busy = func() bool {
			if f := busy.Load(); f != nil {
				return (*f)()
			}
			return false
		}
	}
	writer := data.NewFailureWriter(db, wopts)
	defer writer.Close(ctx)
	capture, err := NewCapture(CaptureOptions{Writer: writer, DB: db, Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close(ctx)

	failing := enqueueBurst(b, store, n, mode)
	opts := lanes.Options{Retryable: RetryableError}
	capturing := strings.Contains(mode, "+capture")
	if capturing {
		opts.Middleware = []lanes.Middleware{capture.Middleware()}
	}
	pool, err := lanes.New(store, reg, lanes.DefaultTopology(), opts)
	if err != nil {
		b.Fatal(err)
	}
	lanesBusy := LanesBusy(pool, 0)
	busy.Store(&lanesBusy)
	start, cpu0 := time.Now(), procstat.CPUTime()
	runLanes(b, store, pool, n)
	lanesTook, lanesCPU := time.Since(start), procstat.CPUTime()-cpu0
	if err := writer.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	recordTook := time.Since(start)
	r := burstResult{rate: float64(n) / lanesTook.Seconds(), cpuPerJob: float64(lanesCPU.Microseconds()) / float64(n)}
	if capturing {
		st := writer.Stats()
		if st.Written != uint64(failing) || st.Dropped != 0 {
			b.Fatalf("writer %+v: want all %d failures written", st, failing)
		}
		r.recorded = float64(failing) / recordTook.Seconds()
	}
	return r
}

// benchStores opens a queue that keeps 2n finished jobs (fsync on unless
// noSync) and a database, in a temp dir, closed when b ends.
func benchStores(b *testing.B, n int, noSync bool) (*queue.Store, *data.DB) {
	dir := b.TempDir()
	store, err := queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{DeadLimit: 2 * n, DoneLimit: 2 * n, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	db, err := data.Open(context.WithoutCancel(b.Context()), filepath.Join(dir, "conveyor.db"), data.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return store, db
}

// enqueueBurst enqueues n jobs with max_attempts 1 on the default queue,
// in batches of 1,000: all NoopJob (mode noop), all FailJob (fail…) or one
// FailJob in eight (mixed…). It returns how many fail.
func enqueueBurst(b *testing.B, store *queue.Store, n int, mode string) (failing int) {
	failArgs, noopArgs := json.RawMessage(`{"kind":"transient","message":"upstream 503 for account 42"}`), json.RawMessage(`{"account_id":42}`)
	batch := make([]queue.NewJob, 0, 1000)
	for i := 0; i < n; i += cap(batch) {
		batch = batch[:0]
		for k := range min(cap(batch), n-i) {
			class, args := lanes.FailJob, failArgs
			if mode == "noop" || (strings.HasPrefix(mode, "mixed") && (i+k)%8 != 0) {
				class, args = lanes.NoopJob, noopArgs
			} else {
				failing++
			}
			batch = append(batch, queue.NewJob{Class: class, Queue: "default", Args: args, MaxAttempts: 1})
		}
		if _, err := store.EnqueueMany(context.WithoutCancel(b.Context()), batch); err != nil {
			b.Fatal(err)
		}
	}
	return failing
}

// runLanes starts pool, waits until n jobs are done or dead, and stops it.
func runLanes(b *testing.B, store *queue.Store, pool *lanes.Pool, n int) {
	sub := store.Subscribe()
	defer sub.Close()
	if err := pool.Start(); err != nil {
		b.Fatal(err)
	}
	for c := store.Counts(); c[queue.StateDone]+c[queue.StateDead] < int64(n); c = store.Counts() {
		<-sub.C
	}
	if err := pool.Stop(context.WithoutCancel(b.Context())); err != nil {
		b.Fatal(err)
	}
}
