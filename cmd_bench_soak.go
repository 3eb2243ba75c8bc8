package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"conveyor/lanes"
	"conveyor/queue"
)

// The soak phase checks that the speed holds for hours, not for a burst: it
// offers jobs at half the measured maximum rate for --duration, 1 job in 20
// failing (retried once after a second, then dead), with retention active from
// the first seconds (done is kept to soakDoneLimit, dead to soakDeadLimit) and
// a snapshot of the store every minute. Every 10 s it records the window's
// enqueue-to-start latency (p50, p99, max), throughput, RSS, the queue file's
// live and allocated sizes and its longest commit, and at the end judges:
// every minute's p99 within 2× of the first minute's, RSS and live size flat
// (the last minute within 25% + 8 MB of the first), no commit over 100 ms.

// soakConfig holds the soak's flags.
type soakConfig struct {
	Duration time.Duration
	CSV      string
	Rate     float64
}

const (
	soakWindow     = 10 * time.Second
	soakDoneLimit  = 20_000
	soakDeadLimit  = 2_000
	soakFailEvery  = 20
	soakTick       = 10 * time.Millisecond
	soakSnapEvery  = time.Minute
	soakMaxCommit  = 100 * time.Millisecond
	soakFailClass  = "BenchFlakyJob"
	soakCalibrateN = 50_000
)

// soakSample is one window of the soak.
type soakSample struct {
	At           time.Duration `json:"at_s"`
	ProcessedPS  float64       `json:"processed_per_s"`
	P50Ms        float64       `json:"p50_ms"`
	P99Ms        float64       `json:"p99_ms"`
	MaxMs        float64       `json:"max_ms"`
	RSSMB        float64       `json:"rss_mb"`
	LiveMB       float64       `json:"file_live_mb"`
	AllocatedMB  float64       `json:"file_allocated_mb"`
	MaxCommitMs  float64       `json:"max_commit_ms"`
	SnapshotMs   float64       `json:"snapshot_ms"`
	Done, Dead   int64
	Ready, Retry int64
}

// soakResult is the soak's curve and verdict.
type soakResult struct {
	Rate        float64      `json:"rate_per_s"`
	MaxRate     float64      `json:"measured_max_per_s"`
	Duration    float64      `json:"duration_s"`
	Samples     []soakSample `json:"samples"`
	FirstP99Ms  float64      `json:"first_minute_p99_ms"`
	WorstP99Ms  float64      `json:"worst_minute_p99_ms"`
	RSSFirstMB  float64      `json:"rss_first_minute_mb"`
	RSSLastMB   float64      `json:"rss_last_minute_mb"`
	LiveFirstMB float64      `json:"live_first_minute_mb"`
	LiveLastMB  float64      `json:"live_last_minute_mb"`
	MaxCommitMs float64      `json:"max_commit_ms"`
	Verdicts    []string     `json:"verdicts"`
	Held        bool         `json:"held"`
}

func (r *soakResult) print(w io.Writer) {
	fmt.Fprintf(w, "soak: %.0f s at %.0f jobs/s (half the measured %.0f), 1 in %d failing, done kept to %d, a snapshot a minute\n",
		r.Duration, r.Rate, r.MaxRate, soakFailEvery, soakDoneLimit)
	fmt.Fprintf(w, "soak: enqueue-to-start p99 first minute %.2f ms, worst minute %.2f ms\n", r.FirstP99Ms, r.WorstP99Ms)
	fmt.Fprintf(w, "soak: rss %.1f → %.1f MB, live file %.1f → %.1f MB (first → last minute); longest commit %.1f ms\n",
		r.RSSFirstMB, r.RSSLastMB, r.LiveFirstMB, r.LiveLastMB, r.MaxCommitMs)
	for _, v := range r.Verdicts {
		fmt.Fprintln(w, "soak:", v)
	}
}

func runSoak(ctx context.Context, bc benchConfig, log *slog.Logger, progress func(string, ...any)) (*soakResult, error) {
	topo := lanes.DefaultTopology()
	res := &soakResult{Rate: bc.Soak.Rate}
	if res.Rate <= 0 {
		// Calibrate: the processing rate of a batch of no-op jobs.
		r, err := newBenchRig(bc.Dir, topo, log)
		if err != nil {
			return nil, err
		}
		progress("soak: measuring the maximum rate with %d jobs", soakCalibrateN)
		if err := enqueueBench(ctx, r.store, soakCalibrateN, 1000, 2, topo.Queues(), false); err != nil {
			r.close()
			return nil, err
		}
		start := time.Now()
		if err := r.pool.Start(); err != nil {
			r.close()
			return nil, err
		}
		err = r.waitDone(ctx, soakCalibrateN)
		res.MaxRate = soakCalibrateN / time.Since(start).Seconds()
		r.close()
		if err != nil {
			return nil, err
		}
		res.Rate = res.MaxRate / 2
	}

	dir, err := os.MkdirTemp(bc.Dir, "conveyor-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := queue.Open(filepath.Join(dir, queueFile), queue.Options{Logger: log, DoneLimit: soakDoneLimit, DeadLimit: soakDeadLimit})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var mu sync.Mutex
	var lat []time.Duration
	var processed atomic.Int64
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		return nil, err
	}
	record := func(j *queue.Job) (benchArgs, error) {
		started := time.Now()
		processed.Add(1)
		var a benchArgs
		if err := json.Unmarshal(j.Args, &a); err != nil {
			return a, err
		}
		if j.Attempt == 1 {
			mu.Lock()
			lat = append(lat, started.Sub(time.Unix(0, a.T)))
			mu.Unlock()
		}
		return a, nil
	}
	err = errors.Join(
		reg.Register(lanes.Class{Name: benchClass, Queue: "default", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(_ context.Context, j *queue.Job) error {
			_, err := record(j)
			return err
		})}),
		reg.Register(lanes.Class{Name: soakFailClass, Queue: "default", Args: lanes.FreeForm, MaxAttempts: 2,
			Backoff: func(int) time.Duration { return time.Second },
			Handler: lanes.HandlerFunc(func(_ context.Context, j *queue.Job) error {
				if _, err := record(j); err != nil {
					return err
				}
				return errors.New("soak: fails on purpose")
			})}),
	)
	if err != nil {
		return nil, err
	}
	pool, err := lanes.New(store, reg, topo, lanes.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	if err := pool.Start(); err != nil {
		return nil, err
	}
	defer pool.Stop(context.WithoutCancel(ctx))

	var csvw *csv.Writer
	if bc.Soak.CSV != "" {
		f, err := os.Create(bc.Soak.CSV)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		csvw = csv.NewWriter(f)
		csvw.Write([]string{"at_s", "processed_per_s", "p50_ms", "p99_ms", "max_ms", "rss_mb", "file_live_mb",
			"file_allocated_mb", "max_commit_ms", "snapshot_ms", "done", "dead", "ready", "retry"})
	}

	progress("soak: %.0f jobs/s for %s (1 in %d failing, done kept to %d, a snapshot a minute)", res.Rate, bc.Soak.Duration, soakFailEvery, soakDoneLimit)
	sctx, cancel := context.WithTimeout(ctx, bc.Soak.Duration)
	defer cancel()
	// The load: every 10 ms a batch of rate/100 jobs, each stamped with the
	// moment it was offered.
	var loadErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(soakTick)
		defer tick.Stop()
		per := res.Rate * soakTick.Seconds()
		owed, n := 0.0, 0
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			owed += per
			k := int(owed)
			owed -= float64(k)
			now := time.Now()
			batch := make([]queue.NewJob, k)
			for i := range batch {
				class := benchClass
				if n++; n%soakFailEvery == 0 {
					class = soakFailClass
				}
				args, _ := json.Marshal(benchArgs{T: now.UnixNano(), P: benchPad})
				batch[i] = queue.NewJob{Class: class, Queue: "default", Args: args, MaxAttempts: 2}
			}
			if _, err := store.EnqueueMany(sctx, batch); err != nil && sctx.Err() == nil {
				loadErr.CompareAndSwap(nil, err)
				return
			}
		}
	}()
	// Snapshots, one a minute, to a file beside the store.
	var snapNanos atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(soakSnapEvery)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			f, err := os.Create(filepath.Join(dir, "snapshot.bolt"))
			if err != nil {
				loadErr.CompareAndSwap(nil, err)
				return
			}
			start := time.Now()
			_, err = store.Backup(sctx, f)
			f.Close()
			if err != nil && sctx.Err() == nil {
				loadErr.CompareAndSwap(nil, err)
				return
			}
			snapNanos.Store(int64(time.Since(start)))
		}
	}()

	start := time.Now()
	win := time.NewTicker(soakWindow)
	defer win.Stop()
	store.TakeMaxCommit()
	last := start
	for sctx.Err() == nil {
		select {
		case <-sctx.Done():
		case <-win.C:
		}
		if time.Since(last) < soakWindow/2 {
			break // the end came right after a window: no sliver of one
		}
		elapsed := time.Since(last)
		last = time.Now()
		mu.Lock()
		w := lat
		lat = nil
		mu.Unlock()
		counts := store.Counts()
		fs := store.FileStats()
		s := soakSample{
			At:          time.Since(start).Round(time.Second),
			ProcessedPS: float64(processed.Swap(0)) / elapsed.Seconds(),
			P50Ms:       ms(pct(w, 50)), P99Ms: ms(pct(w, 99)), MaxMs: ms(pct(w, 100)),
			RSSMB:  rssMB(),
			LiveMB: float64(fs.Live) / (1 << 20), AllocatedMB: float64(fs.Allocated) / (1 << 20),
			MaxCommitMs: ms(store.TakeMaxCommit()), SnapshotMs: ms(time.Duration(snapNanos.Load())),
			Done: counts[queue.StateDone], Dead: counts[queue.StateDead], Ready: counts[queue.StateReady], Retry: counts[queue.StateRetry],
		}
		res.Samples = append(res.Samples, s)
		progress("soak: %4.0f s: %6.0f jobs/s, p99 %.2f ms, rss %.1f MB, live %.1f MB, longest commit %.1f ms",
			s.At.Seconds(), s.ProcessedPS, s.P99Ms, s.RSSMB, s.LiveMB, s.MaxCommitMs)
		if csvw != nil {
			f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
			csvw.Write([]string{f(s.At.Seconds()), f(s.ProcessedPS), f(s.P50Ms), f(s.P99Ms), f(s.MaxMs), f(s.RSSMB), f(s.LiveMB),
				f(s.AllocatedMB), f(s.MaxCommitMs), f(s.SnapshotMs), strconv.FormatInt(s.Done, 10), strconv.FormatInt(s.Dead, 10),
				strconv.FormatInt(s.Ready, 10), strconv.FormatInt(s.Retry, 10)})
			csvw.Flush()
		}
	}
	cancel()
	wg.Wait()
	if err, _ := loadErr.Load().(error); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start).Seconds()
	res.judge()
	return res, nil
}

// judge computes the per-minute figures and the verdicts.
func (r *soakResult) judge() {
	perMin := int(time.Minute / soakWindow)
	if len(r.Samples) < 2*perMin {
		r.Verdicts = append(r.Verdicts, "too short to judge (at least 2 minutes)")
		return
	}
	minute := func(i int) []soakSample { return r.Samples[i*perMin : (i+1)*perMin] }
	p99 := func(ss []soakSample) float64 { // the worst window's p99 in the minute
		m := 0.0
		for _, s := range ss {
			m = max(m, s.P99Ms)
		}
		return m
	}
	last := func(ss []soakSample) soakSample { return ss[len(ss)-1] }
	n := len(r.Samples) / perMin
	r.FirstP99Ms = p99(minute(0))
	r.RSSFirstMB, r.LiveFirstMB = last(minute(0)).RSSMB, last(minute(0)).LiveMB
	r.RSSLastMB, r.LiveLastMB = last(minute(n-1)).RSSMB, last(minute(n-1)).LiveMB
	for i := range n {
		r.WorstP99Ms = max(r.WorstP99Ms, p99(minute(i)))
	}
	for _, s := range r.Samples {
		r.MaxCommitMs = max(r.MaxCommitMs, s.MaxCommitMs)
	}
	flat := func(first, last float64) bool { return last <= first*1.25+8 }
	r.Held = true
	check := func(ok bool, format string, a ...any) {
		verdict := "held: "
		if !ok {
			verdict, r.Held = "NOT held: ", false
		}
		r.Verdicts = append(r.Verdicts, verdict+fmt.Sprintf(format, a...))
	}
	check(r.WorstP99Ms <= 2*r.FirstP99Ms, "every minute's p99 within 2× of the first minute's (%.2f ≤ 2 × %.2f ms)", r.WorstP99Ms, r.FirstP99Ms)
	check(flat(r.RSSFirstMB, r.RSSLastMB), "rss flat (%.1f → %.1f MB)", r.RSSFirstMB, r.RSSLastMB)
	check(flat(r.LiveFirstMB, r.LiveLastMB), "live file size flat (%.1f → %.1f MB)", r.LiveFirstMB, r.LiveLastMB)
	check(r.MaxCommitMs <= ms(soakMaxCommit), "no commit over %v (longest %.1f ms)", soakMaxCommit, r.MaxCommitMs)
}

// rssMB reads the process's resident set now (VmRSS).
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "VmRSS: %f kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}
