package failures

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// Defaults for AutoRetryOptions and the batch retries.
const (
	// DefaultAutoRetryBatch is the most failures one run retries.
	DefaultAutoRetryBatch = 100
	// DefaultAutoRetryScan is the most failures one run looks at.
	DefaultAutoRetryScan = 2000
	// DefaultAutoRetryCoolDown is how long after a failure occurred it may
	// be retried automatically.
	DefaultAutoRetryCoolDown = 10 * time.Minute
	// DefaultAutoRetryMax is how many times one failure (and the failures
	// of its retries after it) is retried automatically.
	DefaultAutoRetryMax = 3
	// DefaultAutoRetryPerFingerprint is the most failures of one
	// fingerprint (one issue) one run retries.
	DefaultAutoRetryPerFingerprint = 10
	// DefaultRetryAllLimit is the most failures one RetryMatching call
	// looks at.
	DefaultRetryAllLimit = 1000
	// retryChunk is how many failure ids an automatic run reads at a time.
	retryChunk = 200
	// bulkRetryChunk is how many jobs RetryJobs, or failures
	// RetryMatching, decides with one read and one SQLite transaction.
	bulkRetryChunk = 1000
	// retryWorkers retry failures of one chunk concurrently, so that their
	// enqueues share the queue's commits.
	retryWorkers = 4
)

// RetryResult is a retry that was made.
type RetryResult struct {
	FailureID int64
	// JobID is the job that runs the retry.
	JobID uint64
	// Revived is true when the failed job itself was made ready again (it
	// was waiting to retry, scheduled, or dead); false when a new job was
	// enqueued because the failed one is gone.
	Revived bool
	// Attempts counts the retries of this failure (and the chain of
	// failures before it), this one included.
	Attempts int
}

// RetrierOptions configure a Retrier.
type RetrierOptions struct {
	DB       *data.DB        // failures and pipelines; required
	Store    *queue.Store    // the queue retries go to; required
	Registry *lanes.Registry // a retried class must still be registered; required
	// Topology: a retried queue must still be served by a lane. Required.
	Topology lanes.Topology
	// Bus receives TopicFailures when a retry state changes. Optional.
	Bus *events.Bus
	// Now stamps retries and sets the automatic cool-down (default time.Now).
	Now func() time.Time
	// Logger receives errors of batch retries (default: discard).
	Logger *slog.Logger
}

// Retrier retries captured failures (the seed's Jobs::FailureRetry). Before
// a retry it checks that the retry is actionable — not an authentication
// failure, retryable, not retried or superseded already, its class still
// registered and its queue still served, its pipeline and step not
// finished, no later attempt of the job failed or succeeded, the job not
// queued again already — and otherwise returns a *RefusedError with a
// typed reason. A retry of a job that still exists (waiting to retry,
// scheduled or dead) makes it ready now; a retry of a job the queue no
// longer holds enqueues a new one with the same class, queue, args and
// context, marked with CtxRetryOf. Every retry is recorded in the failure's
// retry state (queued, attempts, last retried at, the job), claimed with a
// compare-and-set so that two retries of one failure never both run.
type Retrier struct {
	db    *data.DB
	store *queue.Store
	reg   *lanes.Registry
	topo  lanes.Topology
	bus   *events.Bus
	now   func() time.Time
	log   *slog.Logger

	autoNext atomic.Int64 // where the next automatic run starts
}

// NewRetrier validates opts.
func NewRetrier(opts RetrierOptions) (*Retrier, error) {
	switch {
	case opts.DB == nil:
		return nil, errors.New("failures: RetrierOptions.DB is required")
	case opts.Store == nil:
		return nil, errors.New("failures: RetrierOptions.Store is required")
	case opts.Registry == nil:
		return nil, errors.New("failures: RetrierOptions.Registry is required")
	}
	if err := opts.Topology.Validate(); err != nil {
		return nil, fmt.Errorf("failures: RetrierOptions.Topology: %w", err)
	}
	r := &Retrier{db: opts.DB, store: opts.Store, reg: opts.Registry, topo: opts.Topology, bus: opts.Bus,
		now: opts.Now, log: opts.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Retry retries failure id by hand. Failures that were refused before are
// checked again (a class may be registered again). It returns a
// *RefusedError when the retry is not actionable, and data.ErrNotFound when
// there is no such failure.
func (r *Retrier) Retry(ctx context.Context, id int64) (RetryResult, error) {
	return r.retry(ctx, id, retryMode{})
}

// retryMode distinguishes the automatic retries from manual ones.
type retryMode struct {
	auto       bool
	maxRetries int
	// once, when set, lets each job be retried once (a batch retry).
	once *jobOnce
	// job, when set, is the queue's job of the failure, read by the
	// caller: check does not read it again. Unless latest is set too, the
	// failure is the job's latest (RetryJobs) and check does not look for
	// a later failure.
	job *queue.Job
	// latest, when set, is the latest failure of the failure's job, read
	// by the caller (RetryMatching): a later attempt's failure supersedes
	// the one checked.
	latest *data.Failure
	// records, when set, collects the refusals to record instead of
	// writing each one, for the caller to write in one transaction.
	records *[]data.RetryUpdate
}

func (r *Retrier) retry(ctx context.Context, id int64, mode retryMode) (RetryResult, error) {
	f, err := r.db.FailureByID(ctx, id)
	if err != nil {
		return RetryResult{}, err
	}
	plan, err := r.check(ctx, f, mode)
	if err != nil {
		return RetryResult{}, err
	}
	if mode.once != nil && f.JobID != 0 && !mode.once.claim(f.JobID) {
		return RetryResult{}, alreadyInThisRequest(f)
	}
	return r.act(ctx, f, plan, mode)
}

// alreadyInThisRequest refuses f: a batch retry retried its job already.
func alreadyInThisRequest(f *data.Failure) error {
	return &RefusedError{FailureID: f.ID, Reason: RefusedAlreadyRetried,
		Detail: fmt.Sprintf("job %d was retried by this request already", f.JobID)}
}

// retryPlan is what check decided: revive the job, or enqueue a new one.
type retryPlan struct {
	revive bool
}

// refusal builds a refusal and, when status is set, records it in the
// failure's retry state (unless the state changed meanwhile).
func (r *Retrier) refusal(ctx context.Context, f *data.Failure, mode retryMode, reason RefusalReason, record data.RetryStatus, detail string) error {
	if record != "" {
		rs := f.Retry
		rs.Status, rs.Reason = record, detail
		if mode.records != nil {
			*mode.records = append(*mode.records, data.RetryUpdate{ID: f.ID, From: []data.RetryStatus{f.Retry.Status}, State: rs})
			return &RefusedError{FailureID: f.ID, Reason: reason, Detail: detail}
		}
		ok, err := r.db.UpdateFailureRetryIf(ctx, f.ID, []data.RetryStatus{f.Retry.Status}, rs)
		if err != nil {
			return err
		}
		if ok {
			r.publish()
		}
	}
	return &RefusedError{FailureID: f.ID, Reason: reason, Detail: detail}
}

// statusRefusal is the refusal of a failure whose retry state already
// rules a retry out, or nil.
func statusRefusal(f *data.Failure, mode retryMode) *RefusedError {
	refuse := func(reason RefusalReason, detail string) *RefusedError {
		return &RefusedError{FailureID: f.ID, Reason: reason, Detail: detail}
	}
	switch f.Retry.Status {
	case data.RetryQueued:
		return refuse(RefusedAlreadyRetried, fmt.Sprintf("a retry is already queued (job %d)", f.Retry.JobID))
	case data.RetrySucceeded:
		return refuse(RefusedAlreadySucceeded, fmt.Sprintf("its retry (job %d) succeeded", f.Retry.JobID))
	case data.RetrySuperseded:
		return refuse(RefusedSuperseded, cmp.Or(f.Retry.Reason, "a later failure replaced it"))
	case data.RetryRefused:
		if mode.auto {
			return refuse(RefusedNotRetryable, "refused before: "+f.Retry.Reason)
		}
	}
	if mode.auto && f.Retry.Attempts >= mode.maxRetries {
		return refuse(RefusedRetryLimit, fmt.Sprintf("retried automatically %d times already; retry it by hand", f.Retry.Attempts))
	}
	return nil
}

// check decides whether f may be retried now, and how.
func (r *Retrier) check(ctx context.Context, f *data.Failure, mode retryMode) (retryPlan, error) {
	if f.Kind == fault.Authentication {
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedAuthentication, data.RetryRefused,
			"authentication failures are never retried: fix the credentials, then enqueue the job again")
	}
	if !f.Retryable {
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedNotRetryable, data.RetryRefused,
			"the failure is not retryable (its handler killed the job)")
	}
	if e := statusRefusal(f, mode); e != nil {
		return retryPlan{}, e
	}
	if _, ok := r.reg.Lookup(f.Class); !ok {
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedClassUnregistered, data.RetryRefused,
			fmt.Sprintf("no handler is registered for class %s", f.Class))
	}
	if _, ok := r.topo.LaneOf(f.Queue); !ok {
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedQueueUnserved, data.RetryRefused,
			fmt.Sprintf("no lane serves queue %s", f.Queue))
	}
	if f.PipelineID != 0 {
		done, err := r.db.PipelineTerminal(ctx, f.PipelineID)
		switch {
		case errors.Is(err, data.ErrNotFound):
			return retryPlan{}, r.refusal(ctx, f, mode, RefusedPipelineTerminal, data.RetryRefused,
				fmt.Sprintf("pipeline %d no longer exists", f.PipelineID))
		case err != nil:
			return retryPlan{}, err
		case done:
			return retryPlan{}, r.refusal(ctx, f, mode, RefusedPipelineTerminal, data.RetryRefused,
				fmt.Sprintf("pipeline %d has finished", f.PipelineID))
		}
		if f.Step != "" {
			done, err := r.db.StepTerminal(ctx, f.PipelineID, f.Step)
			switch {
			case errors.Is(err, data.ErrNotFound):
				return retryPlan{}, r.refusal(ctx, f, mode, RefusedStepTerminal, data.RetryRefused,
					fmt.Sprintf("step %q of pipeline %d no longer exists", f.Step, f.PipelineID))
			case err != nil:
				return retryPlan{}, err
			case done:
				return retryPlan{}, r.refusal(ctx, f, mode, RefusedStepTerminal, data.RetryRefused,
					fmt.Sprintf("step %q of pipeline %d has finished", f.Step, f.PipelineID))
			}
		}
	}
	var later int64
	switch {
	case mode.latest != nil:
		if mode.latest.Attempt > f.Attempt {
			later = mode.latest.ID
		}
	case mode.job == nil:
		var err error
		if later, err = r.db.LaterFailure(ctx, f.JobID, f.Attempt); err != nil {
			return retryPlan{}, err
		}
	}
	if later != 0 {
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedSuperseded, data.RetrySuperseded,
			fmt.Sprintf("a later attempt of job %d failed too: retry failure %d instead", f.JobID, later))
	}
	j := mode.job
	if j == nil {
		var err error
		if j, err = r.jobOf(f); err != nil {
			return retryPlan{}, err
		}
	}
	var plan retryPlan
	switch {
	case j == nil:
		if ArgsTruncated(f.Args) {
			return retryPlan{}, r.refusal(ctx, f, mode, RefusedArgsTruncated, data.RetryRefused,
				fmt.Sprintf("job %d is gone and its args were too large to keep: enqueue it again by hand", f.JobID))
		}
	case j.State == queue.StateDone:
		return retryPlan{}, r.refusal(ctx, f, mode, RefusedJobSucceeded, data.RetrySuperseded,
			fmt.Sprintf("job %d succeeded on attempt %d", j.ID, j.Attempt))
	case j.State == queue.StateReady || j.State == queue.StateRunning:
		return retryPlan{}, &RefusedError{FailureID: f.ID, Reason: RefusedJobPending,
			Detail: fmt.Sprintf("job %d is %s already", j.ID, j.State)}
	case mode.auto && (j.State == queue.StateRetry || j.State == queue.StateScheduled):
		return retryPlan{}, &RefusedError{FailureID: f.ID, Reason: RefusedJobPending,
			Detail: fmt.Sprintf("job %d is %s: the queue runs it again at %s", j.ID, j.State, j.RunAt.UTC().Format(time.RFC3339))}
	default: // retrying, scheduled or dead
		plan.revive = true
	}
	return plan, nil
}

// jobOf returns the queue's job of failure f, or nil when the queue no
// longer holds it. A job with the same id but another class or queue, or
// created after the failure, is another job (ids can repeat after a queue
// restored from an older snapshot).
func (r *Retrier) jobOf(f *data.Failure) (*queue.Job, error) {
	if f.JobID == 0 {
		return nil, nil
	}
	j, err := r.store.Get(f.JobID)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !FailureOfJob(f, j): // (failure times are stored to the millisecond)
		return nil, nil
	}
	return j, nil
}

// act claims the failure (queued) and makes the retry; when the retry
// cannot be made, the claim is undone.
func (r *Retrier) act(ctx context.Context, f *data.Failure, plan retryPlan, mode retryMode) (RetryResult, error) {
	res, err := r.claim(ctx, f, plan, mode)
	if err != nil {
		return RetryResult{}, err
	}
	if plan.revive {
		err := r.store.RetryNow(ctx, f.JobID)
		switch {
		case err == nil:
			res.JobID, res.Revived = f.JobID, true
			return res, nil
		case !errors.Is(err, queue.ErrNotFound):
			return RetryResult{}, r.undo(ctx, f, r.reviveError(f, err))
		}
		// Trimmed meanwhile: enqueue it again.
		if ArgsTruncated(f.Args) {
			return RetryResult{}, r.undo(ctx, f, &RefusedError{FailureID: f.ID, Reason: RefusedArgsTruncated,
				Detail: fmt.Sprintf("job %d is gone and its args were too large to keep", f.JobID)})
		}
	}
	nj, err := r.reg.NewJob(r.topo, lanes.JobRequest{Class: f.Class, Queue: f.Queue, Args: f.Args, Context: retryContext(f)})
	if err != nil {
		return RetryResult{}, r.undo(ctx, f, fmt.Errorf("failures: retry failure %d: %w", f.ID, err))
	}
	out, err := r.store.Enqueue(ctx, nj)
	if err != nil {
		return RetryResult{}, r.undo(ctx, f, fmt.Errorf("failures: retry failure %d: enqueue: %w", f.ID, err))
	}
	if err := r.db.SetFailureRetryJob(context.WithoutCancel(ctx), f.ID, out.ID); err != nil {
		r.log.Error("retry enqueued but its job not recorded", "failure", f.ID, "job", out.ID, "error", err)
	}
	res.JobID = out.ID
	return res, nil
}

// claim marks the failure's retry queued (from none, or refused by hand),
// so that two retries of one failure never both proceed.
func (r *Retrier) claim(ctx context.Context, f *data.Failure, plan retryPlan, mode retryMode) (RetryResult, error) {
	from := []data.RetryStatus{data.RetryNone, data.RetryRefused}
	if mode.auto {
		from = from[:1]
	}
	claim := r.claimState(f, plan)
	ok, err := r.db.UpdateFailureRetryIf(ctx, f.ID, from, claim)
	if err != nil {
		return RetryResult{}, err
	}
	if !ok {
		return RetryResult{}, r.claimLost(ctx, f)
	}
	r.publish()
	return RetryResult{FailureID: f.ID, Attempts: claim.Attempts}, nil
}

// claimState is the retry state a claim of f gives it.
func (r *Retrier) claimState(f *data.Failure, plan retryPlan) data.RetryState {
	claim := data.RetryState{Status: data.RetryQueued, Attempts: f.Retry.Attempts + 1, LastRetriedAt: r.now()}
	if plan.revive {
		claim.JobID = f.JobID
	}
	return claim
}

// claimLost explains a claim of f that lost: another retry (or an outcome)
// changed its state since it was read.
func (r *Retrier) claimLost(ctx context.Context, f *data.Failure) error {
	g, err := r.db.FailureByID(ctx, f.ID)
	if err != nil {
		return err
	}
	if e := statusRefusal(g, retryMode{}); e != nil {
		return e
	}
	return &RefusedError{FailureID: f.ID, Reason: RefusedAlreadyRetried, Detail: "another retry of it is in progress"}
}

// undo gives the failure back the retry state it had before claim, and
// returns cause.
func (r *Retrier) undo(ctx context.Context, f *data.Failure, cause error) error {
	if _, err := r.db.UpdateFailureRetryIf(context.WithoutCancel(ctx), f.ID, []data.RetryStatus{data.RetryQueued}, f.Retry); err != nil {
		r.log.Error("could not undo a retry's claim", "failure", f.ID, "error", err)
	}
	r.publish()
	return cause
}

// reviveError explains why the queue would not revive f's job.
func (r *Retrier) reviveError(f *data.Failure, err error) error {
	if errors.Is(err, queue.ErrRunning) || errors.Is(err, queue.ErrWrongState) {
		return &RefusedError{FailureID: f.ID, Reason: RefusedJobPending,
			Detail: fmt.Sprintf("job %d changed state meanwhile: %v", f.JobID, err)}
	}
	return fmt.Errorf("failures: retry failure %d: %w", f.ID, err)
}

// retryContext is the context of a new job retrying f: f's account,
// profile, pipeline and step, and CtxRetryOf.
func retryContext(f *data.Failure) map[string]string {
	c := map[string]string{CtxRetryOf: strconv.FormatInt(f.ID, 10)}
	for k, v := range map[string]int64{queue.CtxAccountID: f.AccountID, queue.CtxProfileID: f.ProfileID, queue.CtxPipelineID: f.PipelineID} {
		if v != 0 {
			c[k] = strconv.FormatInt(v, 10)
		}
	}
	if f.Step != "" {
		c[queue.CtxStep] = f.Step
	}
	return c
}

func (r *Retrier) publish() {
	if r.bus != nil {
		r.bus.Publish(events.TopicFailures)
	}
}
