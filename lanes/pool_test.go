package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"conveyor/internal/testlog"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// openStore opens a real store in a temp dir, checked and closed on cleanup.
func openStore(t *testing.T) *queue.Store {
	t.Helper()
	s, err := queue.Open(filepath.Join(t.TempDir(), "queue.bolt"), queue.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		s.Close()
	})
	return s
}

type rig struct {
	t    *testing.T
	s    *queue.Store
	reg  *Registry
	pool *Pool
}

func newRig(t *testing.T, topo Topology, opts Options, classes ...Class) *rig {
	t.Helper()
	r := &rig{t: t, s: openStore(t), reg: NewRegistry()}
	if err := RegisterBuiltins(r.reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if err := r.reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	opts.Logger = testlog.New(t)
	p, err := New(r.s, r.reg, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.pool = p
	// Registered after openStore's cleanup, so it runs first: the pool stops
	// before the store is checked and closed.
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return r
}

func oneLane(queues ...string) Topology {
	return Topology{Lanes: []Lane{{Name: "main", Queues: queues, Concurrency: 4}}}
}

func (r *rig) enqueue(class, q, args string) uint64 {
	r.t.Helper()
	res, err := r.s.Enqueue(context.Background(), queue.NewJob{Class: class, Queue: q, Args: json.RawMessage(args)})
	if err != nil {
		r.t.Fatal(err)
	}
	return res.ID
}

// waitFor waits, on the store's change notifications, until the job satisfies
// cond. It is bounded by the test's deadline.
func (r *rig) waitFor(id uint64, what string, cond func(*queue.Job) bool) *queue.Job {
	r.t.Helper()
	sub := r.s.Subscribe()
	defer sub.Close()
	ctx, cancel := r.deadline()
	defer cancel()
	for {
		j, err := r.s.Get(id)
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			r.t.Fatalf("job %d never became %s; it is %+v", id, what, j)
		}
	}
}

// poll asks until the job satisfies cond, for what no commit announces (a job
// becoming stuck). The pause between questions is not a guess at how long it
// takes: the bound is the test's deadline.
func (r *rig) poll(id uint64, what string, cond func(*queue.Job) bool) *queue.Job {
	r.t.Helper()
	ctx, cancel := r.deadline()
	defer cancel()
	for {
		j, err := r.s.Get(id)
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			r.t.Fatalf("job %d never became %s; it is %+v", id, what, j)
		}
	}
}

// deadline is a context that ends a little before the test's deadline.
func (r *rig) deadline() (context.Context, context.CancelFunc) {
	if d, ok := r.t.Deadline(); ok {
		return context.WithDeadline(context.Background(), d.Add(-5*time.Second))
	}
	return context.WithCancel(context.Background())
}

func (r *rig) waitState(id uint64, st queue.State) *queue.Job {
	r.t.Helper()
	return r.waitFor(id, st.String(), func(j *queue.Job) bool { return j.State == st })
}

func TestBuiltinsRunToTheirOutcome(t *testing.T) {
	t.Parallel()
	r := newRig(t, oneLane("default"), Options{})
	if err := r.pool.Start(); err != nil {
		t.Fatal(err)
	}
	noop := r.enqueue(NoopJob, "default", "")
	sleep := r.enqueue(SleepJob, "default", `{"ms":5}`)
	transient := r.enqueue(FailJob, "default", `{"kind":"transient","message":"503 from bridge"}`)
	auth := r.enqueue(FailJob, "default", `{"kind":"authentication","message":"session expired"}`)
	badArgs := r.enqueue(SleepJob, "default", `{"seconds":5}`)

	r.waitState(noop, queue.StateDone)
	r.waitState(sleep, queue.StateDone)
	j := r.waitState(transient, queue.StateRetry)
	if j.Attempt != 1 || j.Errors[0].Message != "503 from bridge" || j.Errors[0].Class != "Error" {
		t.Fatalf("transient failure %+v", j)
	}
	// Sidekiq's curve gives 15–24 s; the queue rounds a retry up to a whole
	// second.
	if wait := j.RunAt.Sub(j.Errors[0].At); wait < 15*time.Second || wait > 26*time.Second {
		t.Fatalf("first retry in %v, want Sidekiq's 15–24 s (rounded up to a second)", wait)
	}
	j = r.waitState(auth, queue.StateDead)
	if j.Attempt != 1 {
		t.Fatalf("authentication failure was retried: %+v", j)
	}
	j = r.waitState(badArgs, queue.StateDead)
	if !strings.Contains(j.Errors[0].Message, "unknown arg") {
		t.Fatalf("bad args: %+v", j.Errors)
	}
}

func TestPanicTimeoutSnoozeUnknownClass(t *testing.T) {
	t.Parallel()
	released := make(chan struct{})
	r := newRig(t, oneLane("q"), Options{},
		Class{Name: "Panics", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(context.Context, *queue.Job) error {
			panic("kaboom")
		})},
		Class{Name: "Slow", Queue: "q", Args: FreeForm, Timeout: 10 * time.Millisecond, Handler: HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			<-ctx.Done()
			return ctx.Err()
		})},
		Class{Name: "Sleepy", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(_ context.Context, j *queue.Job) error {
			if j.Attempt == 1 && string(j.Args) != `"again"` {
				return Snooze(time.Hour)
			}
			close(released)
			return nil
		})},
	)
	if err := r.pool.Start(); err != nil {
		t.Fatal(err)
	}
	j := r.waitState(r.enqueue("Panics", "q", ""), queue.StateRetry)
	if e := j.Errors[0]; e.Class != "Panic" || e.Message != "panic: kaboom" || !strings.Contains(e.Backtrace, "pool_test.go") {
		t.Fatalf("panic error %+v", e)
	}
	j = r.waitState(r.enqueue("Slow", "q", ""), queue.StateRetry)
	if e := j.Errors[0]; e.Class != "Timeout" || !strings.Contains(e.Message, "timed out after 10ms") {
		t.Fatalf("timeout error %+v", e)
	}
	j = r.waitState(r.enqueue("Sleepy", "q", ""), queue.StateScheduled)
	if j.Attempt != 0 {
		t.Fatalf("snooze spent an attempt: %+v", j)
	}
	j = r.waitState(r.enqueue("Missing", "q", ""), queue.StateRetry)
	if e := j.Errors[0]; e.Class != "UnknownClass" {
		t.Fatalf("unknown class error %+v", e)
	}
}

func TestMiddlewareSeesEveryAttempt(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	record := func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, j *queue.Job) error {
			err := next.Perform(ctx, j)
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%s:%v", j.Class, err))
			mu.Unlock()
			return err
		})
	}
	outer := func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, j *queue.Job) error {
			if j.Class == "MiddlewarePanics" {
				panic("in middleware")
			}
			return next.Perform(ctx, j)
		})
	}
	r := newRig(t, oneLane("q"), Options{Middleware: []Middleware{outer, record}},
		Class{Name: "Panics", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(context.Context, *queue.Job) error { panic("p") })},
		Class{Name: "MiddlewarePanics", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(context.Context, *queue.Job) error { return nil })},
	)
	r.pool.Start()
	r.waitState(r.enqueue(NoopJob, "q", ""), queue.StateDone)
	r.waitState(r.enqueue("Panics", "q", ""), queue.StateRetry)
	j := r.waitState(r.enqueue("MiddlewarePanics", "q", ""), queue.StateRetry)
	if j.Errors[0].Message != "panic: in middleware" {
		t.Fatalf("middleware panic %+v", j.Errors)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "NoopJob:<nil>" || seen[1] != "Panics:panic: p" {
		t.Fatalf("middleware saw %v", seen)
	}
}

func TestGateHoldsLaneUntilOpened(t *testing.T) {
	t.Parallel()
	topo := Topology{Lanes: []Lane{
		{Name: "default", Queues: []string{"default"}, Concurrency: 2},
		{Name: "ai", Queues: []string{"ai"}, Concurrency: 1},
	}}
	r := newRig(t, topo, Options{})
	if err := r.pool.SetGate("ai", false, "local AI down"); err != nil {
		t.Fatal(err)
	}
	r.pool.Start()
	held := r.enqueue(NoopJob, "ai", "")
	r.waitState(r.enqueue(NoopJob, "default", ""), queue.StateDone)
	r.s.Flush(context.Background())
	if j, _ := r.s.Get(held); j.State != queue.StateReady {
		t.Fatalf("held job is %s", j.State)
	}
	st := r.pool.Stats()
	if st[1].Open || st[1].Reason != "local AI down" {
		t.Fatalf("stats %+v", st[1])
	}
	r.pool.SetGate("ai", true, "")
	r.waitState(held, queue.StateDone)
	if err := r.pool.SetGate("nope", true, ""); err == nil {
		t.Fatal("gate of unknown lane accepted")
	}
}

func TestStopCancelsAfterTimeoutAndSpendsNoAttempt(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 10)
	r := newRig(t, Topology{Lanes: []Lane{{Name: "main", Queues: []string{"q"}, Concurrency: 1}}},
		Options{ShutdownTimeout: 20 * time.Millisecond},
		Class{Name: "Forever", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})},
	)
	r.pool.Start()
	running := r.enqueue("Forever", "q", "")
	waiting := r.enqueue("Forever", "q", "")
	<-started
	if err := r.pool.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{running, waiting} {
		j, _ := r.s.Get(id)
		if j.State != queue.StateReady || j.Attempt != 0 || len(j.Errors) != 0 {
			t.Fatalf("job %d after stop: %+v", id, j)
		}
	}
}

// TestStopKeepsRealFailures: after the shutdown cancels the jobs' contexts,
// only a handler that returns that cancellation gets its job back untouched; a
// real failure (an authentication error, a Kill, any other error) is the
// attempt's outcome, as it would be at any other time.
func TestStopKeepsRealFailures(t *testing.T) {
	t.Parallel()
	outcomes := map[string]func(ctx context.Context) error{
		"ReturnsCancel": func(ctx context.Context) error { return fmt.Errorf("interrupted: %w", ctx.Err()) },
		"AuthFails": func(context.Context) error {
			return &fault.Error{Kind: fault.Authentication, Err: errors.New("session expired")}
		},
		"Kills": func(context.Context) error { return Kill(errors.New("bad args")) },
		"Fails": func(context.Context) error { return errors.New("upstream 500") },
	}
	started := make(chan struct{}, len(outcomes))
	var classes []Class
	for name, outcome := range outcomes {
		classes = append(classes, Class{Name: name, Queue: "q", Args: NoArgs, Handler: HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return outcome(ctx)
		})})
	}
	r := newRig(t, Topology{Lanes: []Lane{{Name: "main", Queues: []string{"q"}, Concurrency: len(outcomes)}}},
		Options{ShutdownTimeout: time.Millisecond}, classes...)
	r.pool.Start()
	ids := map[string]uint64{}
	for name := range outcomes {
		ids[name] = r.enqueue(name, "q", "")
	}
	for range outcomes {
		<-started
	}
	if err := r.pool.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		st      queue.State
		attempt int
	}{
		"ReturnsCancel": {queue.StateReady, 0},
		"AuthFails":     {queue.StateDead, 1},
		"Kills":         {queue.StateDead, 1},
		"Fails":         {queue.StateRetry, 1},
	} {
		j, err := r.s.Get(ids[name])
		if err != nil {
			t.Fatal(err)
		}
		if j.State != want.st || j.Attempt != want.attempt {
			t.Errorf("%s after stop: %s attempt %d, want %s attempt %d", name, j.State, j.Attempt, want.st, want.attempt)
		}
	}
}

// TestLeaseIsTheClassTimeout: an attempt's lease runs from its begin for its
// class's timeout, however long; a handler that outlives it, ignoring its
// context, shows as stuck while the lane's other workers go on.
func TestLeaseIsTheClassTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	long := make(chan struct{}, 1)
	r := newRig(t, Topology{Lanes: []Lane{{Name: "main", Queues: []string{"q"}, Concurrency: 3}}},
		Options{ShutdownTimeout: time.Millisecond}, // the long job is cancelled at the end
		Class{Name: "Long", Queue: "q", Args: NoArgs, Timeout: 2 * time.Hour, Handler: HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			long <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})},
		Class{Name: "Hangs", Queue: "q", Args: NoArgs, Timeout: 20 * time.Millisecond, Handler: HandlerFunc(func(context.Context, *queue.Job) error {
			<-release // ignores its context
			return nil
		})},
	)
	r.pool.Start()
	longID := r.enqueue("Long", "q", "")
	<-long
	j, err := r.s.Get(longID)
	if err != nil {
		t.Fatal(err)
	}
	if got := j.LeaseUntil.Sub(j.StartedAt); got != 2*time.Hour || j.Stuck {
		t.Fatalf("lease of a 2 h class: %v after the start (%+v)", got, j)
	}
	hung := r.enqueue("Hangs", "q", "")
	j = r.poll(hung, "stuck", func(j *queue.Job) bool { return j.Stuck })
	if j.State != queue.StateRunning || j.LeaseUntil.Sub(j.StartedAt) != 20*time.Millisecond {
		t.Fatalf("stuck job %+v", j)
	}
	if ids := r.s.Stuck(); len(ids) != 1 || ids[0] != hung {
		t.Fatalf("stuck jobs %v, want [%d]", ids, hung)
	}
	r.waitState(r.enqueue(NoopJob, "q", ""), queue.StateDone) // the lane goes on
	close(release)
	r.waitState(hung, queue.StateDone)
}

func TestStopWaitsForRunningJobs(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	r := newRig(t, oneLane("q"), Options{ShutdownTimeout: time.Hour},
		Class{Name: "Blocks", Queue: "q", Args: FreeForm, Handler: HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			close(started)
			<-release
			return nil
		})},
	)
	r.pool.Start()
	id := r.enqueue("Blocks", "q", "")
	<-started
	stopped := make(chan error)
	go func() { stopped <- r.pool.Stop(context.Background()) }()
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if j, _ := r.s.Get(id); j.State != queue.StateDone {
		t.Fatalf("job %+v", j)
	}
}

func TestRegistryRefusesMistakes(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	h := HandlerFunc(func(context.Context, *queue.Job) error { return nil })
	if err := reg.Register(Class{Name: "A", Queue: "q", Handler: h, Args: NoArgs}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Class{
		{Name: "A", Queue: "q", Handler: h, Args: NoArgs},
		{Name: "", Queue: "q", Handler: h, Args: NoArgs},
		{Name: "B", Queue: "", Handler: h, Args: NoArgs},
		{Name: "C", Queue: "q", Args: NoArgs},
		{Name: "D", Queue: "q", Handler: h, Timeout: -1, Args: NoArgs},
		{Name: "E", Queue: "q", Handler: h},
	} {
		if err := reg.Register(c); err == nil {
			t.Errorf("registered %+v", c)
		}
	}
	if names := reg.Names(); len(names) != 1 || names[0] != "A" {
		t.Fatalf("names %v", names)
	}
}

func TestSidekiqBackoff(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int][2]int{1: {15, 24}, 2: {16, 34}, 5: {271, 316}, 25: {331791, 332016}} {
		for range 50 {
			d := SidekiqBackoff(attempt)
			if d < time.Duration(want[0])*time.Second || d > time.Duration(want[1])*time.Second {
				t.Fatalf("attempt %d: %v outside [%d, %d] s", attempt, d, want[0], want[1])
			}
		}
	}
}

type namedErr struct{}

func (namedErr) Error() string { return "named" }

func TestErrorClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("x"), "Error"},
		{fmt.Errorf("wrap: %w", namedErr{}), "lanes.namedErr"},
		{&fault.Error{Kind: fault.Transient, Err: errors.New("x")}, "Error"},
		{Kill(namedErr{}), "lanes.namedErr"},
		{&UnknownClassError{Class: "X"}, "UnknownClass"},
		{&PanicError{Value: 1}, "Panic"},
		{fmt.Errorf("ctx: %w", context.DeadlineExceeded), "context.deadlineExceededError"},
	} {
		if got := ErrorClass(tc.err); got != tc.want {
			t.Errorf("ErrorClass(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
