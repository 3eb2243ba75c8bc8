package lanes

import (
	"cmp"
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

// SleepArgs are SleepJob's args: {"ms": N}, N in 0..MaxSleep.
type SleepArgs struct {
	MS int `json:"ms"`
}

// Validate checks the range of ms.
func (a *SleepArgs) Validate() error {
	if d := time.Duration(a.MS) * time.Millisecond; a.MS < 0 || d > MaxSleep {
		return &ArgsError{Field: "ms", Reason: fmt.Sprintf("must be 0..%d (got %d)", MaxSleep.Milliseconds(), a.MS)}
	}
	return nil
}

// FailArgs are FailJob's args: {"kind": "transient|authentication|runtime",
// "message": "…"}, both optional (runtime, and a stock message).
type FailArgs struct {
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message,omitempty"`
}

// Validate checks the kind.
func (a *FailArgs) Validate() error {
	if a.Kind == "" || fault.Kind(a.Kind).Valid() {
		return nil
	}
	return &ArgsError{Field: "kind", Reason: fmt.Sprintf("must be transient, authentication or runtime (got %q)", a.Kind)}
}

// MaxSleep bounds SleepJob.
const MaxSleep = time.Hour

// RegisterBuiltins registers NoopJob (free-form args, ignored), SleepJob
// and FailJob.
func RegisterBuiltins(r *Registry) error {
	return errors.Join(
		r.Register(Class{Name: NoopJob, Queue: "default", Args: FreeForm, Handler: HandlerFunc(func(context.Context, *queue.Job) error {
			return nil
		})}),
		r.Register(Class{Name: SleepJob, Queue: "default", Handler: Typed(func(ctx context.Context, _ *queue.Job, a SleepArgs) error {
			t := time.NewTimer(time.Duration(a.MS) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})}),
		r.Register(Class{Name: FailJob, Queue: "default", Handler: Typed(func(_ context.Context, _ *queue.Job, a FailArgs) error {
			kind := cmp.Or(fault.Kind(a.Kind), fault.Runtime)
			msg := a.Message
			if msg == "" {
				msg = "FailJob failed on purpose"
			}
			return &fault.Error{Kind: kind, Err: errors.New(msg)}
		})}),
	)
}
