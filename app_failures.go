package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/lanes"
	"conveyor/ops/failures"
	"conveyor/queue"
	"conveyor/ui"
)

// failuresPart is what the failure pipeline adds to the app: failure
// capture, issues, retries and the queue-health check, on the SQLite
// database of app_storage.go.
type failuresPart struct {
	writer     *data.FailureWriter
	tracker    *failures.Tracker
	capture    *failures.Capture
	retrier    *failures.Retrier
	reconciler *failures.Reconciler
	// lanesBusy is the writer's Busy: set by watchLanes once the pool
	// exists (failures.LanesBusy).
	lanesBusy atomic.Pointer[func() bool]
}

// watchLanes lets the failure writer hold failures while pool's lanes are
// busy (data.FailureWriterOptions.Busy).
func (f *failuresPart) watchLanes(pool *lanes.Pool) {
	busy := failures.LanesBusy(pool, 0)
	f.lanesBusy.Store(&busy)
}

// busy is the writer's Busy.
func (f *failuresPart) busy() bool {
	if b := f.lanesBusy.Load(); b != nil {
		return (*b)()
	}
	return false
}

// failureSettings are the failure pipeline's settings, read from the
// configuration file.
type failureSettings struct {
	// QueueHealth are the queue-health thresholds.
	QueueHealth failures.QueueHealthOptions
	// AutoRetry tunes RetryFailedBackgroundJobsJob.
	AutoRetry failures.AutoRetryOptions
	// FailureWriteRate is the most failures written per second during a
	// burst (failures.DefaultFailureWriteRate).
	FailureWriteRate int
}

// resolve reads the failure pipeline's keys of the configuration file over
// the defaults. It has no flags and no environment variables.
func (s *failureSettings) resolve(fc failuresFile) error {
	qh := fc.QueueHealth
	s.QueueHealth.Default = failures.QueueThresholds{MaxLatency: time.Duration(qh.MaxLatency), MaxSize: qh.MaxSize}
	if len(qh.Queues) > 0 {
		s.QueueHealth.Queues = map[string]failures.QueueThresholds{}
		for name, t := range qh.Queues {
			s.QueueHealth.Queues[name] = failures.QueueThresholds{MaxLatency: time.Duration(t.MaxLatency), MaxSize: t.MaxSize}
		}
	}
	if qh.MaxSize < 0 {
		return fmt.Errorf("config: queue_health.max_size must not be negative")
	}
	for name, t := range qh.Queues {
		if t.MaxSize < 0 {
			return fmt.Errorf("config: queue_health.queues.%s.max_size must not be negative", name)
		}
	}
	fr := fc.FailureRetry
	s.AutoRetry = failures.AutoRetryOptions{BatchSize: fr.BatchSize, ScanLimit: fr.ScanLimit, CoolDown: time.Duration(fr.CoolDown),
		MaxRetries: fr.MaxRetries, PerFingerprint: fr.PerFingerprint}
	if err := s.AutoRetry.Validate(); err != nil {
		return fmt.Errorf("config: failure_retry: %w", err)
	}
	if fc.FailureWriteRate < 0 {
		return fmt.Errorf("config: failure_write_rate must not be negative")
	}
	s.FailureWriteRate = cmp.Or(fc.FailureWriteRate, failures.DefaultFailureWriteRate)
	return nil
}

// openFailures builds the failure pipeline on the database openStorage
// opened: the capture middleware and retry policy for the lanes, the issue
// tracker, the retrier, and the RetryFailedBackgroundJobsJob and
// CheckQueueHealthJob classes.
func (a *app) openFailures(ctx context.Context) error {
	log := a.log.With("part", "failures")
	db := a.storage.db
	f := &a.failures
	st := a.st.Failures
	var err error
	if f.tracker, err = failures.NewTracker(failures.TrackerOptions{DB: db, Bus: a.bus, Logger: log}); err != nil {
		return err
	}
	a.opened.Push(lifecycle.Hooks{Name: "issue tracker", OnStop: func(context.Context) error { f.tracker.Close(); return nil }})
	// While the lanes are busy the writer holds at most half as many rows
	// as the queue keeps dead jobs: a row lost in a crash is rebuilt from
	// its job, which the queue must still hold.
	wopts := data.FailureWriterOptions{OnFlush: f.tracker.RecordFailures, Logger: log, MaxRate: st.FailureWriteRate,
		Busy: f.busy, BusyHold: max(1, cmp.Or(a.st.Queue.DeadLimit, queue.DefaultDeadLimit)/2)}
	if failpointsOf(ctx).holdFailureWriter {
		wopts.Linger, wopts.BatchSize = 24*time.Hour, data.DefaultFailureMaxPending
	}
	f.writer = data.NewFailureWriter(db, wopts)
	a.opened.Push(lifecycle.Hooks{Name: "failure writer", OnStop: f.writer.Close})
	if f.capture, err = failures.NewCapture(failures.CaptureOptions{Writer: f.writer, DB: db, Registry: a.reg, Bus: a.bus, Logger: log}); err != nil {
		return err
	}
	a.opened.Push(lifecycle.Hooks{Name: "failure capture", OnStop: f.capture.Close})
	a.middleware = append(a.middleware, f.capture.Middleware())
	if f.reconciler, err = failures.NewReconciler(failures.ReconcilerOptions{Store: a.store, DB: db, Writer: f.writer,
		OnRecovered: f.tracker.RecordFailures, Bus: a.bus, Logger: log}); err != nil {
		return err
	}
	a.retryable = failures.RetryableError
	if f.retrier, err = failures.NewRetrier(failures.RetrierOptions{DB: db, Store: a.store, Registry: a.reg, Topology: a.st.Topology,
		Bus: a.bus, Logger: log}); err != nil {
		return err
	}
	autoRetry, err := f.retrier.AutoRetryClass(st.AutoRetry)
	if err != nil {
		return err
	}
	qhOpts := st.QueueHealth
	qhOpts.Store, qhOpts.Tracker, qhOpts.DB, qhOpts.Logger = a.store, f.tracker, db, log
	qh, err := failures.NewQueueHealth(qhOpts)
	if err != nil {
		return err
	}
	if err := errors.Join(a.reg.Register(autoRetry), a.reg.Register(qh.Class())); err != nil {
		return err
	}
	a.ready = append(a.ready, a.failureChecks)
	return nil
}

// failuresUI hands the failures and issues endpoints their parts.
func (a *app) failuresUI(cfg *ui.Config) {
	cfg.FailuresConfig = ui.FailuresConfig{FailuresDB: a.storage.db, Retrier: a.failures.retrier, IssueTracker: a.failures.tracker}
}

// failureChecks is the failure pipeline's /readyz check: what the failure
// writer has done, and the backlog of failure rows not yet written — those
// waiting in the writer, and the failed attempts the reconciler found
// without a row and has yet to rebuild. Until the reconciler's first pass
// has finished, rows a crash lost before this start are not counted yet.
func (a *app) failureChecks(ctx context.Context) []ui.Check {
	f := &a.failures
	if f.writer == nil {
		return nil
	}
	st := f.writer.Stats()
	var rs failures.ReconcileStats
	if f.reconciler != nil {
		rs = f.reconciler.Stats()
	}
	detail := fmt.Sprintf("backlog: %d failure rows not yet written (%d waiting in the writer, %d to rebuild from the queue); "+
		"%d recorded, %d dropped, %d not written, %d rebuilt from the queue", st.Pending+rs.Missing, st.Pending, rs.Missing,
		st.Written, st.Dropped, st.Failed, rs.Recovered)
	switch {
	case rs.Passes == 0:
		detail += "; start-up reconciliation running"
	default:
		detail += "; reconciled at " + rs.LastPass.UTC().Format(time.RFC3339)
	}
	if rs.LastError != "" {
		detail += "; last reconciliation failed (logged)"
	}
	return []ui.Check{{Name: "failure_capture", OK: true, Detail: detail}}
}
