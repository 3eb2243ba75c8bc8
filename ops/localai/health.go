package localai

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
	"conveyor/ops/events"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// The scheduled local AI check: the seed's class name, on the maintenance
// queue (the default schedule runs it every minute).
const (
	HealthJob   = "CheckAiMicroserviceHealthJob"
	HealthQueue = "maintenance"
)

// Defaults for AIHealthOptions.
const (
	// DefaultHealthRetention is how long recorded health checks are kept:
	// each run of the check job deletes older ones (the newest of each
	// service is always kept).
	DefaultHealthRetention = 7 * 24 * time.Hour
	// aiHealthJobTimeout bounds one run of the check job: two concurrent
	// checks of at most DefaultHealthCheckTimeout (three requests with
	// Ollama's fallback) and two small writes.
	aiHealthJobTimeout = time.Minute
)

// notCheckedReason closes the AI lanes between start-up and the first check.
const notCheckedReason = "local AI not checked yet"

// outageKind is the kind of the AI-outage issues.
const outageKind = "down"

// HealthOptions configure a Health. Every field is optional.
type HealthOptions struct {
	// DB records every reported check (data.RecordHealthCheck). Nil: the
	// checks are not recorded.
	DB *data.DB
	// Tracker raises and clears the AI-outage issues (failures.Problem of
	// source ai_outage, one per service). Nil: a tracker on DB and Bus is
	// used; with no DB either, no issue is recorded.
	Tracker *failures.Tracker
	// Bus receives TopicMetrics on every report; the tracker publishes
	// TopicIssues when an AI-outage issue changes (opens, gets an
	// occurrence, reopens, resolves). Nil: nothing is published.
	Bus *events.Bus
	// Retention is how long the check job keeps recorded checks (default
	// DefaultHealthRetention).
	Retention time.Duration
	// Logger receives outages, recoveries and gate changes (default: discard).
	Logger *slog.Logger
	// Now is the clock for Since and pruning (default time.Now).
	Now func() time.Time
}

// State is the local AI services' health as Conveyor last saw it: what
// the AI lanes' gates, /readyz and `conveyor health` read.
type State struct {
	// Required is Config.Required: only then are the services checked.
	Required bool `json:"required"`
	// Healthy: required, checked, and every check passed.
	Healthy bool `json:"healthy"`
	// LanesOpen says whether the AI lanes' gates are open.
	LanesOpen bool `json:"lanes_open"`
	// Reason says why the AI lanes are closed, or, when local AI is not
	// required, why not.
	Reason string `json:"reason,omitempty"`
	// Results are the latest checks (none before the first check, and none
	// when not required).
	Results []HealthResult `json:"checks,omitempty"`
	// CheckedAt is when the latest checks ran.
	CheckedAt time.Time `json:"checked_at,omitzero"`
	// Since is when Healthy last changed (or the first check).
	Since time.Time `json:"since,omitzero"`
}

// Health holds the local AI services' latest health and acts on its
// changes: it records each reported check in SQLite, opens one AI-outage
// issue per failing service (upserted by fingerprint, so an outage that
// lasts is one issue with many occurrences) and resolves it when the
// service is healthy again, publishes the change, and opens or closes the
// gates of the AI lanes (lanes.AILanes present in the pool) so that AI jobs
// wait in their queues instead of failing while the services are down.
//
// It is fed by the check job (Class), by Watch, and by serve's start-up
// guardrail (Report with the guardrail's results). Its methods are safe for
// concurrent use.
type Health struct {
	sup       *Supervisor
	db        *data.DB
	tracker   *failures.Tracker
	bus       *events.Bus
	retention time.Duration
	logger    *slog.Logger
	now       func() time.Time

	reportMu sync.Mutex      // one Report at a time: issue transitions stay ordered
	lastOK   map[string]bool // per service, as of the previous report; guarded by reportMu

	mu    sync.Mutex
	state State
	pool  *lanes.Pool
}

// NewHealth returns the health state of sup's local AI services. Until
// the first report it is not healthy: when local AI is required the AI
// lanes are held closed until a check passes; when it is not required
// because LOCAL_AI_URL is unset they stay closed (Reason says so); with
// USE_LOCAL_AI_MICROSERVICE=false the AI jobs do not use the services and
// their lanes stay open.
func NewHealth(sup *Supervisor, opts HealthOptions) *Health {
	h := &Health{
		sup:       sup,
		db:        opts.DB,
		tracker:   opts.Tracker,
		bus:       opts.Bus,
		retention: cmp.Or(opts.Retention, DefaultHealthRetention),
		logger:    opts.Logger,
		now:       opts.Now,
		lastOK:    map[string]bool{},
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	h.logger = h.logger.With("component", "local_ai_health")
	if h.tracker == nil && h.db != nil {
		// Cannot fail: DB is set. It is never closed: its context serves
		// only RecordFailures, which Health does not call.
		h.tracker, _ = failures.NewTracker(failures.TrackerOptions{DB: h.db, Bus: h.bus, Logger: h.logger})
	}
	if h.now == nil {
		h.now = time.Now
	}
	cfg := sup.cfg
	h.state = State{Required: cfg.Required(), Reason: notCheckedReason}
	if !cfg.Required() {
		h.state.Reason = sup.notRequiredNote()
		h.state.LanesOpen = !cfg.Microservice()
	}
	return h
}

// Bind attaches the pool whose AI lanes h gates and applies the current
// state to them at once. Call it before the pool starts, so that no AI job
// is claimed while the services are not known to be healthy.
func (h *Health) Bind(pool *lanes.Pool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pool = pool
	return h.applyGatesLocked()
}

// State returns a copy of the latest state.
func (h *Health) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.state
	st.Results = slices.Clone(st.Results)
	return st
}

// Healthy reports whether local AI is required and its latest checks
// passed: for code that must know before it enqueues AI work.
func (h *Health) Healthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state.Healthy
}

// Check runs the health checks and reports them. When local AI is not
// required it checks nothing and returns the state as it is.
func (h *Health) Check(ctx context.Context) (State, error) {
	if !h.sup.cfg.Required() {
		return h.State(), nil
	}
	results := h.sup.Check(ctx)
	if ctx.Err() != nil {
		// Cut short by our own shutdown: the results say nothing of the services.
		return h.State(), ctx.Err()
	}
	err := h.Report(ctx, results)
	return h.State(), err
}

// Report takes results (from Supervisor.Check, or a *StartError's Results)
// as the services' health now: it updates the state and the AI lanes'
// gates first, then records each check and opens or resolves the
// AI-outage issues. Reporting nothing, or reporting when local AI is not
// required, changes nothing. The error is the storage's; the state and the
// gates are updated whatever it says.
func (h *Health) Report(ctx context.Context, results []HealthResult) error {
	if len(results) == 0 || !h.sup.cfg.Required() {
		return nil
	}
	h.reportMu.Lock()
	defer h.reportMu.Unlock()
	h.setState(results)
	var errs []error
	for _, r := range results {
		if h.db != nil {
			if err := h.db.RecordHealthCheck(ctx, healthCheckOf(r)); err != nil {
				errs = append(errs, err)
			}
		}
		if err := h.trackIssue(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	h.publish(events.TopicMetrics)
	return errors.Join(errs...)
}

// setState stores results as the state and applies the gates.
func (h *Health) setState(results []HealthResult) {
	healthy := AllHealthy(results)
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := h.state
	at := results[0].CheckedAt
	for _, r := range results[1:] {
		if r.CheckedAt.After(at) {
			at = r.CheckedAt
		}
	}
	if at.IsZero() {
		at = h.now()
	}
	h.state.Healthy, h.state.LanesOpen = healthy, healthy
	h.state.Results = slices.Clone(results)
	h.state.CheckedAt = at
	h.state.Reason = ""
	if !healthy {
		h.state.Reason = unhealthyReason(results)
	}
	flipped := prev.Since.IsZero() || prev.Healthy != healthy
	if flipped {
		h.state.Since = at
	}
	if err := h.applyGatesLocked(); err != nil {
		h.logger.Error("set the AI lanes' gates", "err", err)
	}
	switch {
	case flipped && healthy:
		h.logger.Info("local AI healthy: AI lanes open")
	case flipped:
		h.logger.Warn("local AI unhealthy: AI lanes held closed", "reason", h.state.Reason)
	}
}

// unhealthyReason names the failing checks, for the gates and /readyz.
func unhealthyReason(results []HealthResult) string {
	var failing []string
	for _, r := range results {
		if !r.OK {
			failing = append(failing, r.String())
		}
	}
	return "local AI unhealthy: " + strings.Join(failing, "; ")
}

// applyGatesLocked opens or closes every AI lane of the pool to match the
// state; h.mu is held.
func (h *Health) applyGatesLocked() error {
	if h.pool == nil {
		return nil
	}
	var errs []error
	for _, ls := range h.pool.Stats() {
		if !slices.Contains(lanes.AILanes, ls.Name) {
			continue
		}
		if ls.Open == h.state.LanesOpen && (ls.Open || ls.Reason == h.state.Reason) {
			continue
		}
		errs = append(errs, h.pool.SetGate(ls.Name, h.state.LanesOpen, h.state.Reason))
	}
	return errors.Join(errs...)
}

// OutageFingerprint is the fingerprint of service's AI-outage issue: one
// per service, whatever the failure's message, so an outage is one issue.
// It is the issue tracker's fingerprint for a problem of source ai_outage
// and subject the service (failures.ProblemFingerprint).
func OutageFingerprint(service string) string {
	return failures.ProblemFingerprint(data.SourceAIOutage, service)
}

// outageProblem describes a failed check of one service for its issue.
func outageProblem(r HealthResult) failures.Problem {
	return failures.Problem{
		Source:  data.SourceAIOutage,
		Subject: r.Service,
		Kind:    outageKind,
		Title:   fmt.Sprintf("Local AI outage: %s is not healthy", r.Label()),
		Class:   r.Service,
		Detail:  r,
		At:      r.CheckedAt,
	}
}

// trackIssue raises the service's outage issue (opening it, or adding an
// occurrence) when r failed, and clears it when r passed after a failure or
// as the first report (an outage may have been left open by an earlier
// run). The tracker publishes TopicIssues when an issue changes.
func (h *Health) trackIssue(ctx context.Context, r HealthResult) error {
	prevOK, known := h.lastOK[r.Service]
	h.lastOK[r.Service] = r.OK
	if h.tracker == nil {
		return nil
	}
	if r.OK {
		if known && prevOK {
			return nil
		}
		resolved, err := h.tracker.Clear(ctx, OutageFingerprint(r.Service))
		if err != nil {
			delete(h.lastOK, r.Service) // try again next time
			return err
		}
		if resolved {
			h.logger.Info("AI outage resolved", "service", r.Service, "url", r.URL)
		}
		return nil
	}
	is, res, err := h.tracker.Raise(ctx, outageProblem(r))
	if err != nil {
		delete(h.lastOK, r.Service)
		return err
	}
	if res != data.IssueUpdated {
		h.logger.Warn("AI outage issue "+res.String(), "issue", is.ID, "service", r.Service, "status", r.Status)
	}
	return nil
}

// healthCheckOf turns a result into its SQLite row.
func healthCheckOf(r HealthResult) *data.HealthCheck {
	hc := &data.HealthCheck{Service: r.Service, OK: r.OK, Status: "ok", Latency: r.Latency, CheckedAt: r.CheckedAt}
	if !r.OK {
		hc.Status, hc.Error = "down", r.Status
		var se *HTTPStatusError
		if errors.As(r.Err, &se) {
			hc.Status = se.Status
		}
	}
	return hc
}

func (h *Health) publish(t events.Topic) {
	if h.bus != nil {
		h.bus.Publish(t)
	}
}

// Watch checks the services every interval (DefaultWatchInterval when
// every is not positive) until ctx ends, starting at once unless a check
// has been reported already. Each check updates the state in memory; a
// check whose verdict differs from the state's (healthy or not) is
// reported in full (Report), so the gates follow an outage or a recovery
// within one interval even between runs of the check job. When local AI
// is not required it returns at once.
func (h *Health) Watch(ctx context.Context, every time.Duration) {
	if !h.sup.cfg.Required() {
		return
	}
	if every <= 0 {
		every = DefaultWatchInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	if !h.State().Since.IsZero() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
	for {
		results := h.sup.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		h.observe(ctx, results)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// observe reports results when their verdict differs from the state's, and
// otherwise only refreshes the state's results.
func (h *Health) observe(ctx context.Context, results []HealthResult) {
	healthy := AllHealthy(results)
	h.mu.Lock()
	same := !h.state.Since.IsZero() && h.state.Healthy == healthy
	if same {
		h.state.Results = slices.Clone(results)
		h.state.CheckedAt = results[0].CheckedAt
		if !healthy {
			h.state.Reason = unhealthyReason(results)
			if err := h.applyGatesLocked(); err != nil {
				h.logger.Error("set the AI lanes' gates", "err", err)
			}
		}
	}
	h.mu.Unlock()
	if same {
		return
	}
	if err := h.Report(ctx, results); err != nil && ctx.Err() == nil {
		h.logger.Error("record local AI health", "err", err)
	}
}

// Class returns CheckAiMicroserviceHealthJob: each run checks the services,
// reports the result (see Report) and deletes recorded checks older than
// the retention. An outage is not the job's failure (the issue and the
// gates carry it); only a storage error fails it, and it is not retried:
// the next scheduled run is the retry.
func (h *Health) Class() lanes.Class {
	return lanes.Class{
		Name:        HealthJob,
		Queue:       HealthQueue,
		Timeout:     aiHealthJobTimeout,
		MaxAttempts: 1,
		Args:        lanes.NoArgs,
		Handler: lanes.HandlerFunc(func(ctx context.Context, _ *queue.Job) error {
			st, err := h.Check(ctx)
			if err != nil {
				return err
			}
			if st.Required && h.db != nil {
				if _, err := h.db.PruneHealthChecks(ctx, h.now().Add(-h.retention)); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}
