package failures

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// Defaults of ReconcilerOptions.
const (
	// DefaultReconcileInterval is how often a Reconciler passes over the
	// queue besides its pass at start and after the writer lost failures.
	DefaultReconcileInterval = 10 * time.Minute
	// DefaultReconcileLossDelay is how long a Reconciler waits after the
	// writer lost failures before it passes, so that a burst of drops
	// makes one pass, not one per drop.
	DefaultReconcileLossDelay = 10 * time.Second
	// reconcilePage is how many jobs one List call of a pass reads.
	reconcilePage = 500
)

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	// Store is the queue whose jobs' stored errors are the record of every
	// failed attempt. Required.
	Store *queue.Store
	// DB holds the failure rows. Required.
	DB *data.DB
	// Writer is the failure writer: a pass waits for it before it rebuilds
	// a row, so that it never rebuilds one the writer is about to write,
	// and passes again after it signals a loss (data.FailureWriter.Lost).
	// Required.
	Writer *data.FailureWriter
	// OnRecovered, when set, is called with the rows a pass rebuilt (IDs
	// set), as the writer's OnFlush is: Tracker.RecordFailures in the app.
	OnRecovered func([]*data.Failure)
	// Bus receives TopicFailures when a pass rebuilt rows. Optional.
	Bus *events.Bus
	// Interval is the time between passes (DefaultReconcileInterval);
	// LossDelay the wait after a loss (DefaultReconcileLossDelay).
	Interval  time.Duration
	LossDelay time.Duration
	// MaxArgsBytes, MaxMessageBytes and MaxBacktraceBytes cap a rebuilt
	// row as CaptureOptions cap a captured one.
	MaxArgsBytes      int
	MaxMessageBytes   int
	MaxBacktraceBytes int
	// Now stamps the passes (default time.Now).
	Now func() time.Time
	// Logger receives what the passes did (default: discard).
	Logger *slog.Logger
}

// ReconcileStats say what a Reconciler has done since it started.
type ReconcileStats struct {
	// Passes counts the passes finished; Recovered the rows they rebuilt.
	Passes    uint64
	Recovered uint64
	// Missing is how many failed attempts the pass under way found without
	// a row and has not rebuilt yet: part of the backlog of rows not yet
	// written.
	Missing int
	// Running says a pass is under way; LastPass is when the last one
	// finished (zero before the first) and LastError its error, if any.
	Running   bool
	LastPass  time.Time
	LastError string
}

// ReconcileResult is what one pass did.
type ReconcileResult struct {
	Jobs      int // jobs read from the queue
	Attempts  int // failed attempts they recorded
	Recovered int // rows rebuilt
}

// Reconciler keeps the promise that every failed attempt has its failure
// row. The queue keeps the error of each failed attempt in the job's record
// (up to queue.MaxErrors of them) in the same transaction that fails the
// job, while the row reaches SQLite later, through the writer: a crash
// loses the rows still waiting in the writer, a full writer drops rows, a
// failed write loses its batch, and some attempts never pass through the
// capture at all — the crash strikes the queue records at start-up
// ("orphaned by a crash"), and jobs whose class is not registered. A pass
// reads every job in the queue, and for each recorded attempt without a row
// (same job, attempt and class) it rebuilds one from the job and its stored
// error, marked recovered, and settles the retry states of the job's other
// rows as the capture would have. Passes run at start, every Interval, and
// after the writer lost failures; a row is never rebuilt twice
// (data.InsertRecoveredFailures checks and inserts in one transaction).
//
// A rebuilt row knows what the queue kept: the error's class, message,
// backtrace and time, and the job's class, queue, args and context. Its
// kind is read from the error class (crash strikes and panics are runtime,
// timeouts transient) and from the job's fate: a job killed before its
// attempts ran out had a failure that may not be retried (an
// authentication failure or a discard, which the queue does not tell
// apart), recorded as runtime and not retryable; every other one is
// runtime and retryable.
type Reconciler struct {
	store    *queue.Store
	db       *data.DB
	writer   *data.FailureWriter
	onRec    func([]*data.Failure)
	bus      *events.Bus
	interval time.Duration
	lossWait time.Duration
	caps     captureCaps
	now      func() time.Time
	log      *slog.Logger

	pass sync.Mutex // one pass at a time
	loop lifecycle.Loop

	mu    sync.Mutex
	stats ReconcileStats

	onPass func(ReconcileResult, error) // test hook: a pass of the loop ended
}

// NewReconciler validates opts. Start runs its passes.
func NewReconciler(opts ReconcilerOptions) (*Reconciler, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("failures: ReconcilerOptions.Store is required")
	case opts.DB == nil:
		return nil, errors.New("failures: ReconcilerOptions.DB is required")
	case opts.Writer == nil:
		return nil, errors.New("failures: ReconcilerOptions.Writer is required")
	case opts.Interval < 0 || opts.LossDelay < 0:
		return nil, errors.New("failures: ReconcilerOptions durations must not be negative")
	case opts.MaxArgsBytes < 0 || opts.MaxMessageBytes < 0 || opts.MaxBacktraceBytes < 0:
		return nil, errors.New("failures: ReconcilerOptions size caps must not be negative")
	}
	r := &Reconciler{store: opts.Store, db: opts.DB, writer: opts.Writer, onRec: opts.OnRecovered, bus: opts.Bus,
		interval: cmp.Or(opts.Interval, DefaultReconcileInterval), lossWait: cmp.Or(opts.LossDelay, DefaultReconcileLossDelay),
		caps: newCaps(opts.MaxArgsBytes, opts.MaxMessageBytes, opts.MaxBacktraceBytes),
		now:  opts.Now, log: opts.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Start starts the passes: one at once, then every Interval and after the
// writer lost failures. It returns at once.
func (r *Reconciler) Start(ctx context.Context) error {
	if !r.loop.Go(context.WithoutCancel(ctx), r.run) {
		return errors.New("failures: the reconciler was started before")
	}
	return nil
}

// Stop stops the passes, cutting one under way short, and waits for it.
func (r *Reconciler) Stop(ctx context.Context) error { return r.loop.Stop(ctx) }

// Stats returns what the reconciler has done.
func (r *Reconciler) Stats() ReconcileStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func (r *Reconciler) run(ctx context.Context) {
	timer := time.NewTimer(0) // the pass at start
	defer timer.Stop()
	next := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.writer.Lost():
			// Bring the next pass forward, never push it back: drops that
			// keep coming must not starve it.
			if soon := time.Now().Add(r.lossWait); soon.Before(next) {
				timer.Reset(r.lossWait)
				next = soon
			}
			continue
		case <-timer.C:
		}
		res, err := r.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("failure reconciliation failed; it runs again later", "error", err)
		}
		if r.onPass != nil {
			r.onPass(res, err)
		}
		timer.Reset(r.interval)
		next = time.Now().Add(r.interval)
	}
}

// Reconcile makes one pass over the queue (see Reconciler) and returns what
// it did. Passes run one at a time.
func (r *Reconciler) Reconcile(ctx context.Context) (ReconcileResult, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.mu.Lock()
	r.stats.Running = true
	r.mu.Unlock()
	res, err := r.reconcile(ctx)
	r.mu.Lock()
	r.stats.Running, r.stats.Missing = false, 0
	r.stats.Recovered += uint64(res.Recovered)
	if err == nil {
		r.stats.Passes++
		r.stats.LastPass, r.stats.LastError = r.now(), ""
	} else {
		r.stats.LastError = err.Error()
	}
	r.mu.Unlock()
	if res.Recovered > 0 {
		r.log.Warn("failure rows rebuilt from the queue's record of the attempts", "rows", res.Recovered,
			"jobs_read", res.Jobs, "attempts", res.Attempts)
	}
	return res, err
}

func (r *Reconciler) reconcile(ctx context.Context) (ReconcileResult, error) {
	var res ReconcileResult
	for _, st := range queue.States {
		for after := ""; ; {
			page, err := r.store.List(queue.ListFilter{State: st, After: after, Limit: reconcilePage})
			if err != nil {
				return res, fmt.Errorf("failures: reconcile: list %s jobs: %w", st, err)
			}
			n, err := r.reconcilePage(ctx, page.Jobs)
			res.Jobs += len(page.Jobs)
			res.Recovered += n
			for _, j := range page.Jobs {
				res.Attempts += len(j.Errors)
			}
			if err != nil {
				return res, err
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	return res, nil
}

// reconcilePage rebuilds the missing rows of the failed attempts the jobs
// recorded and returns how many it rebuilt.
func (r *Reconciler) reconcilePage(ctx context.Context, jobs []*queue.Job) (int, error) {
	var candidates []*data.Failure
	byJob := map[uint64]*queue.Job{}
	for _, j := range jobs {
		for i := range j.Errors {
			candidates = append(candidates, r.rebuild(j, i))
			byJob[j.ID] = j
		}
	}
	if len(candidates) == 0 {
		return 0, ctx.Err()
	}
	missing, err := r.db.MissingFailures(ctx, candidates)
	if err != nil || len(missing) == 0 {
		return 0, err
	}
	r.mu.Lock()
	r.stats.Missing = len(missing)
	r.mu.Unlock()
	// Each of these errors was recorded by the queue after the capture
	// handed its row to the writer (the middleware returns the error to the
	// lanes only then): once the writer has written what it was given, a
	// row still missing will not come from it.
	if err := r.writer.Flush(ctx); err != nil && ctx.Err() != nil {
		return 0, err
	}
	inserted, err := r.db.InsertRecoveredFailures(ctx, missing)
	if err != nil || len(inserted) == 0 {
		return 0, err
	}
	if err := r.settle(ctx, inserted, byJob); err != nil {
		r.log.Error("retry states of rebuilt failures not settled", "error", err)
	}
	if r.onRec != nil {
		r.onRec(inserted)
	}
	if r.bus != nil {
		r.bus.Publish(events.TopicFailures)
	}
	return len(inserted), nil
}

// rebuild makes the row of job j's i-th stored error.
func (r *Reconciler) rebuild(j *queue.Job, i int) *data.Failure {
	e := j.Errors[i]
	kind, retryable := fault.Runtime, true
	killed := i == len(j.Errors)-1 && lanes.KilledNotRetryable(j)
	switch {
	case e.Class == "Orphaned":
		// A crash strike, or the last of them.
	case e.Class == "Timeout":
		kind = fault.Transient
	case killed:
		// Killed before its attempts ran out: an authentication failure
		// or a discard.
		retryable = false
	}
	f := r.caps.failure(j, attempt{errClass: e.Class, message: e.Message, backtrace: e.Backtrace,
		kind: kind, retryable: retryable, at: e.At, number: e.Attempt}, nil)
	// A later attempt failed too, or the job succeeded since: this
	// attempt needs no attention.
	switch {
	case slices.ContainsFunc(j.Errors[i+1:], func(l queue.AttemptError) bool { return l.Attempt > e.Attempt }):
		f.Retry = data.RetryState{Status: data.RetrySuperseded,
			Reason: fmt.Sprintf("attempt %d of job %d failed too", j.Errors[len(j.Errors)-1].Attempt, j.ID)}
	case j.State == queue.StateDone:
		f.Retry = data.RetryState{Status: data.RetrySuperseded,
			Reason: fmt.Sprintf("job %d succeeded on attempt %d", j.ID, j.Attempt)}
	}
	return f
}

// settle applies to the other rows of the jobs what the rebuilt attempts
// would have settled had they been captured: a later failure supersedes
// earlier rows still open, a success settles them all.
func (r *Reconciler) settle(ctx context.Context, rebuilt []*data.Failure, jobs map[uint64]*queue.Job) error {
	latest := map[uint64]int{}
	for _, f := range rebuilt {
		latest[f.JobID] = max(latest[f.JobID], f.Attempt)
	}
	var outcomes []data.JobOutcome
	for id, n := range latest {
		j := jobs[id]
		retryOf := contextID(j.Context, CtxRetryOf)
		if n >= 1 {
			outcomes = append(outcomes, data.JobOutcome{JobID: id, Attempt: n, RetryOf: retryOf})
		}
		if j.State == queue.StateDone {
			outcomes = append(outcomes, data.JobOutcome{JobID: id, Attempt: max(j.Attempt, 1), Succeeded: true, RetryOf: retryOf})
		}
	}
	_, err := r.db.SettleFailures(ctx, outcomes)
	return err
}
