package lanes

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"conveyor/queue"
)

// JobRequest is a job as a producer asks for it: a class and its args,
// and the options the producer chose. Zero options take the class's
// defaults.
type JobRequest struct {
	Class string
	Args  json.RawMessage
	// Queue is where the job goes; "" means the class's queue.
	Queue string
	// MaxAttempts 0 means the class's (and, when the class says none, the
	// store's); otherwise 1..queue.MaxAttemptsLimit.
	MaxAttempts int
	RunAt       time.Time
	UniqueKey   string
	UniqueFor   time.Duration
	Context     map[string]string
}

// NewJob is the one place a job is made from (class, args, options): every
// producer — the HTTP API, the CLI through it, the schedule, the fan-outs,
// the failure retrier, declared classes — calls it. It checks that the
// class is registered, fills in the class's queue and max attempts, checks
// max attempts against queue.MaxAttemptsLimit, that a lane of topo serves
// the queue (when topo has lanes), and the args against the class's
// declaration. An error is a *queue.ValidationError whose Field is spelled
// as in the API ("class", "queue", "max_attempts", "args", "args.ms") and
// whose Reason names the class. The store checks the rest (sizes, names,
// unique key, context) when the job is enqueued.
func (r *Registry) NewJob(topo Topology, req JobRequest) (queue.NewJob, error) {
	bad := func(field, format string, a ...any) error {
		return &queue.ValidationError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if req.Class == "" {
		return queue.NewJob{}, bad("class", "is required")
	}
	cls, ok := r.Lookup(req.Class)
	if !ok {
		return queue.NewJob{}, bad("class", "unknown class %q%s", req.Class, suggest(req.Class, r.Names()))
	}
	nj := queue.NewJob{
		Class: req.Class, Queue: req.Queue, Args: req.Args, MaxAttempts: cls.MaxAttempts,
		RunAt: req.RunAt, UniqueKey: req.UniqueKey, UniqueFor: req.UniqueFor, Context: req.Context,
	}
	if len(topo.Lanes) > 0 {
		if nj.Queue == "" {
			if _, ok := topo.LaneOf(cls.Queue); !ok {
				return queue.NewJob{}, bad("queue", "class %s goes to queue %q, which no lane serves: name a queue", req.Class, cls.Queue)
			}
		} else if _, ok := topo.LaneOf(nj.Queue); !ok {
			return queue.NewJob{}, bad("queue", "unknown queue %q: no lane serves it%s", nj.Queue, suggest(nj.Queue, topo.Queues()))
		}
	}
	if nj.Queue == "" {
		nj.Queue = cls.Queue
	}
	switch n := req.MaxAttempts; {
	case n < 0 || n > queue.MaxAttemptsLimit:
		return queue.NewJob{}, bad("max_attempts", "must be 1..%d (got %d)", queue.MaxAttemptsLimit, n)
	case n > 0:
		nj.MaxAttempts = n
	}
	if err := cls.Args.Check(req.Args); err != nil {
		var ae *ArgsError
		if !errors.As(err, &ae) {
			ae = &ArgsError{Reason: err.Error()}
		}
		field := "args"
		if ae.Field != "" {
			field += "." + ae.Field
		}
		return queue.NewJob{}, bad(field, "%s: %s", req.Class, ae.Reason)
	}
	return nj, nil
}

// CheckArgs checks args against class's declaration, as NewJob does; the
// error is an *ArgsError. An unknown class is an error too.
func (r *Registry) CheckArgs(class string, args json.RawMessage) error {
	cls, ok := r.Lookup(class)
	if !ok {
		return fmt.Errorf("class %s is not registered", class)
	}
	return cls.Args.Check(args)
}

// suggest proposes a known name that differs only in case.
func suggest(name string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
	}
	return ""
}
