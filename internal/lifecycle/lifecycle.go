// Package lifecycle is the one start/stop shape of Conveyor's background
// loops (queue snapshots, the local-AI watch, the failure writer, the
// capture settler, the scheduler, the broadcaster, the lanes, the HTTP
// server), modelled on River's startstop but written for our needs:
// stopping takes a context, because our loops drain (a last snapshot, the
// failures still pending) and must give up at a deadline.
//
//   - [Service] is the shape: Start(ctx) then Stop(ctx), both returning an
//     error. [Hooks] turns a pair of functions into a Service.
//   - [Stack] starts services in order and stops them in reverse: the app
//     keeps one for what newApp opened and one for what start started.
//   - [Loop] runs one background goroutine: started once, stopped by
//     cancelling its context with the cause [ErrStopped], then waited for.
//
// It lives under internal/ because it is plumbing shared by every layer
// (data and cron use Loop), not a product area.
package lifecycle

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is the cause of a Loop's context when Stop cancelled it, so
// that a loop can tell a requested stop from its parent context ending
// (context.Cause(ctx) == ErrStopped).
var ErrStopped = errors.New("lifecycle: stopped")

// Service is a part that starts and stops. Start returns once the part is
// running (its goroutines started); Stop returns once it has stopped, or
// when ctx ends first, with an error. Stop must tolerate a part that never
// started.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Hooks is a Service made of two functions; either may be nil (a part that
// is already running when it is pushed has no OnStart, one that holds
// nothing has no OnStop). Name says what it is, for errors.
type Hooks struct {
	Name    string
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start calls OnStart.
func (h Hooks) Start(ctx context.Context) error {
	if h.OnStart == nil {
		return nil
	}
	return h.OnStart(ctx)
}

// Stop calls OnStop.
func (h Hooks) Stop(ctx context.Context) error {
	if h.OnStop == nil {
		return nil
	}
	return h.OnStop(ctx)
}

// Stack holds the services that are running, in the order they started.
// Its zero value is empty and ready to use; it is safe for concurrent use.
type Stack struct {
	mu      sync.Mutex
	running []Service
}

// Start starts each service in order, pushing each one that started. At
// the first error it returns that error and starts no more; the services
// already started stay on the stack, for Stop.
func (s *Stack) Start(ctx context.Context, services ...Service) error {
	for _, svc := range services {
		if err := svc.Start(ctx); err != nil {
			return err
		}
		s.Push(svc)
	}
	return nil
}

// Push records services that are already running (their constructor
// started them), so that Stop stops them.
func (s *Stack) Push(services ...Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = append(s.running, services...)
}

// Stop stops every service on the stack, the last started first, and
// empties it. A service's error does not keep the ones below it from
// stopping; the errors are joined.
func (s *Stack) Stop(ctx context.Context) error {
	s.mu.Lock()
	running := s.running
	s.running = nil
	s.mu.Unlock()
	var errs []error
	for i := len(running) - 1; i >= 0; i-- {
		errs = append(errs, running[i].Stop(ctx))
	}
	return errors.Join(errs...)
}

// Loop runs one background goroutine. Its zero value is ready to use.
type Loop struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// Go runs run on a new goroutine with a context derived from ctx, which
// Stop cancels with the cause ErrStopped. It reports false, and runs
// nothing, when the loop has been started before: a Loop runs once.
func (l *Loop) Go(ctx context.Context, run func(ctx context.Context)) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return false
	}
	ctx, l.cancel = context.WithCancelCause(ctx)
	done := make(chan struct{})
	l.done = done
	go func() {
		defer close(done)
		run(ctx)
	}()
	return true
}

// Done returns a channel that is closed once run has returned; nil before
// Go.
func (l *Loop) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done
}

// Cancel cancels run's context with the cause ErrStopped and returns at
// once; Stop also waits. Cancelling a loop that never started does nothing.
func (l *Loop) Cancel() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel(ErrStopped)
	}
}

// Stop cancels run's context with the cause ErrStopped and waits until run
// has returned, or ctx ends (then it returns ctx's error; run goes on
// winding down). Stopping a loop that never started does nothing; stopping
// it again waits again.
func (l *Loop) Stop(ctx context.Context) error {
	l.Cancel()
	done := l.Done()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
