package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/memory"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"conveyor/data"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// The dashboard's figures on a big history: 1,000,000 jobs done and
// 100,000 failures, built once and cached under os.TempDir(). Run with
//
//	go test -run '^$' -bench 'Dashboard' -benchtime 50x .
//
// Each sub-benchmark prints the median and the 90th percentile of its
// requests (ms), over the real HTTP server of the whole app.

const (
	figJobs     = 1_000_000
	figFailures = 100_000
	figGen      = 2 // bump when the generated data changes
	figDead     = 10_000
)

// figApp starts the app on the cached big data directory, building it on
// first use.
func figApp(b *testing.B) *figLive {
	b.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("conveyor-bench-dashboard-g%d-j%d-f%d", figGen, figJobs, figFailures))
	built := filepath.Join(dir, "built")
	if _, err := os.Stat(built); err != nil {
		os.RemoveAll(dir)
		start := time.Now()
		l := startFigApp(b, dir)
		buildFigures(b, l)
		l.stop()
		if err := os.WriteFile(built, []byte(time.Now().UTC().Format(time.RFC3339)), 0o600); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %s in %s", dir, time.Since(start).Round(time.Second))
	}
	l := startFigApp(b, dir)
	b.Cleanup(l.stop)
	return l
}

// figLive is a liveApp whose stop is called by the benchmark.
type figLive struct {
	*liveApp
	tb   testing.TB
	once sync.Once
}

func (l *figLive) stop() {
	l.once.Do(func() {
		if err := l.a.stop(context.Background()); err != nil {
			l.tb.Errorf("stop: %v", err)
		}
	})
}

func startFigApp(b *testing.B, dir string) *figLive {
	b.Helper()
	getenv := envFunc("CONVEYOR_TOKEN=" + testToken)
	st, err := serveSettings([]string{"--data", dir, "--listen", "127.0.0.1:0", "--replica", "off"}, getenv, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	st.Queue.DoneLimit = 2 * figJobs
	st.Queue.DeadLimit = figFailures
	st.ShutdownTimeout = time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := newApp(context.Background(), st, log, io.Discard, getenv)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.start(context.Background()); err != nil {
		a.stop(context.Background())
		b.Fatal(err)
	}
	return &figLive{liveApp: &liveApp{a: a, base: "http://" + a.addr()}, tb: b}
}

// buildFigures runs 1,000,000 jobs through the lanes (they stay in the
// done history) and writes 100,000 failures of the dead ones' kind.
func buildFigures(b *testing.B, l *figLive) {
	ctx := context.Background()
	sub := l.a.store.Subscribe()
	defer sub.Close()
	const batch = 5000
	for n := 0; n < figJobs; n += batch {
		jobs := make([]queue.NewJob, batch)
		for i := range jobs {
			jobs[i] = queue.NewJob{Class: "NoopJob", Queue: "default", Args: json.RawMessage(fmt.Sprintf(`{"n":%d,"account_id":%d}`, n+i, (n+i)%500))}
		}
		if _, err := l.a.store.EnqueueMany(ctx, jobs); err != nil {
			b.Fatal(err)
		}
		for l.a.store.Counts()[queue.StateReady] > 4*batch {
			<-sub.C
		}
	}
	for l.a.store.Counts()[queue.StateDone] < figJobs {
		<-sub.C
	}
	// Dead jobs through the real failure pipeline: captured failures and
	// their issues.
	for n := 0; n < figDead; n += batch {
		jobs := make([]queue.NewJob, batch)
		for i := range jobs {
			msg := []string{"503 from bridge", "429 Too Many Requests", "connection refused"}[(n+i)%3]
			jobs[i] = queue.NewJob{Class: "FailJob", Queue: "sync", MaxAttempts: 1,
				Args: json.RawMessage(fmt.Sprintf(`{"message":"%s for account %d"}`, msg, (n+i)%500))}
		}
		if _, err := l.a.store.EnqueueMany(ctx, jobs); err != nil {
			b.Fatal(err)
		}
	}
	for l.a.store.Counts()[queue.StateDead] < figDead {
		<-sub.C
	}
	if err := l.a.failures.capture.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err := l.a.failures.writer.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	kinds := []fault.Kind{fault.Transient, fault.Runtime, fault.Authentication}
	queues := []string{"sync", "profiles", "post_downloads", "messages", "default"}
	classes := []string{"SyncAccountJob", "ProfileRefreshJob", "DownloadPostJob", "SendMessageJob", "NoopJob"}
	errs := []string{"503 from bridge", "429 Too Many Requests", "connection refused", "context deadline exceeded", "401 login required"}
	now := time.Now().UTC()
	fs := make([]*data.Failure, 0, 2000)
	for i := range figFailures - figDead {
		k := i % len(queues)
		fs = append(fs, &data.Failure{JobID: uint64(i + 1), Class: classes[k], Queue: queues[k], Kind: kinds[i%len(kinds)],
			Retryable: kinds[i%len(kinds)] != fault.Authentication, Attempt: 1 + i%5,
			OccurredAt: now.Add(-time.Duration(figFailures-i) * 20 * time.Second), ErrorClass: "HTTPError",
			ErrorMessage: fmt.Sprintf("%s (account %d)", errs[i%len(errs)], i%500), AccountID: int64(i%500 + 1),
			Fingerprint: fmt.Sprintf("fp-%d-%d", k, i%len(errs)), Args: json.RawMessage(fmt.Sprintf(`{"account_id":%d}`, i%500+1))})
		if len(fs) == cap(fs) {
			if err := l.a.storage.db.InsertFailures(ctx, fs); err != nil {
				b.Fatal(err)
			}
			fs = fs[:0]
		}
	}
}

// timed runs get b.N times and reports the median and p90 in ms.
func timed(b *testing.B, get func() error) {
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := get(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
	b.ReportMetric(ms(ds[len(ds)*9/10]), "p90-ms")
	b.ReportMetric(0, "ns/op")
}

// getOK fetches a path with the token and checks the status.
func getOK(base, path string) (int, error) {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %d", path, resp.StatusCode)
	}
	return int(n), nil
}

// BenchmarkDashboardBigHistory times what an operator opens first, with
// 1,000,000 jobs in the history and 100,000 failures.
func BenchmarkDashboardBigHistory(b *testing.B) {
	l := figApp(b)
	counts := l.a.store.Counts()
	total, _, err := l.a.storage.db.CountFailures(context.Background(), data.FailureFilter{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("history: %d done, %d dead; failures: %d", counts[queue.StateDone], counts[queue.StateDead], total)
	// A job whose id some failures carry: the job page joins them.
	var job uint64 = figFailures - 5
	for _, c := range []struct{ name, path string }{
		{"snapshot_api", "/api/v1/dashboard"},
		{"dashboard_page", "/admin/background_jobs"},
		{"failures_first_page", "/api/v1/failures?filter%5B0%5D%5Bfield%5D=kind&filter%5B0%5D%5Btype%5D=%3D&filter%5B0%5D%5Bvalue%5D=transient" +
			"&sort%5B0%5D%5Bfield%5D=occurred_at&sort%5B0%5D%5Bdir%5D=desc&page=1&size=50"},
		{"failures_search", "/api/v1/failures?q=refused&sort%5B0%5D%5Bfield%5D=occurred_at&sort%5B0%5D%5Bdir%5D=desc&size=50"},
		{"failures_page", "/admin/background_jobs/failures"},
		{"job_page", fmt.Sprintf("/admin/jobs/%d", job)},
		{"job_api", fmt.Sprintf("/api/v1/jobs/%d", job)},
		{"jobs_done_page", "/admin/jobs?state=done"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var size int
			timed(b, func() (err error) { size, err = getOK(l.base, c.path); return err })
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// BenchmarkDashboardEventsUnderLoad runs 20,000 jobs a second through the
// lanes for 10 s with 10 clients on GET /api/v1/events, and reports the
// events each client received per second and the jobs/s reached.
func BenchmarkDashboardEventsUnderLoad(b *testing.B) {
	for b.Loop() {
		l := startFigApp(b, b.TempDir())
		const clients, rate, seconds = 10, 20_000, 10
		ctx, cancel := context.WithTimeout(context.Background(), seconds*time.Second)
		var events atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			req, _ := http.NewRequestWithContext(ctx, "GET", l.base+"/api/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "event: ") {
						events.Add(1)
					}
				}
			})
		}
		start := time.Now()
		done0 := l.a.store.Counts()[queue.StateDone]
		tick := time.NewTicker(50 * time.Millisecond)
		for ctx.Err() == nil {
			<-tick.C
			jobs := make([]queue.NewJob, rate/20)
			for i := range jobs {
				jobs[i] = queue.NewJob{Class: "NoopJob", Queue: "default"}
			}
			if _, err := l.a.store.EnqueueMany(context.Background(), jobs); err != nil {
				b.Fatal(err)
			}
		}
		tick.Stop()
		elapsed := time.Since(start).Seconds()
		processed := l.a.store.Counts()[queue.StateDone] - done0
		cancel()
		wg.Wait()
		b.ReportMetric(float64(events.Load())/clients/elapsed, "events/s/client")
		b.ReportMetric(float64(processed)/elapsed, "jobs/s")
		l.stop()
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDashboardPageMemory keeps the dashboard open in chromium under
// a moderate load for CONVEYOR_BENCH_MINUTES minutes (default 2): 2,000
// jobs a second through the lanes, 5 of them failing with one of three
// errors (failures, issues), and a schedule entry disabled and enabled
// every 20 s, so every panel of the page keeps re-fetching. Each minute it
// records the page's JavaScript heap after a forced garbage collection,
// its DOM nodes (live and detached, after the same collection), its event
// listeners and the jobs a second the lanes processed in that minute; with
// CONVEYOR_PAGE_CSV=file the rows go to that CSV. `make soak-page` runs it
// for an hour.
func BenchmarkDashboardPageMemory(b *testing.B) {
	minutes := 2
	if v := os.Getenv("CONVEYOR_BENCH_MINUTES"); v != "" {
		if _, err := fmt.Sscan(v, &minutes); err != nil || minutes < 1 {
			b.Fatalf("CONVEYOR_BENCH_MINUTES=%q: want a whole number of minutes", v)
		}
	}
	for b.Loop() {
		rows := pageSoak(b, minutes)
		first, last := rows[0], rows[len(rows)-1]
		b.ReportMetric(first.heapMB, "heap-MB-minute-1")
		b.ReportMetric(last.heapMB, "heap-MB-at-end")
		b.ReportMetric(float64(first.nodes), "dom-nodes-minute-1")
		b.ReportMetric(float64(last.nodes), "dom-nodes-at-end")
		b.ReportMetric(first.rendererMB, "renderer-MB-minute-1")
		b.ReportMetric(last.rendererMB, "renderer-MB-at-end")
		b.ReportMetric(float64(minutes), "minutes")
		if out := os.Getenv("CONVEYOR_PAGE_CSV"); out != "" {
			if err := writePageCSV(out, rows); err != nil {
				b.Fatal(err)
			}
		}
		fmt.Printf("page heap: %.2f MB after minute 1, %.2f MB after minute %d; DOM nodes %d then %d\n",
			first.heapMB, last.heapMB, last.minute, first.nodes, last.nodes)
	}
	b.ReportMetric(0, "ns/op")
}

// Load of the page soak: jobsPerTick every tick (2,000 jobs/s), one of
// them failing every failEvery ticks (5 failures/s).
const (
	pageTick        = 50 * time.Millisecond
	pageJobsPerTick = 100
	pageFailEvery   = 4
)

// pageRow is one minute of the page soak.
type pageRow struct {
	minute    int
	heapMB    float64
	nodes     int64
	listeners int64
	jobsPerS  float64
	failPerS  float64
	// rendererMB is the resident memory of the browser's renderer
	// processes (the page's tab and its helpers).
	rendererMB float64
}

// pageSoak runs the load against the open page for the given minutes and
// samples the page at the end of each one.
func pageSoak(b *testing.B, minutes int) []pageRow {
	l := startFigApp(b, b.TempDir())
	defer l.stop()
	p, closePage := benchPage(b, l)
	defer closePage()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	loadErr := make(chan error, 1)
	go func() { loadErr <- pageLoad(ctx, l) }()
	sample := func() (heapMB float64, dom memory.GetDOMCountersResult) {
		if _, err := chromedp.Call(p, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			b.Fatal(err)
		}
		u, err := chromedp.Call(p, cdpruntime.GetHeapUsage, cdp.Empty{})
		if err != nil {
			b.Fatal(err)
		}
		dom, err = chromedp.Call(p, memory.GetDOMCounters, cdp.Empty{})
		if err != nil {
			b.Fatal(err)
		}
		return u.UsedSize / (1 << 20), dom
	}
	// processed sums the per-minute counters since the start: attempts
	// ended, and the failed ones.
	processed := func() (int64, int64) {
		st, err := l.a.store.Stats(start.Add(-time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		var n, f int64
		for _, m := range st {
			n += m.Processed
			f += m.Failed
		}
		return n, f
	}
	var rows []pageRow
	n0, f0 := processed()
	t0 := time.Now()
	for m := 1; m <= minutes; m++ {
		select {
		case err := <-loadErr:
			b.Fatalf("load stopped: %v", err)
		case <-time.After(time.Until(start.Add(time.Duration(m) * time.Minute))):
		}
		n, f := processed()
		now := time.Now()
		secs := now.Sub(t0).Seconds()
		heapMB, dom := sample()
		rendererMB := rendererRSSMB(b, p)
		rows = append(rows, pageRow{minute: m, heapMB: heapMB, nodes: dom.Nodes, listeners: dom.JsEventListeners,
			jobsPerS: float64(n-n0) / secs, failPerS: float64(f-f0) / secs, rendererMB: rendererMB})
		b.Logf("minute %d: heap %.2f MB, %d DOM nodes, %d listeners, %.0f jobs/s, %.1f failed/s, renderer %.0f MB",
			m, heapMB, dom.Nodes, dom.JsEventListeners, float64(n-n0)/secs, float64(f-f0)/secs, rendererMB)
		n0, f0, t0 = n, f, now
	}
	cancel()
	if err := <-loadErr; err != nil && ctx.Err() == nil {
		b.Fatal(err)
	}
	return rows
}

// pageLoad enqueues the page soak's load until ctx ends, and disables and
// enables a schedule entry every 20 s.
func pageLoad(ctx context.Context, l *figLive) error {
	tick := time.NewTicker(pageTick)
	defer tick.Stop()
	errs := []string{"503 from bridge", "429 Too Many Requests", "connection refused"}
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		jobs := make([]queue.NewJob, pageJobsPerTick)
		for i := range jobs {
			jobs[i] = queue.NewJob{Class: "NoopJob", Queue: "default"}
		}
		if n%pageFailEvery == 0 {
			jobs[0] = queue.NewJob{Class: "FailJob", Queue: "sync", MaxAttempts: 1,
				Args: json.RawMessage(fmt.Sprintf(`{"message":%q}`, errs[n/pageFailEvery%len(errs)]))}
		}
		if _, err := l.a.store.EnqueueMany(ctx, jobs); err != nil {
			return err
		}
		if every := int(20 * time.Second / pageTick); n%every == every-1 {
			action := []string{"disable", "enable"}[n/every%2]
			if err := postOK(l.base, "/api/v1/cron/queue_health_check/"+action); err != nil {
				return err
			}
		}
	}
}

// postOK posts an empty body with the token and checks for a 2xx.
func postOK(base, path string) error {
	req, _ := http.NewRequest("POST", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d", path, resp.StatusCode)
	}
	return nil
}

// writePageCSV writes the page soak's curve.
func writePageCSV(path string, rows []pageRow) error {
	var sb strings.Builder
	sb.WriteString("minute,js_heap_mb_after_gc,dom_nodes,js_event_listeners,jobs_per_s,failed_per_s,renderer_rss_mb\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%d,%.3f,%d,%d,%.0f,%.2f,%.1f\n", r.minute, r.heapMB, r.nodes, r.listeners, r.jobsPerS, r.failPerS, r.rendererMB)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// rendererRSSMB sums the resident memory of the renderer processes
// (--type=renderer) descending from the browser process of p, read from
// /proc.
func rendererRSSMB(b *testing.B, p context.Context) float64 {
	c := chromedp.FromContext(p)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		b.Fatal("no browser process to measure")
	}
	root := c.Browser.Process().Pid
	parent := map[int]int{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range procs {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(raw), ')')
		var pid, ppid int
		var state string
		if _, err := fmt.Sscan(string(raw[:strings.IndexByte(string(raw), ' ')]), &pid); err != nil || i < 0 {
			continue
		}
		if _, err := fmt.Sscan(string(raw[i+1:]), &state, &ppid); err != nil {
			continue
		}
		parent[pid] = ppid
	}
	descends := func(pid int) bool {
		for n := 0; pid > 1 && n < 64; n++ {
			if pid = parent[pid]; pid == root {
				return true
			}
		}
		return false
	}
	var kb int64
	for pid := range parent {
		if !descends(pid) {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmd), "--type=renderer") {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var n int64
				fmt.Sscan(v, &n)
				kb += n
			}
		}
	}
	if kb == 0 {
		b.Fatal("found no renderer process under the browser")
	}
	return float64(kb) / 1024
}

// benchPage opens the dashboard logged in, in a browser of its own, and
// returns a function that closes it.
func benchPage(b *testing.B, l *figLive) (context.Context, func()) {
	path, err := chromiumPath()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.UserDataDir(dir), chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	closeAll := func() { cancel(); cancelAlloc() }
	b.Cleanup(closeAll)
	if err := chromedp.Do(ctx, chromedp.Navigate(l.base+"/admin/login"), chromedp.SendKeys(chromedp.ID("secret"), testToken),
		chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.CSS("#live.on"))); err != nil {
		b.Fatal(err)
	}
	// chromedp turns DevTools' network domain on, which keeps every
	// response body for the inspector inside the renderer; an operator's
	// tab has no DevTools attached, so the soak turns it off.
	if _, err := chromedp.Call(ctx, network.Disable, cdp.Empty{}); err != nil {
		b.Fatal(err)
	}
	return ctx, closeAll
}

// deadJobsRig starts the whole app with n dead FailJobs in queue sync,
// their failures captured, and its lanes parked (quiet), so that retried
// jobs wait as ready instead of failing again.
func deadJobsRig(b *testing.B, n int) *figLive {
	dir := b.TempDir()
	getenv := envFunc("CONVEYOR_TOKEN=" + testToken)
	st, err := serveSettings([]string{"--data", dir, "--listen", "127.0.0.1:0", "--replica", "off"}, getenv, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	st.Queue.DeadLimit = 2 * n
	a, err := newApp(context.Background(), st, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard, getenv)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.start(context.Background()); err != nil {
		b.Fatal(err)
	}
	l := &figLive{liveApp: &liveApp{a: a, base: "http://" + a.addr()}, tb: b}
	sub := a.store.Subscribe()
	for i := 0; i < n; i += 5000 {
		jobs := make([]queue.NewJob, 5000)
		for k := range jobs {
			jobs[k] = queue.NewJob{Class: "FailJob", Queue: "sync", MaxAttempts: 1, Args: json.RawMessage(`{"message":"503 from bridge"}`)}
		}
		if _, err := a.store.EnqueueMany(context.Background(), jobs); err != nil {
			b.Fatal(err)
		}
	}
	for a.store.Counts()[queue.StateDead] < int64(n) {
		<-sub.C
	}
	sub.Close()
	a.failures.capture.Flush(context.Background())
	a.failures.writer.Flush(context.Background())
	// Park the lanes: retried jobs wait as ready instead of failing again.
	a.pool.SetQuiet(true)
	return l
}

// BenchmarkDashboardBulk100k retries, then discards, 100,000 dead jobs the
// way the jobs screen does: POST /api/v1/jobs/bulk in requests of 2,000
// jobs until it says there is no more. Each job's latest failure is
// checked by the failure rules. It reports the time per request (what
// keeps the page responsive) and the whole.
func BenchmarkDashboardBulk100k(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		l := deadJobsRig(b, n)
		for _, action := range []string{"retry", "discard"} {
			state := "dead"
			if action == "discard" {
				state = "ready"
			}
			var per []time.Duration
			start := time.Now()
			cursor, done := "", 0
			for {
				body := fmt.Sprintf(`{"action":%q,"state":%q,"queue":"sync","cursor":%q}`, action, state, cursor)
				req, _ := http.NewRequest("POST", l.base+"/api/v1/jobs/bulk", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var out struct {
					Done int     `json:"done"`
					Next *string `json:"next"`
					More bool    `json:"more"`
				}
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d %v", action, resp.StatusCode, err)
				}
				per = append(per, time.Since(t0))
				done += out.Done
				if !out.More {
					break
				}
				cursor = *out.Next
			}
			total := time.Since(start)
			slices.Sort(per)
			b.ReportMetric(float64(done), action+"-jobs")
			b.ReportMetric(total.Seconds(), action+"-total-s")
			b.ReportMetric(float64(per[len(per)/2].Milliseconds()), action+"-p50-ms-per-2000")
			b.ReportMetric(float64(per[len(per)-1].Milliseconds()), action+"-max-ms-per-2000")
		}
		l.stop()
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFailuresRetryAll100k retries 100,000 failures the way the
// failures screen's "retry all matching" does: POST /api/v1/failures/retry
// with the screen's filter (queue sync), following next_after_id and
// until_id until the answer says there is no more. It reports the time per
// request (the page shows progress between them) and the whole.
func BenchmarkFailuresRetryAll100k(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		l := deadJobsRig(b, n)
		var per []time.Duration
		start := time.Now()
		var after, until int64
		queued, examined := 0, 0
		for {
			form := url.Values{"filter[0][field]": {"queue"}, "filter[0][value]": {"sync"}, "after_id": {strconv.FormatInt(after, 10)}}
			if until != 0 {
				form.Set("until_id", strconv.FormatInt(until, 10))
			}
			req, _ := http.NewRequest("POST", l.base+"/api/v1/failures/retry", strings.NewReader(form.Encode()))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			t0 := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				Examined int   `json:"examined"`
				Queued   int   `json:"queued"`
				Next     int64 `json:"next_after_id"`
				Until    int64 `json:"until_id"`
				More     bool  `json:"more"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("retry all: %d %v", resp.StatusCode, err)
			}
			per = append(per, time.Since(t0))
			queued += out.Queued
			examined += out.Examined
			after, until = out.Next, out.Until
			if !out.More {
				break
			}
		}
		total := time.Since(start)
		if queued != n || examined != n {
			b.Fatalf("retry all: queued %d, examined %d of %d", queued, examined, n)
		}
		// (The schedule's jobs wait as ready too: at least n.)
		if ready := l.a.store.Counts()[queue.StateReady]; ready < int64(n) {
			b.Fatalf("after retry all: %d jobs ready, want at least %d", ready, n)
		}
		slices.Sort(per)
		b.ReportMetric(total.Seconds(), "total-s")
		b.ReportMetric(float64(per[len(per)/2].Milliseconds()), "p50-ms-per-request")
		b.ReportMetric(float64(per[len(per)-1].Milliseconds()), "max-ms-per-request")
		b.ReportMetric(float64(len(per)), "requests")
		l.stop()
	}
	b.ReportMetric(0, "ns/op")
}
