package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/ops/failures"
	"conveyor/ui"
)

// failuresPart is what the failure pipeline adds to the app: failure
// capture, issues, retries and the queue-health check, on the SQLite
// database of app_storage.go.
type failuresPart struct {
	writer  *data.FailureWriter
	tracker *failures.Tracker
	capture *failures.Capture
	retrier *failures.Retrier
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
	f.writer = data.NewFailureWriter(db, data.FailureWriterOptions{OnFlush: f.tracker.RecordFailures, Logger: log,
		MaxRate: st.FailureWriteRate})
	a.opened.Push(lifecycle.Hooks{Name: "failure writer", OnStop: f.writer.Close})
	if f.capture, err = failures.NewCapture(failures.CaptureOptions{Writer: f.writer, DB: db, Registry: a.reg, Bus: a.bus, Logger: log}); err != nil {
		return err
	}
	a.opened.Push(lifecycle.Hooks{Name: "failure capture", OnStop: f.capture.Close})
	a.middleware = append(a.middleware, f.capture.Middleware())
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
// writer has done.
func (a *app) failureChecks(ctx context.Context) []ui.Check {
	f := &a.failures
	var out []ui.Check
	if f.writer != nil {
		st := f.writer.Stats()
		out = append(out, ui.Check{Name: "failure_capture", OK: true,
			Detail: fmt.Sprintf("%d failures recorded, %d pending, %d dropped, %d not written", st.Written, st.Pending, st.Dropped, st.Failed)})
	}
	return out
}
