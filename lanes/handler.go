package lanes

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"conveyor/queue"
)

// Handler runs one job. Perform must honour ctx: it is cancelled when the
// class's timeout passes or the lane stops (Go cannot stop a goroutine from
// outside, so a handler that ignores ctx holds its worker until it returns).
type Handler interface {
	Perform(ctx context.Context, job *queue.Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *queue.Job) error

// Perform calls f.
func (f HandlerFunc) Perform(ctx context.Context, job *queue.Job) error { return f(ctx, job) }

// Middleware wraps a handler, as net/http middleware wraps an http.Handler.
type Middleware func(Handler) Handler

// Chain wraps h in the middleware, the first one outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Typed adapts a function that takes decoded args of type T, and declares
// T as its class's args (Register reads it from the handler): NewJob
// refuses args that do not decode into T, with the rules of ArgsOf. Args
// that still do not decode when the job runs (a job enqueued before T
// changed) kill the job: retrying cannot fix them.
func Typed[T any](fn func(ctx context.Context, job *queue.Job, args T) error) Handler {
	return typedHandler[T]{spec: typedOf[T](), fn: fn}
}

type typedHandler[T any] struct {
	spec *typedArgs[T]
	fn   func(ctx context.Context, job *queue.Job, args T) error
}

func (h typedHandler[T]) Perform(ctx context.Context, job *queue.Job) error {
	args, err := h.spec.decode(job.Args)
	if err != nil {
		return Kill(fmt.Errorf("%s: %w", job.Class, err))
	}
	return h.fn(ctx, job, args)
}

// DeclaredArgs is implemented by handlers that declare their class's args
// (Typed does); Register takes a class's Args from it when the class leaves
// Args nil.
type DeclaredArgs interface {
	Args() Args
}

// Args returns T's declaration.
func (h typedHandler[T]) Args() Args { return h.spec }

// killError marks an error after which the job must not be retried.
type killError struct{ err error }

func (e *killError) Error() string { return e.err.Error() }
func (e *killError) Unwrap() error { return e.err }

// Kill wraps err so that the job goes straight to dead with it, without
// retries (River's JobCancel). In Conveyor "kill" always means "to dead"; a
// job is deleted by discarding it (queue.Store.Discard, the API's discard).
func Kill(err error) error {
	if err == nil {
		err = errors.New("killed by its handler")
	}
	return &killError{err: err}
}

// snoozeError asks for the job to run again later without spending an attempt.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("snoozed for %s", e.d) }

// Snooze returns an error that puts the job back to run again after d, without
// spending an attempt (River's JobSnooze).
func Snooze(d time.Duration) error { return &snoozeError{d: max(0, d)} }

// PanicError is the error a handler's panic becomes; Stack is where it panicked.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// recoverer turns a panic in the handler into a *PanicError.
func recoverer(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, job *queue.Job) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = &PanicError{Value: v, Stack: string(debug.Stack())}
			}
		}()
		return next.Perform(ctx, job)
	})
}
