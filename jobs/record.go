package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

const (
	// trimEvery is how often the recorder trims old records.
	trimEvery = time.Hour
	// maxSnoozes is how many Retry-After answers a job honours as snoozes;
	// after that a transient answer spends an attempt like any other, so
	// that a service that always asks to wait cannot hold a job forever.
	maxSnoozes = 5
	// snoozeMark ends the recorded error of an answer honoured as a snooze.
	snoozeMark = "(snoozed: Retry-After)"
)

// recorder writes every outside call and account action against its job,
// and trims what is older than the retention about once an hour. Failing
// to record never fails a job: it is logged.
type recorder struct {
	db        *data.DB
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu      sync.Mutex
	trimmed time.Time
}

func newRecorder(db *data.DB, retention time.Duration, now func() time.Time, log *slog.Logger) *recorder {
	if retention <= 0 {
		retention = DefaultRecordRetention
	}
	return &recorder{db: db, retention: retention, now: now, log: log}
}

func (r *recorder) calls(ctx context.Context, calls ...data.JobCall) {
	if err := r.db.RecordJobCalls(context.WithoutCancel(ctx), calls); err != nil {
		r.log.Error("record outside calls", "err", err)
	}
	r.trim(ctx)
}

func (r *recorder) actions(ctx context.Context, actions ...data.AccountAction) {
	if len(actions) == 0 {
		return
	}
	if err := r.db.RecordAccountActions(context.WithoutCancel(ctx), actions); err != nil {
		r.log.Error("record account actions", "err", err)
	}
}

// trim deletes records past the retention, at most once per trimEvery.
func (r *recorder) trim(ctx context.Context) {
	now := r.now()
	r.mu.Lock()
	due := now.Sub(r.trimmed) >= trimEvery
	if due {
		r.trimmed = now
	}
	r.mu.Unlock()
	if !due {
		return
	}
	if n, err := r.db.TrimJobRecords(context.WithoutCancel(ctx), now.Add(-r.retention)); err != nil {
		r.log.Error("trim outside calls and account actions", "err", err)
	} else if n > 0 {
		r.log.Debug("trimmed outside calls and account actions", "rows", n)
	}
}

// endpointer is a connector that names where its calls go.
type endpointer interface{ Endpoint() string }

// Endpoint names the bridge's calls.
func (b *Bridge) Endpoint() string { return "POST " + b.url }

// Endpoint names the unconfigured connector.
func (Unconfigured) Endpoint() string { return "connector (not configured)" }

// call makes one connector call for job with args, records it, and
// returns the result decoded into out.
func (c *Catalog) call(ctx context.Context, job *queue.Job, accountID int64, args CallArgs, out any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	req := Request{Class: job.Class, Args: raw, Context: job.Context, Attempt: job.Attempt, JobID: job.ID}
	endpoint := "connector"
	if e, ok := c.conn.(endpointer); ok {
		endpoint = e.Endpoint()
	}
	start := time.Now()
	res, err := c.conn.Call(ctx, req)
	if err == nil && out != nil {
		if derr := json.Unmarshal(res, out); derr != nil {
			err = &CallError{Endpoint: endpoint, Status: 200, Kind: fault.Runtime,
				Message: fmt.Sprintf("the answer is not %s's result: %v", job.Class, derr)}
		}
	}
	return c.record(ctx, job, accountID, endpoint+" "+job.Class, start, err)
}

// record records one outside call of job, made since start, and returns
// the job's outcome of its error (outcome: a Retry-After answer snoozes
// the job).
func (c *Catalog) record(ctx context.Context, job *queue.Job, accountID int64, endpoint string, start time.Time, err error) error {
	rec := data.JobCall{JobID: job.ID, AccountID: accountID, Endpoint: endpoint, Status: 200, Latency: time.Since(start)}
	err = c.outcome(ctx, job, err)
	if err != nil {
		rec.Status, rec.Error = statusOf(err), err.Error()
		if isSnooze(err) {
			rec.Error = callErrorText(err) + " " + snoozeMark
		}
	}
	c.rec.calls(ctx, rec)
	return err
}

// outcome turns a call's error into the job's: a permanent one discards
// the job; a transient one with Retry-After snoozes it (up to maxSnoozes
// times); the rest are returned as they are, their kind steering retries.
func (c *Catalog) outcome(ctx context.Context, job *queue.Job, err error) error {
	var ce *CallError
	if !errors.As(err, &ce) {
		return err
	}
	switch {
	case ce.Permanent:
		return lanes.Kill(err)
	case ce.Kind == fault.Transient && ce.RetryAfter > 0:
		if c.snoozes(ctx, job) >= maxSnoozes {
			return err
		}
		return &snoozed{err: ce, d: ce.RetryAfter}
	}
	return err
}

// snoozes counts the answers job honoured as snoozes so far.
func (c *Catalog) snoozes(ctx context.Context, job *queue.Job) int {
	calls, err := c.db.JobCalls(ctx, job.ID)
	if err != nil {
		return 0
	}
	n := 0
	for _, call := range calls {
		if strings.HasSuffix(call.Error, snoozeMark) {
			n++
		}
	}
	return n
}

// snoozed is a Retry-After answer honoured as a snooze: the job returns
// lanes.Snooze for it.
type snoozed struct {
	err *CallError
	d   time.Duration
}

func (s *snoozed) Error() string { return s.err.Error() }

// Unwrap holds both the answer and the snooze the lane acts on.
func (s *snoozed) Unwrap() []error { return []error{s.err, lanes.Snooze(s.d)} }

func isSnooze(err error) bool {
	var s *snoozed
	return errors.As(err, &s)
}

func callErrorText(err error) string {
	var s *snoozed
	if errors.As(err, &s) {
		return s.err.Error()
	}
	return err.Error()
}

// statusOf is the status a failed call is recorded with.
func statusOf(err error) int {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}
