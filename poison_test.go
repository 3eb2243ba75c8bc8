package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/lanes"
	"conveyor/queue"
)

// Poison pills: job classes that harm the process running them, registered in
// the server the end-to-end tests start (TestMain sets extraClasses). Their
// queue is `maintenance`, in the default lane.
const (
	poisonExit      = "PoisonExit"  // calls os.Exit(3)
	poisonCrash     = "PoisonCrash" // panics in a goroutine of its own: nothing can recover it
	poisonPanic     = "PoisonPanic" // panics in the handler (the lanes recover it)
	poisonHang      = "PoisonHang"  // never returns, ignoring its context (timeout 300 ms)
	poisonAlloc     = "PoisonAlloc" // allocates until the process dies
	poisonHangAfter = 300 * time.Millisecond
	poisonExitCode  = 3
)

func registerPoisonPills(r *lanes.Registry) error {
	block := make(chan struct{}) // never closed
	var hoard [][]byte
	return errors.Join(
		r.Register(lanes.Class{Name: poisonExit, Queue: "maintenance", Args: lanes.NoArgs, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			os.Exit(poisonExitCode)
			return nil
		})}),
		r.Register(lanes.Class{Name: poisonCrash, Queue: "maintenance", Args: lanes.NoArgs, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			go panic("poison pill: a panic nobody recovers")
			<-block
			return nil
		})}),
		r.Register(lanes.Class{Name: poisonPanic, Queue: "maintenance", Args: lanes.NoArgs, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			panic("poison pill: a panic in the handler")
		})}),
		r.Register(lanes.Class{Name: poisonHang, Queue: "maintenance", Args: lanes.NoArgs, Timeout: poisonHangAfter,
			Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
				<-block
				return nil
			})}),
		r.Register(lanes.Class{Name: poisonAlloc, Queue: "maintenance", Args: lanes.NoArgs, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			for {
				b := make([]byte, 16<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1 // touch every page: resident, not just reserved
				}
				hoard = append(hoard, b)
			}
		})}),
	)
}

// jobJSON is the part of GET /api/v1/jobs/{id} the crash tests read.
type jobJSON struct {
	ID         uint64            `json:"id"`
	Class      string            `json:"class"`
	State      string            `json:"state"`
	Attempt    int               `json:"attempt"`
	Orphans    int               `json:"orphans"`
	Stuck      bool              `json:"stuck"`
	RunAt      time.Time         `json:"run_at"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	UniqueKey  *string           `json:"unique_key"`
	Context    map[string]string `json:"context"`
	Errors     []struct {
		Attempt int    `json:"attempt"`
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (s *server) job(ctx context.Context, t *testing.T, id uint64) jobJSON {
	t.Helper()
	var j jobJSON
	if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != http.StatusOK {
		t.Fatalf("get job %d: %d %v", id, code, err)
	}
	return j
}

func (s *server) enqueueJob(ctx context.Context, t *testing.T, body map[string]any) uint64 {
	t.Helper()
	var out struct {
		ID uint64 `json:"id"`
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", body, &out); err != nil || code != http.StatusCreated {
		t.Fatalf("enqueue %v: %d %v", body, code, err)
	}
	return out.ID
}

// waitStarted waits until the exec log shows a start of each job.
func waitStarted(ctx context.Context, t *testing.T, execLog string, ids ...uint64) {
	t.Helper()
	for {
		b, _ := os.ReadFile(execLog)
		missing := 0
		for _, id := range ids {
			if !strings.Contains(string(b), fmt.Sprintf("start %d ", id)) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jobs %v never started", ids)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestCrashGuardBlamesOnlyTheCulprit runs a job that kills the process (os.Exit)
// while long innocent jobs run beside it, restarting the server after each
// death. The culprit must go to dead after exactly three crashes, and no
// innocent job may: they ran beside it once, and a struck job then runs alone.
func TestCrashGuardBlamesOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	ctx := deadline(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	execLog := filepath.Join(dir, "exec.log")
	args := []string{"--exec-log", execLog, "--schedule", emptySchedule(t)}
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)

	srv := startServer(t, data, args...)
	var innocents []uint64
	for range 3 {
		innocents = append(innocents, srv.enqueueJob(ctx, t, map[string]any{"class": "SleepJob", "queue": "sync", "args": map[string]int{"ms": 700}}))
	}
	waitStarted(ctx, t, execLog, innocents...)
	srv.api(ctx, http.MethodPost, "/api/v1/queues/maintenance/pause", nil, nil)
	culprit := srv.enqueueJob(ctx, t, map[string]any{"class": poisonExit})
	srv.api(ctx, http.MethodPost, "/api/v1/queues/maintenance/resume", nil, nil) // it may die before it answers

	srv, crashes := crashUntilDead(ctx, t, srv, data, env, args, culprit, fmt.Sprintf("exit status %d", poisonExitCode))
	srv.waitDrained(t)
	j := srv.job(ctx, t, culprit)
	if crashes != 3 || j.Orphans != 3 || j.Errors[len(j.Errors)-1].Message != "crashed the worker 3 times" {
		t.Fatalf("the culprit went to dead after %d crashes: %+v", crashes, j)
	}
	for _, id := range innocents {
		if j := srv.job(ctx, t, id); j.State != "done" || j.Orphans > 1 {
			t.Errorf("innocent job %d ran beside the culprit: %+v", id, j)
		}
	}
	if dead, err := srv.deadCount(ctx); err != nil || dead != 1 {
		t.Errorf("%d jobs dead, want only the culprit (%v)", dead, err)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// crashUntilDead restarts the server after each death, until job id is dead,
// and returns the live server and the number of deaths. Each death must say
// how (died: the exit error's text). The job may kill a server at any moment,
// before it serves or while it answers.
func crashUntilDead(ctx context.Context, t *testing.T, srv *server, data string, env, args []string, id uint64, died string) (*server, int) {
	t.Helper()
	crashes := 0
	for {
		var j jobJSON
		code, err := srv.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j)
		if err == nil && code == http.StatusOK && j.State == "dead" {
			return srv, crashes
		}
		select {
		case err := <-srv.exited:
			if err == nil || !strings.Contains(err.Error(), died) {
				t.Fatalf("server exited with %v, want %q\n%s", err, died, srv.stderr.String())
			}
			if crashes++; crashes > 10 {
				t.Fatalf("%d crashes and counting", crashes)
			}
			checkStoreFile(t, data)
			// On an early death launchServer leaves the exit on srv.exited.
			srv, _ = launchServer(t, data, env, args...)
		case <-ctx.Done():
			t.Fatalf("job %d is not dead after %d crashes: %+v", id, crashes, j)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkStoreFile runs the store's full check (bbolt's own, and every job in
// exactly one index with counters that match) on the queue file of a dead
// server, read-only: the next server finds the file as the crash left it.
func checkStoreFile(t *testing.T, dataDir string) {
	t.Helper()
	if err := checkStoreFileErr(dataDir); err != nil {
		t.Fatalf("store check after a crash: %v", err)
	}
}

func checkStoreFileErr(dataDir string) error {
	return queue.CheckFile(filepath.Join(dataDir, queueFile))
}

// TestPoisonPills runs each poison pill in a real server: a handler that
// panics is recorded and retried; one that ignores its context shows as stuck
// after its timeout while the lanes go on; one that kills the process (a panic
// in a goroutine of its own, or allocating until the kernel's OOM killer
// strikes) goes to dead after three crashes, and only that job.
func TestPoisonPills(t *testing.T) {
	t.Parallel()
	start := func(t *testing.T) (context.Context, string, []string, []string, *server) {
		ctx := deadline(t)
		data := filepath.Join(t.TempDir(), "data")
		args := []string{"--schedule", emptySchedule(t), "--shutdown-timeout", "100ms"}
		env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
		srv, err := launchServer(t, data, env, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.stderr.String())
		}
		return ctx, data, env, args, srv
	}
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		ctx, _, _, _, srv := start(t)
		id := srv.enqueueJob(ctx, t, map[string]any{"class": poisonPanic})
		j := srv.pollJob(ctx, t, id, func(j jobJSON) bool { return j.State == "retry" })
		if j.Errors[0].Class != "Panic" || !strings.Contains(j.Errors[0].Message, "a panic in the handler") {
			t.Fatalf("panicked job %+v", j)
		}
		srv.pollJob(ctx, t, srv.enqueueJob(ctx, t, map[string]any{"class": "NoopJob"}), func(j jobJSON) bool { return j.State == "done" })
		srv.terminate()
	})
	t.Run("hang", func(t *testing.T) {
		t.Parallel()
		ctx, _, _, _, srv := start(t)
		id := srv.enqueueJob(ctx, t, map[string]any{"class": poisonHang})
		j := srv.pollJob(ctx, t, id, func(j jobJSON) bool { return j.Stuck })
		if j.State != "running" {
			t.Fatalf("stuck job %+v", j)
		}
		// The lanes go on: the default lane's other workers, and other lanes.
		srv.pollJob(ctx, t, srv.enqueueJob(ctx, t, map[string]any{"class": "NoopJob"}), func(j jobJSON) bool { return j.State == "done" })
		var metrics string
		if code, err := srv.raw(ctx, "/metrics", &metrics); err != nil || code != http.StatusOK || !strings.Contains(metrics, "conveyor_jobs_stuck 1") {
			t.Fatalf("metrics (%d %v) lack conveyor_jobs_stuck 1", code, err)
		}
		if err, _ := srv.terminate(); err != nil {
			t.Fatalf("stop with a stuck handler: %v", err)
		}
	})
	for _, pill := range []struct {
		class, died string
		oom         bool
	}{
		{poisonCrash, "exit status 2", false},
		{poisonAlloc, "signal: killed", true},
	} {
		t.Run(pill.class, func(t *testing.T) {
			t.Parallel()
			if pill.oom {
				skipWithoutMemoryCgroup(t)
			}
			ctx, data, env, args, srv := start(t)
			if pill.oom {
				env = append(env, memoryLimitEnv+"=400000000")
				srv.terminate()
				var err error
				if srv, err = launchServer(t, data, env, args...); err != nil {
					t.Fatal(err)
				}
			}
			innocent := srv.enqueueJob(ctx, t, map[string]any{"class": "SleepJob", "queue": "sync", "args": map[string]int{"ms": 50}})
			srv.pollJob(ctx, t, innocent, func(j jobJSON) bool { return j.State == "done" })
			// Enqueued into the paused queue, it runs (and kills the server)
			// only once the answer is in.
			srv.api(ctx, http.MethodPost, "/api/v1/queues/maintenance/pause", nil, nil)
			id := srv.enqueueJob(ctx, t, map[string]any{"class": pill.class})
			srv.api(ctx, http.MethodPost, "/api/v1/queues/maintenance/resume", nil, nil) // it may die before it answers
			srv, crashes := crashUntilDead(ctx, t, srv, data, env, args, id, pill.died)
			j := srv.job(ctx, t, id)
			if crashes != 3 || j.Orphans != 3 {
				t.Fatalf("%s went to dead after %d crashes: %+v", pill.class, crashes, j)
			}
			if dead, err := srv.deadCount(ctx); err != nil || dead != 1 {
				t.Fatalf("%d jobs dead (%v), want only the pill", dead, err)
			}
			srv.terminate()
		})
	}
}

// pollJob asks until the job satisfies cond (for what the server announces on
// no channel the test reads); the bound is the test's deadline.
func (s *server) pollJob(ctx context.Context, t *testing.T, id uint64, cond func(jobJSON) bool) jobJSON {
	t.Helper()
	for {
		j := s.job(ctx, t, id)
		if cond(j) {
			return j
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %d never got there: %+v", id, j)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// raw GETs a path and returns its body as text.
func (s *server) raw(ctx context.Context, path string, out *string) (int, error) {
	code, b, err := s.call(ctx, http.MethodGet, path, nil)
	*out = string(b)
	return code, err
}

// memoryLimitEnv, set for a server the tests start, makes it move itself into
// a memory cgroup of its own with that limit (bytes) before it serves, so that
// allocating without end gets it killed by the kernel's OOM killer, as on a
// real machine, instead of taking the test machine's memory.
const memoryLimitEnv = "CONVEYOR_TEST_MEMORY_LIMIT"

// memoryCgroup is this process's memory cgroup directory (cgroup v1), or "".
func memoryCgroup() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "memory" {
			return filepath.Join("/sys/fs/cgroup/memory", f[2])
		}
	}
	return ""
}

// skipWithoutMemoryCgroup skips, saying exactly why, where a child memory
// cgroup cannot be made (no cgroup v1 memory controller, or no right to
// write it: it needs root).
func skipWithoutMemoryCgroup(t *testing.T) {
	t.Helper()
	dir := memoryCgroup()
	if dir == "" {
		t.Skip("no cgroup v1 memory controller in /proc/self/cgroup: the OOM-kill test needs one to bound the server's memory")
	}
	probe := filepath.Join(dir, fmt.Sprintf("conveyor-probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup under %s (%v): the OOM-kill test needs root", dir, err)
	}
	os.Remove(probe)
}

// limitMemory moves this process into a new memory cgroup limited to the
// bytes memoryLimitEnv names (the server side of the test above). The empty
// cgroup stays after the process dies; the next one of the same parent
// removes the empty ones it finds.
func limitMemory() error {
	limit := os.Getenv(memoryLimitEnv)
	if limit == "" {
		return nil
	}
	parent := memoryCgroup()
	if parent == "" {
		return errors.New("no memory cgroup")
	}
	old, _ := filepath.Glob(filepath.Join(parent, "conveyor-test-*"))
	for _, d := range old {
		os.Remove(d) // only empty ones go
	}
	dir := filepath.Join(parent, fmt.Sprintf("conveyor-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(limit), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0o644)
}
