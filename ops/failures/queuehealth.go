package failures

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

// The queue-health check job: the seed's class name, on the maintenance
// queue (the default schedule runs it every minute).
const (
	QueueHealthJob   = "CheckQueueHealthJob"
	QueueHealthQueue = "maintenance"
)

// Default thresholds of the queue-health check.
const (
	// DefaultMaxQueueLatency: a queue whose oldest ready job has waited
	// longer is degraded. Five minutes is far beyond a healthy lane's
	// pickup time and well below the seed's two-hourly feed cadence.
	DefaultMaxQueueLatency = 5 * time.Minute
	// DefaultMaxQueueSize: a queue with more ready jobs is degraded.
	DefaultMaxQueueSize = 10_000
)

// The symptoms of a degraded queue (the issue's kind).
const (
	SymptomLatency = "latency"
	SymptomSize    = "size"
)

// QueueThresholds are the limits of one queue. Zero fields inherit.
type QueueThresholds struct {
	// MaxLatency is how long the oldest ready job may wait.
	MaxLatency time.Duration
	// MaxSize is how many jobs may be ready.
	MaxSize int64
}

// QueueHealthOptions configure a QueueHealth.
type QueueHealthOptions struct {
	// Store is the queue whose in-memory counters are read. Required.
	Store *queue.Store
	// Tracker opens and resolves the queue_health issues. Required.
	Tracker *Tracker
	// DB, when set, records a health check (service "queue:<name>") for
	// every queue that is degraded or changed state since the previous
	// check.
	DB *data.DB
	// Default are the thresholds of every queue: DefaultMaxQueueLatency and
	// DefaultMaxQueueSize where zero.
	Default QueueThresholds
	// Queues override the thresholds per queue; their zero fields inherit
	// Default.
	Queues map[string]QueueThresholds
	// Logger receives degradations and recoveries (default: discard).
	Logger *slog.Logger
}

// QueueStatus is one queue's health at a check.
type QueueStatus struct {
	Queue      string
	Size       int64
	Latency    time.Duration
	Paused     bool
	Thresholds QueueThresholds
	// Symptoms are the limits exceeded (SymptomLatency, SymptomSize); none
	// means healthy. Paused queues are never degraded: they wait on
	// purpose.
	Symptoms []string
}

// Degraded reports whether the queue exceeds a limit.
func (s QueueStatus) Degraded() bool { return len(s.Symptoms) > 0 }

// QueueHealth checks every queue's size and latency — read from the store's
// in-memory counters, never by scanning — against thresholds, keeps one
// queue_health issue per degraded queue (ProblemFingerprint of
// data.SourceQueueHealth and the queue name), adding an occurrence at every
// check while it stays degraded, and resolves it ("auto") at the first
// check that finds the queue healthy again.
type QueueHealth struct {
	store   *queue.Store
	tracker *Tracker
	db      *data.DB
	def     QueueThresholds
	per     map[string]QueueThresholds
	log     *slog.Logger

	mu   sync.Mutex
	last map[string]bool // degraded at the previous check
}

// NewQueueHealth validates opts.
func NewQueueHealth(opts QueueHealthOptions) (*QueueHealth, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("failures: QueueHealthOptions.Store is required")
	case opts.Tracker == nil:
		return nil, errors.New("failures: QueueHealthOptions.Tracker is required")
	}
	if err := opts.Default.validate("Default"); err != nil {
		return nil, err
	}
	for name, t := range opts.Queues {
		if err := t.validate("Queues[" + name + "]"); err != nil {
			return nil, err
		}
	}
	q := &QueueHealth{store: opts.Store, tracker: opts.Tracker, db: opts.DB, log: opts.Logger,
		def: QueueThresholds{
			MaxLatency: cmp.Or(opts.Default.MaxLatency, DefaultMaxQueueLatency),
			MaxSize:    cmp.Or(opts.Default.MaxSize, DefaultMaxQueueSize),
		},
		per: map[string]QueueThresholds{}, last: map[string]bool{}}
	for name, t := range opts.Queues {
		q.per[name] = QueueThresholds{MaxLatency: cmp.Or(t.MaxLatency, q.def.MaxLatency), MaxSize: cmp.Or(t.MaxSize, q.def.MaxSize)}
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	return q, nil
}

func (t QueueThresholds) validate(field string) error {
	if t.MaxLatency < 0 || t.MaxSize < 0 {
		return fmt.Errorf("failures: QueueHealthOptions.%s: thresholds must not be negative", field)
	}
	return nil
}

// thresholds returns the limits of a queue.
func (q *QueueHealth) thresholds(name string) QueueThresholds {
	if t, ok := q.per[name]; ok {
		return t
	}
	return q.def
}

// Status returns every queue's health now, by name, without recording it.
func (q *QueueHealth) Status() []QueueStatus {
	infos := q.store.Queues()
	out := make([]QueueStatus, 0, len(infos))
	for _, qi := range infos {
		st := QueueStatus{Queue: qi.Name, Size: qi.Size, Latency: qi.Latency, Paused: qi.Paused, Thresholds: q.thresholds(qi.Name)}
		if !qi.Paused {
			if st.Latency > st.Thresholds.MaxLatency {
				st.Symptoms = append(st.Symptoms, SymptomLatency)
			}
			if st.Size > st.Thresholds.MaxSize {
				st.Symptoms = append(st.Symptoms, SymptomSize)
			}
		}
		out = append(out, st)
	}
	return out
}

// Check reads every queue's health, raises an issue for each degraded
// queue and clears the issues of healthy ones, and returns the statuses.
func (q *QueueHealth) Check(ctx context.Context) ([]QueueStatus, error) {
	statuses := q.Status()
	open, _, err := q.tracker.db.FindIssues(ctx, data.IssueFilter{Status: data.IssueOpen, Source: data.SourceQueueHealth, Limit: 1000})
	if err != nil {
		return statuses, err
	}
	isOpen := map[string]bool{}
	for _, is := range open {
		isOpen[is.Fingerprint] = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var errs []error
	for _, st := range statuses {
		fp := ProblemFingerprint(data.SourceQueueHealth, st.Queue)
		changed := q.last[st.Queue] != st.Degraded()
		q.last[st.Queue] = st.Degraded()
		if st.Degraded() {
			_, res, err := q.tracker.Raise(ctx, queueProblem(st))
			if err != nil {
				errs = append(errs, err)
			} else if res != data.IssueUpdated {
				q.log.Warn("queue degraded", "queue", st.Queue, "symptoms", st.Symptoms, "size", st.Size, "latency", st.Latency)
			}
		} else if isOpen[fp] {
			if _, err := q.tracker.Clear(ctx, fp); err != nil {
				errs = append(errs, err)
			} else {
				q.log.Info("queue healthy again", "queue", st.Queue, "size", st.Size, "latency", st.Latency)
			}
		}
		if q.db != nil && (changed || st.Degraded()) {
			errs = append(errs, q.db.RecordHealthCheck(ctx, queueHealthCheck(st)))
		}
	}
	return statuses, errors.Join(errs...)
}

// queueProblem describes a degraded queue for its issue.
func queueProblem(st QueueStatus) Problem {
	var why []string
	if slices.Contains(st.Symptoms, SymptomLatency) {
		why = append(why, fmt.Sprintf("the oldest ready job has waited %s (limit %s)",
			st.Latency.Round(time.Second), st.Thresholds.MaxLatency))
	}
	if slices.Contains(st.Symptoms, SymptomSize) {
		why = append(why, fmt.Sprintf("%d jobs are ready (limit %d)", st.Size, st.Thresholds.MaxSize))
	}
	return Problem{
		Source:  data.SourceQueueHealth,
		Subject: st.Queue,
		Kind:    strings.Join(st.Symptoms, ","),
		Title:   fmt.Sprintf("Queue %s is degraded: %s", st.Queue, strings.Join(why, "; ")),
		Queue:   st.Queue,
		Detail: map[string]any{
			"size":           st.Size,
			"latency_ms":     st.Latency.Milliseconds(),
			"max_size":       st.Thresholds.MaxSize,
			"max_latency_ms": st.Thresholds.MaxLatency.Milliseconds(),
			"symptoms":       st.Symptoms,
		},
	}
}

func queueHealthCheck(st QueueStatus) *data.HealthCheck {
	hc := &data.HealthCheck{Service: "queue:" + st.Queue, OK: !st.Degraded(), Status: "ok", Latency: st.Latency}
	if st.Degraded() {
		hc.Status = "degraded"
		hc.Error = queueProblem(st).Title
	}
	return hc
}

// Class is CheckQueueHealthJob: one Check per run. It takes no args.
func (q *QueueHealth) Class() lanes.Class {
	return lanes.Class{Name: QueueHealthJob, Queue: QueueHealthQueue, Timeout: time.Minute, Args: lanes.NoArgs,
		Handler: lanes.HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			_, err := q.Check(ctx)
			return err
		})}
}
