package failures

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// The automatic retry job: the seed's class name, on the maintenance queue
// (the default schedule runs it every ten minutes).
const (
	RetryFailedJob   = "RetryFailedBackgroundJobsJob"
	RetryFailedQueue = "maintenance"
)

// AutoRetryOptions configure the automatic retries
// (RetryFailedBackgroundJobsJob). Zero fields take the defaults.
type AutoRetryOptions struct {
	// BatchSize is the most failures one run retries
	// (DefaultAutoRetryBatch).
	BatchSize int
	// ScanLimit is the most failures one run looks at
	// (DefaultAutoRetryScan).
	ScanLimit int
	// CoolDown is how long after it occurred a failure may be retried
	// automatically (DefaultAutoRetryCoolDown). A retry that fails again
	// is a new failure, so the retries of one chain are at least CoolDown
	// apart.
	CoolDown time.Duration
	// MaxRetries is how many automatic retries one failure chain gets
	// (DefaultAutoRetryMax); retry it by hand after that.
	MaxRetries int
	// PerFingerprint is the most failures of one issue one run retries
	// (DefaultAutoRetryPerFingerprint), so that a broken dependency behind
	// thousands of failures gets a handful of retries at a time.
	PerFingerprint int
}

func (o AutoRetryOptions) withDefaults() AutoRetryOptions {
	o.BatchSize = cmp.Or(o.BatchSize, DefaultAutoRetryBatch)
	o.ScanLimit = cmp.Or(o.ScanLimit, DefaultAutoRetryScan)
	o.CoolDown = cmp.Or(o.CoolDown, DefaultAutoRetryCoolDown)
	o.MaxRetries = cmp.Or(o.MaxRetries, DefaultAutoRetryMax)
	o.PerFingerprint = cmp.Or(o.PerFingerprint, DefaultAutoRetryPerFingerprint)
	return o
}

// Validate reports the first negative field.
func (o AutoRetryOptions) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"BatchSize", int64(o.BatchSize)}, {"ScanLimit", int64(o.ScanLimit)}, {"CoolDown", int64(o.CoolDown)},
		{"MaxRetries", int64(o.MaxRetries)}, {"PerFingerprint", int64(o.PerFingerprint)}} {
		if f.v < 0 {
			return fmt.Errorf("failures: AutoRetryOptions.%s must not be negative", f.name)
		}
	}
	return nil
}

// AutoRetry is one run of the automatic retries: it walks, in id order
// after afterID, the retryable failures (never authentication ones) that
// are still open (retry status none) and occurred at least CoolDown ago,
// and retries those the queue has given up on (their job is dead or gone;
// a job still waiting for the queue's own retry is left to it), at most
// PerFingerprint per issue and BatchSize in all, looking at ScanLimit
// failures at most. result.More says a run stopped at a limit with more to
// look at after result.Next.
func (r *Retrier) AutoRetry(ctx context.Context, opts AutoRetryOptions, afterID int64) (BatchResult, error) {
	if err := opts.Validate(); err != nil {
		return BatchResult{}, err
	}
	opts = opts.withDefaults()
	ff := data.FailureFilter{Conds: []data.Cond{
		{Field: data.FieldRetryable, Op: data.OpEq, Value: true},
		{Field: data.FieldRetryStatus, Op: data.OpEq, Value: string(data.RetryNone)},
		{Field: data.FieldKind, Op: data.OpNe, Value: string(fault.Authentication)},
		{Field: data.FieldOccurredAt, Op: data.OpLe, Value: r.now().Add(-opts.CoolDown)},
	}}
	mode := retryMode{auto: true, maxRetries: opts.MaxRetries}
	res := BatchResult{Next: afterID}
	perFP := map[string]int{}
	for res.Examined < opts.ScanLimit && res.Queued < opts.BatchSize {
		ids, err := r.db.FailureIDs(ctx, ff, res.Next, min(retryChunk, opts.ScanLimit-res.Examined))
		if err != nil {
			return res, err
		}
		if len(ids) == 0 {
			return res, nil
		}
		for _, id := range ids {
			if res.Queued >= opts.BatchSize {
				res.More = true
				return res, nil
			}
			res.Examined++
			res.Next = id
			f, err := r.db.FailureByID(ctx, id)
			if err != nil {
				res.add(err)
				continue
			}
			if perFP[f.Fingerprint] >= opts.PerFingerprint {
				res.Skipped++
				continue
			}
			plan, err := r.check(ctx, f, mode)
			if err == nil {
				_, err = r.act(ctx, f, plan, mode)
			}
			if err == nil {
				perFP[f.Fingerprint]++
			} else if !errors.Is(err, ErrRetryRefused) {
				r.log.Error("automatic retry failed", "failure", id, "error", err)
			}
			res.add(err)
		}
		if err := ctx.Err(); err != nil {
			res.More = true
			return res, err
		}
	}
	ids, err := r.db.FailureIDs(ctx, ff, res.Next, 1)
	res.More = err == nil && len(ids) > 0
	return res, err
}

// autoRetryArgs are RetryFailedBackgroundJobsJob's optional args: where to
// start (by default where the previous run stopped).
type autoRetryArgs struct {
	AfterID *int64 `json:"after_id"`
}

// parseAutoRetryArgs reads RetryFailedBackgroundJobsJob's args: nothing,
// null, [] (a schedule entry without args), {} or {"after_id": N} with
// N >= 0. Anything else is an error: the job is discarded, since running it
// again cannot fix its args.
func parseAutoRetryArgs(raw json.RawMessage) (autoRetryArgs, error) {
	var args autoRetryArgs
	a := bytes.TrimSpace(raw)
	if len(a) == 0 || bytes.Equal(a, []byte("null")) || bytes.Equal(a, []byte("[]")) {
		return args, nil
	}
	dec := json.NewDecoder(bytes.NewReader(a))
	dec.DisallowUnknownFields()
	err := dec.Decode(&args)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil && args.AfterID != nil && *args.AfterID < 0 {
		err = errors.New("after_id must not be negative")
	}
	if err != nil {
		return autoRetryArgs{}, fmt.Errorf("args of %s: want {} or {\"after_id\": N} with N >= 0: %w", RetryFailedJob, err)
	}
	return args, nil
}

// AutoRetryClass is RetryFailedBackgroundJobsJob: each run is one AutoRetry
// that starts where the previous run of this process stopped (or after the
// failure id its args name: {"after_id": N}), and the next run starts from
// the beginning once a run reached the end. With the default schedule (every
// ten minutes) a large backlog is thus retried in bounded batches with a
// pause between them.
func (r *Retrier) AutoRetryClass(opts AutoRetryOptions) (lanes.Class, error) {
	if err := opts.Validate(); err != nil {
		return lanes.Class{}, err
	}
	opts = opts.withDefaults()
	h := lanes.HandlerFunc(func(ctx context.Context, j *queue.Job) error {
		args, err := parseAutoRetryArgs(j.Args)
		if err != nil {
			return lanes.Kill(err)
		}
		after := r.autoNext.Load()
		if args.AfterID != nil {
			after = *args.AfterID
		}
		res, err := r.AutoRetry(ctx, opts, after)
		if res.More {
			r.autoNext.Store(res.Next)
		} else if err == nil {
			r.autoNext.Store(0)
		}
		if res.Examined > 0 {
			r.log.Info("automatic retry run", "examined", res.Examined, "queued", res.Queued, "refused", res.Refused,
				"skipped", res.Skipped, "errors", res.Errors, "more", res.More)
		}
		return err
	})
	args := lanes.ArgsFunc(`none, {} or {"after_id": N} with N >= 0`, func(raw json.RawMessage) error {
		_, err := parseAutoRetryArgs(raw)
		return err
	})
	return lanes.Class{Name: RetryFailedJob, Queue: RetryFailedQueue, Handler: h, Timeout: 10 * time.Minute, Args: args}, nil
}
