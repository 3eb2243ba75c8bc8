package lanes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"conveyor/ops/fault"
	"conveyor/queue"
)

// Defaults for Options.
const (
	DefaultShutdownTimeout = 25 * time.Second
	// DefaultAbandonAfter is how long Stop waits, after cancelling the jobs'
	// contexts, for handlers that ignore them.
	DefaultAbandonAfter = 5 * time.Second
)

// Options configure a Pool.
type Options struct {
	// ShutdownTimeout is how long Stop lets running jobs finish before it cancels
	// their contexts (default 25 s, Sidekiq's).
	ShutdownTimeout time.Duration
	// AbandonAfter is how long Stop then waits for handlers that ignore their
	// context (default 5 s); their jobs stay running and are rescued at restart.
	AbandonAfter time.Duration
	// Middleware wraps every handler, the first outermost (failure capture,
	// metrics, logging). Panics inside handlers reach it as *PanicError.
	Middleware []Middleware
	// Retryable decides whether a failed job may be retried automatically.
	// Default: not when the error says its kind is `authentication`.
	Retryable func(error) bool
	// MaxPrefetch is passed to each lane's consumer (default queue.DefaultMaxPrefetch).
	MaxPrefetch int
	Logger      *slog.Logger
	Now         func() time.Time
}

// Pool runs the lanes of a topology against a store.
type Pool struct {
	store    *queue.Store
	reg      *Registry
	opts     Options
	log      *slog.Logger
	lanes    []*lane
	byName   map[string]*lane
	handlers map[string]Handler

	runCtx    context.Context
	cancelRun context.CancelFunc
	stopping  chan struct{}
	wg        sync.WaitGroup
	started   atomic.Bool
	quiet     atomic.Bool
	stopOnce  sync.Once
	stopErr   error
}

type lane struct {
	Lane
	c         *queue.Consumer
	busy      atomic.Int64
	processed atomic.Int64
	failed    atomic.Int64

	gateMu sync.Mutex
	open   bool
	reason string
}

// New builds a pool; Start starts it.
func New(store *queue.Store, reg *Registry, topo Topology, opts Options) (*Pool, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	opts.ShutdownTimeout = cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	opts.AbandonAfter = cmp.Or(opts.AbandonAfter, DefaultAbandonAfter)
	if opts.ShutdownTimeout < 0 || opts.AbandonAfter < 0 {
		return nil, fmt.Errorf("lanes: shutdown timeout must not be negative")
	}
	if opts.Retryable == nil {
		opts.Retryable = DefaultRetryable
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pool{store: store, reg: reg, opts: opts, log: opts.Logger, byName: map[string]*lane{},
		stopping: make(chan struct{})}
	p.runCtx, p.cancelRun = context.WithCancel(context.Background())
	for _, l := range topo.Lanes {
		ln := &lane{Lane: l, open: true}
		p.lanes = append(p.lanes, ln)
		p.byName[l.Name] = ln
	}
	return p, nil
}

// DefaultRetryable refuses automatic retries for authentication failures:
// the first error in the chain with a FailureKind() method (fault.Error, a
// handler's own type) decides, and only fault.Authentication is refused.
func DefaultRetryable(err error) bool {
	var k interface{ FailureKind() string }
	return !errors.As(err, &k) || fault.Kind(k.FailureKind()).Retryable()
}

// Start registers each lane's consumer and starts its workers. Handlers are
// taken from the registry as it is now.
func (p *Pool) Start() error {
	if !p.started.CompareAndSwap(false, true) {
		return fmt.Errorf("lanes: pool already started")
	}
	p.handlers = map[string]Handler{}
	for _, name := range p.reg.Names() {
		c, _ := p.reg.Lookup(name)
		// A panic in the handler reaches the middleware as an error; a panic in a
		// middleware is caught by the outer recoverer.
		p.handlers[name] = recoverer(Chain(recoverer(c.Handler), p.opts.Middleware...))
	}
	for _, l := range p.lanes {
		if l.Concurrency == 0 {
			p.log.Warn("lane disabled (concurrency 0): its jobs wait", "lane", l.Name)
			continue
		}
		l.gateMu.Lock()
		c, err := p.store.Consume(queue.ConsumerConfig{
			Name: l.Name, Queues: l.Queues, Weights: l.Weights, Concurrency: l.Concurrency,
			MaxPrefetch: p.opts.MaxPrefetch, Closed: !l.open || p.quiet.Load(),
		})
		l.c = c
		l.gateMu.Unlock()
		if err != nil {
			return err
		}
		for range l.Concurrency {
			p.wg.Add(1)
			go p.work(l)
		}
	}
	return nil
}

// SetGate opens or closes a lane's gate. While closed the lane claims nothing
// and its jobs wait in their queues; reason says why (shown in Stats).
func (p *Pool) SetGate(laneName string, open bool, reason string) error {
	l := p.byName[laneName]
	if l == nil {
		return fmt.Errorf("lanes: no lane %q", laneName)
	}
	l.gateMu.Lock()
	defer l.gateMu.Unlock()
	l.open, l.reason = open, reason
	if open {
		l.reason = ""
	}
	if l.c != nil {
		l.c.SetOpen(open && !p.quiet.Load())
	}
	return nil
}

// SetQuiet makes every lane stop claiming jobs (Sidekiq's "quiet"), or
// claim again. Running jobs finish; jobs wait in their queues. A gate keeps
// its own state: a lane claims only while its gate is open and the pool is
// not quiet.
func (p *Pool) SetQuiet(quiet bool) {
	p.quiet.Store(quiet)
	for _, l := range p.lanes {
		l.gateMu.Lock()
		if l.c != nil {
			l.c.SetOpen(l.open && !quiet)
		}
		l.gateMu.Unlock()
	}
}

// Quiet reports whether the pool is quiet (SetQuiet).
func (p *Pool) Quiet() bool { return p.quiet.Load() }

// LaneStats describes a lane now.
type LaneStats struct {
	Name        string
	Queues      []string
	Strict      bool
	Concurrency int
	Busy        int
	Open        bool
	Reason      string // why the gate is closed
	Processed   int64  // attempts finished since start
	Failed      int64
}

// Stats returns every lane's state, in topology order.
func (p *Pool) Stats() []LaneStats {
	out := make([]LaneStats, 0, len(p.lanes))
	for _, l := range p.lanes {
		l.gateMu.Lock()
		open, reason := l.open, l.reason
		l.gateMu.Unlock()
		out = append(out, LaneStats{
			Name: l.Name, Queues: slices.Clone(l.Queues), Strict: l.Strict(), Concurrency: l.Concurrency,
			Busy: int(l.busy.Load()), Open: open, Reason: reason,
			Processed: l.processed.Load(), Failed: l.failed.Load(),
		})
	}
	return out
}

func (p *Pool) work(l *lane) {
	defer p.wg.Done()
	for {
		select {
		case <-p.stopping:
			return
		case cl, ok := <-l.c.Claims():
			if !ok {
				return
			}
			select {
			case <-p.stopping:
				// Stopping: a job not yet started goes back untouched.
				p.report(cl.Finish(queue.Release()))
				return
			default:
			}
			p.run(l, cl)
		}
	}
}

func (p *Pool) report(err error) {
	if err != nil {
		p.log.Error("could not hand a job's outcome to the store; it will be rescued at restart", "err", err)
	}
}

// run performs one attempt and hands its outcome to the store.
func (p *Pool) run(l *lane, cl *queue.Claim) {
	l.busy.Add(1)
	defer l.busy.Add(-1)
	j := cl.Job
	cls, known := p.reg.Lookup(j.Class)
	timeout := cmp.Or(cls.Timeout, DefaultTimeout)
	// The attempt's lease is its timeout: past it, a handler that has not
	// returned shows as stuck.
	if err := cl.Begin(p.runCtx, timeout); err != nil {
		p.report(cl.Finish(queue.Release()))
		return
	}
	h := p.handlers[j.Class]
	var err error
	if !known || h == nil {
		err = &UnknownClassError{Class: j.Class}
	} else {
		ctx, cancel := context.WithTimeout(p.runCtx, timeout)
		stopWatch := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				p.log.Warn("job passed its timeout and its handler has not returned: stuck until it does",
					"lane", l.Name, "job", j.ID, "class", j.Class, "timeout", timeout)
			}
		})
		err = h.Perform(ctx, j)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && p.runCtx.Err() == nil {
			err = &TimeoutError{Timeout: timeout, Err: err}
		}
		stopWatch()
		cancel()
	}
	p.report(cl.Finish(p.outcome(l, cl, cls, err)))
}

// outcome turns an attempt's error into the job's next state.
func (p *Pool) outcome(l *lane, cl *queue.Claim, cls Class, err error) queue.Outcome {
	l.processed.Add(1)
	if err == nil {
		return queue.Ack()
	}
	if p.runCtx.Err() != nil && errors.Is(err, context.Canceled) {
		// Interrupted by shutdown (the handler returned its context's own
		// cancellation): back to ready without spending the attempt. Any other
		// error is the attempt's outcome, shutdown or not.
		return queue.Release()
	}
	var snooze *snoozeError
	if errors.As(err, &snooze) {
		return queue.Snooze(p.opts.Now().Add(snooze.d))
	}
	l.failed.Add(1)
	ae := AttemptErrorOf(err, p.opts.Now())
	var kill *killError
	if errors.As(err, &kill) || !p.opts.Retryable(err) {
		return queue.Kill(ae)
	}
	backoff := cls.Backoff
	if backoff == nil {
		backoff = SidekiqBackoff
	}
	return queue.Fail(ae, p.opts.Now().Add(backoff(cl.Attempt)))
}

// AttemptErrorOf describes an error as a job's attempt error: its class (the
// most specific error type in the chain), message and, for panics, the stack.
func AttemptErrorOf(err error, at time.Time) queue.AttemptError {
	ae := queue.AttemptError{Class: ErrorClass(err), Message: err.Error(), At: at}
	var pe *PanicError
	if errors.As(err, &pe) {
		ae.Backtrace = pe.Stack
	}
	return ae
}

// ErrorClass names an error's kind the way Sidekiq shows an exception class:
// an ErrorClass() method wins, then the first error in the chain whose type is
// not a generic wrapper.
func ErrorClass(err error) string {
	var named interface{ ErrorClass() string }
	if errors.As(err, &named) {
		return named.ErrorClass()
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.(type) {
		case *killError, fault.Error, *fault.Error:
			continue
		}
		name := reflect.TypeOf(e).String()
		switch name {
		case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
			continue
		}
		if len(name) > 0 && name[0] == '*' {
			name = name[1:]
		}
		return name
	}
	return "Error"
}

// UnknownClassError is the failure of a job whose class this Conveyor does not
// register (removed after the job was enqueued); it is retried, in case a
// restart with the class fixes it.
type UnknownClassError struct{ Class string }

func (e *UnknownClassError) Error() string {
	return fmt.Sprintf("unknown job class %q: no handler is registered for it", e.Class)
}

// ErrorClass implements the naming hook.
func (e *UnknownClassError) ErrorClass() string { return "UnknownClass" }

// TimeoutError is the failure of an attempt that outlived its class's timeout.
type TimeoutError struct {
	Timeout time.Duration
	Err     error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s: %v", e.Timeout, e.Err)
}
func (e *TimeoutError) Unwrap() error      { return e.Err }
func (e *TimeoutError) ErrorClass() string { return "Timeout" }

// ErrorClass of a panic.
func (e *PanicError) ErrorClass() string { return "Panic" }

// Stop stops the lanes gracefully: no more claims; running jobs get up to
// ShutdownTimeout to finish, then their contexts are cancelled and they go back
// to ready without spending an attempt; jobs claimed but not started go back
// untouched. It returns when every outcome is committed. Nothing is lost.
func (p *Pool) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

func (p *Pool) stop(ctx context.Context) error {
	close(p.stopping)
	for _, l := range p.lanes {
		if l.c != nil {
			l.c.Drain()
		}
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	grace := time.NewTimer(p.opts.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		p.log.Warn("shutdown timeout passed; cancelling running jobs", "busy", p.busy())
	case <-ctx.Done():
	}
	p.cancelRun()
	abandon := time.NewTimer(p.opts.AbandonAfter)
	defer abandon.Stop()
	select {
	case <-done:
	case <-abandon.C:
		p.log.Error("handlers ignored their cancelled context; their jobs stay running and are rescued at restart",
			"busy", p.busy())
	}
	var errs []error
	for _, l := range p.lanes {
		if l.c != nil {
			errs = append(errs, l.c.Close(context.WithoutCancel(ctx)))
		}
	}
	errs = append(errs, p.store.Flush(context.WithoutCancel(ctx)))
	return errors.Join(errs...)
}

func (p *Pool) busy() int {
	n := 0
	for _, l := range p.lanes {
		n += int(l.busy.Load())
	}
	return n
}
