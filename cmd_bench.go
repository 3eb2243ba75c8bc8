package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"conveyor/internal/procstat"
	"conveyor/lanes"
	"conveyor/queue"
	"conveyor/ui"
)

// benchConfig holds bench's flags.
type benchConfig struct {
	N           int
	Batch       int
	Producers   int
	Rate        int
	Seconds     float64
	HTTPClients int
	HTTPN       int
	Backlog     int
	Phases      []string
	JSON        bool
	Dir         string
	// HTTPInProcess runs the HTTP load generator inside the bench process
	// instead of a process of its own.
	HTTPInProcess bool
	// LoadAddr, when set, makes this process the HTTP load generator only
	// (the bench starts one so): it enqueues HTTPN jobs at LoadAddr from
	// HTTPClients connections and prints a loadResult.
	LoadAddr string
	// CPUProfile is where the run's CPU profile goes; the HTTP phase's
	// load generator, in a process of its own, writes its own beside it
	// (CPUProfile + ".load").
	CPUProfile string
	Soak       soakConfig
}

// benchResult is what bench prints; the JSON keys are stable.
type benchResult struct {
	EnqueuePerS     float64 `json:"enqueue_per_s"`
	ProcessedPerS   float64 `json:"processed_per_s"`
	LatencyP50Ms    float64 `json:"latency_p50_ms"`
	LatencyP99Ms    float64 `json:"latency_p99_ms"`
	LatencyMaxMs    float64 `json:"latency_max_ms"`
	ScheduledP99Ms  float64 `json:"scheduled_p99_ms"`
	HTTPEnqueuePerS float64 `json:"http_enqueue_per_s"`
	// HTTPServerCPUus and HTTPLoadCPUus are the CPU time (user and
	// system) per job of the server's process during the HTTP phase and of
	// the load generator's process: with both on one machine, its cores
	// divided by their sum bounds the rate.
	HTTPServerCPUus  float64     `json:"http_server_cpu_us_per_job,omitempty"`
	HTTPLoadCPUus    float64     `json:"http_load_cpu_us_per_job,omitempty"`
	PeakRSSMB        float64     `json:"peak_rss_mb"`
	DiskBytesPerJob  float64     `json:"disk_bytes_per_job"`
	BacklogPerS      float64     `json:"backlog_processed_per_s,omitempty"`
	BaselinePerS     float64     `json:"backlog_baseline_per_s,omitempty"`
	BacklogCostRatio float64     `json:"backlog_cost_ratio,omitempty"`
	BacklogRSSMB     float64     `json:"backlog_peak_rss_mb,omitempty"`
	Soak             *soakResult `json:"soak,omitempty"`
}

const benchClass = "BenchJob"

func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var bc benchConfig
	fs.IntVar(&bc.N, "n", 100_000, "jobs for the throughput phase")
	fs.IntVar(&bc.Batch, "batch", 1000, "jobs per batch enqueue")
	fs.IntVar(&bc.Producers, "producers", 2, "concurrent batch producers (their batches share commits)")
	fs.IntVar(&bc.Rate, "rate", 1000, "jobs offered per second in the latency phase")
	fs.Float64Var(&bc.Seconds, "seconds", 10, "length of the latency phase")
	fs.IntVar(&bc.HTTPClients, "http-clients", 64, "concurrent HTTP clients, one job per request")
	fs.IntVar(&bc.HTTPN, "http-n", 50_000, "jobs enqueued over HTTP")
	fs.IntVar(&bc.Backlog, "backlog", 1_000_000, "jobs waiting in the queue for the backlog phase")
	phases := fs.String("phases", "throughput,latency,http", "phases to run: throughput, latency, http, backlog, soak")
	fs.DurationVar(&bc.Soak.Duration, "duration", 30*time.Minute, "length of the soak phase")
	fs.StringVar(&bc.Soak.CSV, "csv", "", "soak: write the curve (one row per 10 s) to this CSV file")
	fs.Float64Var(&bc.Soak.Rate, "soak-rate", 0, "soak: jobs offered per second (default: half the measured maximum)")
	fs.BoolVar(&bc.JSON, "json", false, "print one JSON object instead of lines")
	fs.StringVar(&bc.Dir, "dir", "", "parent of the temporary data directory (default: the system's)")
	fs.BoolVar(&bc.HTTPInProcess, "http-in-process", false, "run the HTTP phase's load generator in this process (default: a process of its own)")
	fs.StringVar(&bc.LoadAddr, "load-addr", "", "internal: act only as the HTTP phase's load generator against this address (token in CONVEYOR_TOKEN)")
	fs.StringVar(&bc.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file (and the HTTP load generator's to this file + \".load\")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor bench [flags]\n\nMeasures this machine on a temporary data directory, fsync on: durable batch\nenqueue and end-to-end processing of no-op jobs with the default lanes,\nenqueue-to-start latency at a fixed rate, concurrent single enqueues over HTTP,\nand (phase backlog) the cost of processing with a large backlog waiting.\nProgress goes to stderr, results to stdout.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	bc.Phases = strings.Split(*phases, ",")
	for _, p := range bc.Phases {
		if !slices.Contains([]string{"throughput", "latency", "http", "backlog", "soak"}, p) {
			return &usageError{fmt.Sprintf("--phases: unknown phase %q", p)}
		}
	}
	if bc.N <= 0 || bc.Batch <= 0 || bc.Producers <= 0 || bc.Rate <= 0 || bc.Seconds <= 0 || bc.HTTPClients <= 0 || bc.HTTPN <= 0 || bc.Backlog < 0 {
		return &usageError{"bench: every count, rate and length must be positive"}
	}
	if bc.CPUProfile != "" {
		f, err := os.Create(bc.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if bc.LoadAddr != "" {
		return runLoad(ctx, bc, getenv("CONVEYOR_TOKEN"), stdout)
	}
	res, err := runBench(ctx, bc, stderr)
	if err != nil {
		return err
	}
	return printBench(stdout, bc, res)
}

func printBench(w io.Writer, bc benchConfig, r benchResult) error {
	if bc.JSON {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	has := func(p string) bool { return slices.Contains(bc.Phases, p) }
	if has("throughput") {
		fmt.Fprintf(w, "enqueue: %.0f jobs/s (batches of %d, %d producers, fsync on)\n", r.EnqueuePerS, bc.Batch, bc.Producers)
		fmt.Fprintf(w, "processed: %.0f jobs/s (%d no-op jobs, default lanes)\n", r.ProcessedPerS, bc.N)
		fmt.Fprintf(w, "disk: %.0f bytes per queued job\n", r.DiskBytesPerJob)
		fmt.Fprintf(w, "peak rss: %.1f MB\n", r.PeakRSSMB)
	}
	if has("latency") {
		fmt.Fprintf(w, "latency at %d jobs/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (enqueue call to handler start)\n",
			bc.Rate, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
		fmt.Fprintf(w, "scheduled jobs: p99 %.2f ms after their run_at\n", r.ScheduledP99Ms)
	}
	if has("http") {
		where := "load generator in a process of its own"
		if bc.HTTPInProcess {
			where = "load generator in this process"
		}
		fmt.Fprintf(w, "http enqueue: %.0f jobs/s (%d clients, one job per request, %s)\n", r.HTTPEnqueuePerS, bc.HTTPClients, where)
		if r.HTTPLoadCPUus > 0 {
			fmt.Fprintf(w, "http enqueue CPU per job: server %.1f µs, load generator %.1f µs (%d cores: at most %.0f jobs/s with both on this machine)\n",
				r.HTTPServerCPUus, r.HTTPLoadCPUus, runtime.NumCPU(), float64(runtime.NumCPU())*1e6/(r.HTTPServerCPUus+r.HTTPLoadCPUus))
		}
	}
	if has("soak") && r.Soak != nil {
		r.Soak.print(w)
	}
	if has("backlog") {
		fmt.Fprintf(w, "backlog: %.0f jobs/s with %d waiting vs %.0f jobs/s with 1000 waiting: cost ratio %.2f; peak rss %.1f MB\n",
			r.BacklogPerS, bc.Backlog, r.BaselinePerS, r.BacklogCostRatio, r.BacklogRSSMB)
	}
	return nil
}

// benchRig is a store, registry and pool on a temporary directory.
type benchRig struct {
	dir   string
	store *queue.Store
	reg   *lanes.Registry
	pool  *lanes.Pool
	topo  lanes.Topology
	// start times recorded by BenchJob: the args carry the reference time.
	mu   sync.Mutex
	lat  []time.Duration
	seen atomic.Int64
}

type benchArgs struct {
	T int64  `json:"t"`
	P string `json:"pad,omitempty"`
}

func newBenchRig(parent string, topo lanes.Topology, log *slog.Logger) (*benchRig, error) {
	dir, err := os.MkdirTemp(parent, "conveyor-bench-")
	if err != nil {
		return nil, err
	}
	r := &benchRig{dir: dir, topo: topo, reg: lanes.NewRegistry()}
	if r.store, err = queue.Open(filepath.Join(dir, queueFile), queue.Options{Logger: log}); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := lanes.RegisterBuiltins(r.reg); err != nil {
		return nil, err
	}
	err = r.reg.Register(lanes.Class{Name: benchClass, Queue: "default", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(_ context.Context, j *queue.Job) error {
		started := time.Now()
		r.seen.Add(1)
		var a benchArgs
		if err := json.Unmarshal(j.Args, &a); err != nil || a.T == 0 {
			return nil
		}
		r.mu.Lock()
		r.lat = append(r.lat, started.Sub(time.Unix(0, a.T)))
		r.mu.Unlock()
		return nil
	})})
	if err != nil {
		return nil, err
	}
	r.pool, err = lanes.New(r.store, r.reg, topo, lanes.Options{Logger: log})
	return r, err
}

func (r *benchRig) close() {
	r.pool.Stop(context.Background())
	r.store.Close()
	os.RemoveAll(r.dir)
}

// waitDone waits until the store counts n done jobs in all.
func (r *benchRig) waitDone(ctx context.Context, n int64) error {
	sub := r.store.Subscribe()
	defer sub.Close()
	for r.store.Counts()[queue.StateDone] < n {
		select {
		case <-sub.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil
}

// pad makes the args about 100 bytes, like the peers' payload.
var benchPad = strings.Repeat("x", 64)

func runBench(ctx context.Context, bc benchConfig, stderr io.Writer) (benchResult, error) {
	var res benchResult
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	progress := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	has := func(p string) bool { return slices.Contains(bc.Phases, p) }
	topo := lanes.DefaultTopology()
	queues := topo.Queues()

	if has("throughput") {
		r, err := newBenchRig(bc.Dir, topo, log)
		if err != nil {
			return res, err
		}
		progress("enqueueing %d no-op jobs in batches of %d across the %d queues of the default lanes", bc.N, bc.Batch, len(queues))
		start := time.Now()
		if err := enqueueBench(ctx, r.store, bc.N, bc.Batch, bc.Producers, queues, false); err != nil {
			r.close()
			return res, err
		}
		res.EnqueuePerS = float64(bc.N) / time.Since(start).Seconds()
		res.DiskBytesPerJob = float64(r.store.Size()) / float64(bc.N)
		progress("processing them with %d workers", topo.Workers())
		start = time.Now()
		if err := r.pool.Start(); err != nil {
			r.close()
			return res, err
		}
		if err := r.waitDone(ctx, int64(bc.N)); err != nil {
			r.close()
			return res, err
		}
		res.ProcessedPerS = float64(bc.N) / time.Since(start).Seconds()
		res.PeakRSSMB = peakRSSMB()
		r.close()
	}

	if has("latency") {
		r, err := newBenchRig(bc.Dir, topo, log)
		if err != nil {
			return res, err
		}
		if err := r.pool.Start(); err != nil {
			r.close()
			return res, err
		}
		total := int(float64(bc.Rate) * bc.Seconds)
		progress("offering %d single jobs at %d/s", total, bc.Rate)
		if err := offerBench(ctx, r.store, total, bc.Rate, 0); err != nil {
			r.close()
			return res, err
		}
		if err := r.waitDone(ctx, int64(total)); err != nil {
			r.close()
			return res, err
		}
		lat := r.takeLatencies()
		res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100))
		sched := min(total, 2000)
		progress("scheduling %d jobs 20–200 ms ahead", sched)
		if err := offerBench(ctx, r.store, sched, bc.Rate, 20*time.Millisecond); err != nil {
			r.close()
			return res, err
		}
		if err := r.waitDone(ctx, int64(total+sched)); err != nil {
			r.close()
			return res, err
		}
		res.ScheduledP99Ms = ms(pct(r.takeLatencies(), 99))
		r.close()
	}

	if has("http") {
		r, err := newBenchRig(bc.Dir, topo, log)
		if err != nil {
			return res, err
		}
		progress("enqueueing %d jobs over HTTP from %d clients", bc.HTTPN, bc.HTTPClients)
		hr, err := httpBench(ctx, r, bc, log, stderr)
		r.close()
		if err != nil {
			return res, err
		}
		res.HTTPEnqueuePerS = float64(hr.Jobs) / hr.Seconds
		if hr.CPU > 0 {
			res.HTTPServerCPUus = hr.serverCPU.Seconds() * 1e6 / float64(hr.Jobs)
			res.HTTPLoadCPUus = hr.CPU * 1e6 / float64(hr.Jobs)
		}
	}

	if has("backlog") {
		one := lanes.Topology{Lanes: []lanes.Lane{{Name: "default", Queues: []string{"default"}, Concurrency: topo.Workers()}}}
		for _, waiting := range []int{1000, bc.Backlog} {
			r, err := newBenchRig(bc.Dir, one, log)
			if err != nil {
				return res, err
			}
			progress("processing %d jobs with %d more waiting behind them in the same queue", bc.N, waiting)
			if err := enqueueBench(ctx, r.store, bc.N+waiting, bc.Batch, bc.Producers, []string{"default"}, false); err != nil {
				r.close()
				return res, err
			}
			start := time.Now()
			if err := r.pool.Start(); err != nil {
				r.close()
				return res, err
			}
			err = r.waitDone(ctx, int64(bc.N))
			perS := float64(bc.N) / time.Since(start).Seconds()
			r.close()
			if err != nil {
				return res, err
			}
			if waiting == 1000 {
				res.BaselinePerS = perS
			} else {
				res.BacklogPerS = perS
				res.BacklogRSSMB = peakRSSMB()
			}
		}
		res.BacklogCostRatio = res.BaselinePerS / res.BacklogPerS
	}

	if has("soak") {
		sr, err := runSoak(ctx, bc, log, progress)
		if err != nil {
			return res, err
		}
		res.Soak = sr
	}
	return res, nil
}

func (r *benchRig) takeLatencies() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := r.lat
	r.lat = nil
	return lat
}

// enqueueBench enqueues n jobs in batches from several producers, round-robin
// over the queues.
func enqueueBench(ctx context.Context, s *queue.Store, n, batch, producers int, queues []string, stamp bool) error {
	args, _ := json.Marshal(benchArgs{P: benchPad})
	var next atomic.Int64
	errs := make(chan error, producers)
	for range producers {
		go func() {
			jobs := make([]queue.NewJob, 0, batch)
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= n {
					errs <- nil
					return
				}
				jobs = jobs[:0]
				for i := from; i < min(n, from+batch); i++ {
					jobs = append(jobs, queue.NewJob{Class: lanes.NoopJob, Queue: queues[i%len(queues)], Args: args})
				}
				if _, err := s.EnqueueMany(ctx, jobs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
	for range producers {
		err = errors.Join(err, <-errs)
	}
	return err
}

// offerBench offers n single jobs at a fixed rate (open loop, up to 64 in
// flight). With ahead > 0 each job is scheduled that far (plus up to 180 ms)
// in the future and its latency counts from its run_at.
func offerBench(ctx context.Context, s *queue.Store, n, rate int, ahead time.Duration) error {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < n; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			now := time.Now()
			nj := queue.NewJob{Class: benchClass, Queue: "default"}
			ref := now
			if ahead > 0 {
				ref = now.Add(ahead + time.Duration(i%10)*18*time.Millisecond)
				nj.RunAt = ref
			}
			nj.Args, _ = json.Marshal(benchArgs{T: ref.UnixNano(), P: benchPad})
			if _, err := s.Enqueue(ctx, nj); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// httpBench runs the API on loopback with the lanes held, and has a load
// generator enqueue bc.HTTPN jobs from bc.HTTPClients connections, one job
// per request: by default a process of its own (this binary again, with
// --load-addr), so that the figure is the server's alone and not shared
// with a client in the same runtime (scheduler, garbage collector). The
// HTTP server is serve's (newHTTPServer), with its timeouts.
func httpBench(ctx context.Context, r *benchRig, bc benchConfig, log *slog.Logger, progressOut io.Writer) (loadResult, error) {
	for _, l := range r.topo.Lanes {
		r.pool.SetGate(l.Name, false, "bench: enqueue only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadResult{}, err
	}
	const token = "bench-token-0123456789abcdef"
	srv, err := ui.New(ui.Config{Store: r.store, Registry: r.reg, Topology: r.topo, Token: token,
		AllowedHosts: ui.HostsFor(ln.Addr().String())})
	if err != nil {
		ln.Close()
		return loadResult{}, err
	}
	hs := newHTTPServer(srv, log)
	go hs.Serve(ln)
	defer hs.Close()
	var res loadResult
	cpu0 := processCPU()
	if bc.HTTPInProcess {
		res, err = loadHTTP(ctx, ln.Addr().String(), token, bc.HTTPN, bc.HTTPClients)
	} else {
		res, err = loadProcess(ctx, ln.Addr().String(), token, bc)
		res.serverCPU = processCPU() - cpu0
	}
	if ws := r.store.WriterStats(); ws.Commits > 0 {
		fmt.Fprintf(progressOut, "bench: http: %.1f jobs per commit, %v per commit\n",
			float64(ws.Enqueued)/float64(ws.Commits), ws.CommitTime/time.Duration(ws.Commits))
	}
	return res, err
}

// loadResult is what a load generator reports: jobs enqueued and the
// seconds from the first request to the last answer; CPU is the CPU time
// (user and system) its process used, when it ran in one of its own.
type loadResult struct {
	Jobs    int64   `json:"jobs"`
	Seconds float64 `json:"seconds"`
	CPU     float64 `json:"cpu_seconds,omitempty"`

	serverCPU time.Duration // the server's process, over the same run
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadProcess runs the load generator as a process of its own and reads
// its loadResult.
func loadProcess(ctx context.Context, addr, token string, bc benchConfig) (loadResult, error) {
	var res loadResult
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	args := []string{"bench", "--load-addr", addr, "--http-n", strconv.Itoa(bc.HTTPN), "--http-clients", strconv.Itoa(bc.HTTPClients)}
	if bc.CPUProfile != "" {
		args = append(args, "--cpuprofile", bc.CPUProfile+".load")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), "CONVEYOR_TOKEN="+token)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("http load generator: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Seconds <= 0 {
		return res, fmt.Errorf("http load generator: unexpected output %q (%v)", out, err)
	}
	res.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return res, nil
}

// runLoad is `bench --load-addr`: the load generator alone.
func runLoad(ctx context.Context, bc benchConfig, token string, stdout io.Writer) error {
	if token == "" {
		return &usageError{"--load-addr needs the token in CONVEYOR_TOKEN"}
	}
	res, err := loadHTTP(ctx, bc.LoadAddr, token, bc.HTTPN, bc.HTTPClients)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// loadHTTP enqueues n jobs at addr from clients raw keep-alive HTTP/1.1
// connections, one goroutine each, not net/http's client (two goroutines
// and a transport per connection): the figure is the server's, so the
// client stays lean. The clock starts once every connection is open.
func loadHTTP(ctx context.Context, addr, token string, n, clients int) (loadResult, error) {
	body := `{"class":"NoopJob","args":{"pad":"` + benchPad + `"}}`
	req := []byte("POST /api/v1/jobs HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	conns := make([]net.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var d net.Dialer
	for i := range conns {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return loadResult{}, err
		}
		conns[i] = c
	}
	var next atomic.Int64
	errs := make(chan error, clients)
	start := time.Now()
	for _, c := range conns {
		go func() { errs <- rawClient(c, req, &next, int64(n)) }()
	}
	var errAll error
	for range clients {
		errAll = errors.Join(errAll, <-errs)
	}
	return loadResult{Jobs: int64(n), Seconds: time.Since(start).Seconds()}, errAll
}

// rawClient sends req over one keep-alive connection until n requests were
// taken from next, one at a time: each answer is read whole (status line,
// header, the body its Content-Length gives) and must be 201 Created
// before the next request goes. It reads the answer in place from its
// buffer, allocating nothing per request: the load generator shares the
// machine with the server it measures.
func rawClient(conn net.Conn, req []byte, next *atomic.Int64, n int64) error {
	br := bufio.NewReader(conn)
	for next.Add(1) <= n {
		if _, err := conn.Write(req); err != nil {
			return err
		}
		status, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(status, []byte("HTTP/1.1 201")) {
			return fmt.Errorf("http enqueue: %s", bytes.TrimSpace(status))
		}
		length := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				break
			}
			const cl = "content-length:"
			if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
				if length, err = strconv.Atoi(string(bytes.TrimSpace(line[len(cl):]))); err != nil {
					return fmt.Errorf("http enqueue: %s", line)
				}
			}
		}
		if length < 0 {
			return fmt.Errorf("http enqueue: answer without Content-Length")
		}
		if _, err := br.Discard(length); err != nil {
			return err
		}
	}
	return nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSSMB is the process's peak resident set in MiB.
func peakRSSMB() float64 { return float64(procstat.PeakRSS()) / (1 << 20) }
