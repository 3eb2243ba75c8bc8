package lanes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"conveyor/ops/fault"
	"conveyor/queue"
)

// The diagnostic classes every Conveyor registers, for smoke tests, benchmarks
// and demos. Their queue is `default`.
const (
	NoopJob  = "NoopJob"
	SleepJob = "SleepJob"
	FailJob  = "FailJob"
)

// SleepArgs are SleepJob's args: {"ms": N}.
type SleepArgs struct {
	MS int `json:"ms"`
}

// FailArgs are FailJob's args: {"kind": "transient|authentication|runtime",
// "message": "…"}.
type FailArgs struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// MaxSleep bounds SleepJob.
const MaxSleep = time.Hour

// RegisterBuiltins registers NoopJob, SleepJob and FailJob.
func RegisterBuiltins(r *Registry) error {
	return errors.Join(
		r.Register(Class{Name: NoopJob, Queue: "default", Handler: HandlerFunc(func(context.Context, *queue.Job) error {
			return nil
		})}),
		r.Register(Class{Name: SleepJob, Queue: "default", Handler: Typed(func(ctx context.Context, _ *queue.Job, a SleepArgs) error {
			d := time.Duration(a.MS) * time.Millisecond
			if d < 0 || d > MaxSleep {
				return Discard(fmt.Errorf("ms must be 0..%d (got %d)", MaxSleep.Milliseconds(), a.MS))
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})}),
		r.Register(Class{Name: FailJob, Queue: "default", Handler: Typed(func(_ context.Context, _ *queue.Job, a FailArgs) error {
			kind := fault.Kind(a.Kind)
			switch {
			case kind == "":
				kind = fault.Runtime
			case !kind.Valid():
				return Discard(fmt.Errorf("kind must be transient, authentication or runtime (got %q)", a.Kind))
			}
			msg := a.Message
			if msg == "" {
				msg = "FailJob failed on purpose"
			}
			return &fault.Error{Kind: kind, Err: errors.New(msg)}
		})}),
	)
}
