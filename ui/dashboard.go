package ui

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
	"conveyor/ops/events"
	"conveyor/queue"
)

// The dashboard is one DashboardSnapshot: a small view struct with one
// loader per panel. The page /admin/background_jobs renders it, the page's
// live updates re-fetch the panels an event names (as HTML fragments of the
// same templates), GET /api/v1/dashboard serves it as JSON (conveyor top
// reads it), and a new panel is a new field and a new loader in
// dashboardPanels — nothing else changes.

// Dashboard sizes.
const (
	rateMinutes     = 60 // minutes the charts cover
	recentJobs      = 20 // jobs in "recent jobs"
	dashboardIssues = 10 // open issues shown
)

// AIView is the local AI health as the dashboard shows it.
type AIView struct {
	// Required: only then are the services checked.
	Required bool `json:"required"`
	// Healthy: required, checked, and every check passed.
	Healthy bool `json:"healthy"`
	// LanesOpen says whether the AI lanes' gates are open.
	LanesOpen bool `json:"lanes_open"`
	// Reason says why the AI lanes are closed, or why local AI is not
	// required.
	Reason string `json:"reason"`
	// Checks are the latest checks, each with what it saw.
	Checks []Check `json:"checks"`
	// CheckedAt is when they ran; Since when Healthy last changed.
	CheckedAt time.Time `json:"checked_at"`
	Since     time.Time `json:"since"`
}

// ReplicationView is the database replication as the dashboard shows it.
type ReplicationView struct {
	// Enabled is false when replication is off.
	Enabled bool `json:"enabled"`
	// Replica is where it goes, with credentials removed.
	Replica string `json:"replica"`
	// LastSync is when the replica last caught up (zero: not yet).
	LastSync time.Time `json:"last_sync"`
	// QueueSnapshotAt is when the queue was last snapshotted beside it
	// (zero: not yet, or no snapshots).
	QueueSnapshotAt time.Time `json:"queue_snapshot_at"`
}

// DashboardSnapshot is everything the dashboard shows, panel by panel. A
// panel not asked for (or whose source is not configured) is nil; a panel
// whose loader failed is nil and has its error in Errors.
type DashboardSnapshot struct {
	At          stamp             `json:"at"`
	Totals      *totalsJSON       `json:"totals,omitempty"`
	Queues      []queueJSON       `json:"queues,omitempty"`
	Lanes       *lanesJSON        `json:"lanes,omitempty"`
	Rates       *ratesJSON        `json:"rates,omitempty"`
	Recent      []jobJSON         `json:"recent,omitempty"`
	Issues      *issuesPanelJSON  `json:"issues,omitempty"`
	Schedule    *cronJSON         `json:"schedule,omitempty"`
	AI          *aiJSON           `json:"ai,omitempty"`
	Replication *replicationJSON  `json:"replication,omitempty"`
	Errors      map[string]string `json:"errors,omitempty"`
	Panels      []string          `json:"panels"`
	now         time.Time         // when it was loaded
}

// totalsJSON is the header line: counts by state, this minute's and the
// last minute's processed and failed attempts, busy workers, the oldest
// ready job's wait.
type totalsJSON struct {
	Counts          map[string]int64 `json:"counts"`
	ProcessedMinute int64            `json:"processed_last_minute"`
	FailedMinute    int64            `json:"failed_last_minute"`
	Busy            int              `json:"busy"`
	Workers         int              `json:"workers"`
	OldestReadyMS   int64            `json:"oldest_ready_ms"`
	OldestQueue     string           `json:"oldest_ready_queue"`
	Quiet           bool             `json:"quiet"`
}

// laneJSON is one lane: its workers, and its gate with the reason it is
// held closed.
type laneJSON struct {
	Name        string   `json:"name"`
	Queues      []string `json:"queues"`
	Concurrency int      `json:"concurrency"`
	Busy        int      `json:"busy"`
	Idle        int      `json:"idle"`
	Open        bool     `json:"open"`
	Reason      string   `json:"reason"`
	Processed   int64    `json:"processed"`
	Failed      int64    `json:"failed"`
}

// lanesJSON is the lanes panel; Running says whether lanes run in this
// server at all, Quiet whether every lane has stopped claiming.
type lanesJSON struct {
	Running bool       `json:"running"`
	Quiet   bool       `json:"quiet"`
	Lanes   []laneJSON `json:"lanes"`
}

// ratesJSON are the per-minute series of the charts, oldest first: the
// minute's start (Unix seconds), attempts ended, attempts failed.
type ratesJSON struct {
	Minutes   []int64 `json:"minutes"`
	Processed []int64 `json:"processed"`
	Failed    []int64 `json:"failed"`
}

// issuesPanelJSON lists the most recently seen open issues and how many
// are open.
type issuesPanelJSON struct {
	Open   int         `json:"open"`
	Issues []issueJSON `json:"issues"`
}

// aiJSON is AIView on the wire.
type aiJSON struct {
	Configured bool    `json:"configured"`
	Required   bool    `json:"required"`
	Healthy    bool    `json:"healthy"`
	LanesOpen  bool    `json:"lanes_open"`
	Reason     string  `json:"reason"`
	Checks     []Check `json:"checks"`
	CheckedAt  stamp   `json:"checked_at"`
	Since      stamp   `json:"since"`
}

// replicationJSON is ReplicationView on the wire, with the lag.
type replicationJSON struct {
	Configured      bool    `json:"configured"`
	Enabled         bool    `json:"enabled"`
	Replica         string  `json:"replica"`
	LastSync        stamp   `json:"last_sync"`
	LagS            float64 `json:"lag_s"`
	QueueSnapshotAt stamp   `json:"queue_snapshot_at"`
}

// dashboardPanel loads one panel of the snapshot.
type dashboardPanel struct {
	name string
	load func(s *Server, ctx context.Context, d *DashboardSnapshot) error
}

// dashboardPanels are the panels, in page order.
var dashboardPanels = []dashboardPanel{
	{"totals", (*Server).loadTotals},
	{"queues", (*Server).loadQueues},
	{"lanes", (*Server).loadLanes},
	{"rates", (*Server).loadRates},
	{"recent", (*Server).loadRecent},
	{"issues", (*Server).loadIssues},
	{"schedule", (*Server).loadSchedule},
	{"ai", (*Server).loadAI},
	{"replication", (*Server).loadReplication},
}

// panelNames lists the panels' names.
func panelNames() []string {
	out := make([]string, len(dashboardPanels))
	for i, p := range dashboardPanels {
		out[i] = p.name
	}
	return out
}

// parsePanels reads a comma-separated list of panel names; "" is all.
func parsePanels(v string) ([]string, error) {
	if v == "" {
		return panelNames(), nil
	}
	var out []string
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(panelNames(), name) {
			return nil, malformed("panels", "unknown panel %q (want some of %s)", name, strings.Join(panelNames(), ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Snapshot loads the named panels (all when names is empty). A panel's
// failure is recorded in Errors and does not stop the others.
func (s *Server) Snapshot(ctx context.Context, names ...string) *DashboardSnapshot {
	if len(names) == 0 {
		names = panelNames()
	}
	d := &DashboardSnapshot{now: s.now(), Panels: names}
	d.At = stamp(d.now)
	for _, p := range dashboardPanels {
		if !slices.Contains(names, p.name) {
			continue
		}
		if err := p.load(s, ctx, d); err != nil {
			if d.Errors == nil {
				d.Errors = map[string]string{}
			}
			status, _, msg := classify(err)
			if status >= http.StatusInternalServerError {
				s.log.Error("dashboard panel", "panel", p.name, "err", err)
			}
			d.Errors[p.name] = msg
		}
	}
	return d
}

func (s *Server) dashboardRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: "/api/v1/dashboard", Auth: true, handle: s.endpoint(s.getDashboard)},
		{Method: http.MethodGet, Path: "/api/v1/lanes", Auth: true, handle: s.endpoint(s.listLanes)},
		{Method: http.MethodPost, Path: "/api/v1/lanes/quiet", Auth: true, handle: s.endpoint(s.quietLanes)},
		{Method: http.MethodPost, Path: "/api/v1/lanes/resume", Auth: true, handle: s.endpoint(s.resumeLanes)},
	}
}

// getDashboard serves GET /api/v1/dashboard?panels=a,b: the snapshot, or
// the named panels of it.
func (s *Server) getDashboard(r *http.Request, _ httprouter.Params) (int, any, error) {
	q := r.URL.Query()
	for k := range q {
		if k != "panels" {
			return 0, nil, malformed(k, "unknown parameter (want panels)")
		}
	}
	names, err := parsePanels(q.Get("panels"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.Snapshot(r.Context(), names...), nil
}

func (s *Server) loadTotals(ctx context.Context, d *DashboardSnapshot) error {
	t := &totalsJSON{Counts: map[string]int64{}}
	for st, n := range s.store.Counts() {
		t.Counts[st.String()] = n
	}
	for _, st := range queue.States {
		t.Counts[st.String()] += 0
	}
	for _, qi := range s.store.Queues() {
		if ms := qi.Latency.Milliseconds(); ms > t.OldestReadyMS || (t.OldestQueue == "" && qi.Size > 0) {
			t.OldestReadyMS, t.OldestQueue = ms, qi.Name
		}
	}
	minute := d.now.Truncate(time.Minute)
	stats, err := s.store.Stats(minute.Add(-time.Minute))
	if err != nil {
		return err
	}
	for _, m := range stats {
		if m.Minute.Equal(minute.Add(-time.Minute)) {
			t.ProcessedMinute, t.FailedMinute = m.Processed, m.Failed
		}
	}
	if p := s.cfg.Pool; p != nil {
		for _, l := range p.Stats() {
			t.Busy += l.Busy
			t.Workers += l.Concurrency
		}
		t.Quiet = p.Quiet()
	}
	d.Totals = t
	return nil
}

func (s *Server) loadQueues(ctx context.Context, d *DashboardSnapshot) error {
	d.Queues = s.queuesView()
	return nil
}

func (s *Server) lanesView() *lanesJSON {
	out := &lanesJSON{Lanes: []laneJSON{}}
	p := s.cfg.Pool
	if p == nil {
		for _, l := range s.topo.Lanes {
			out.Lanes = append(out.Lanes, laneJSON{Name: l.Name, Queues: slices.Clone(l.Queues), Concurrency: l.Concurrency,
				Reason: "lanes do not run in this server"})
		}
		return out
	}
	out.Running, out.Quiet = true, p.Quiet()
	for _, l := range p.Stats() {
		out.Lanes = append(out.Lanes, laneJSON{Name: l.Name, Queues: l.Queues, Concurrency: l.Concurrency, Busy: l.Busy,
			Idle: max(0, l.Concurrency-l.Busy), Open: l.Open, Reason: l.Reason, Processed: l.Processed, Failed: l.Failed})
	}
	return out
}

func (s *Server) loadLanes(ctx context.Context, d *DashboardSnapshot) error {
	d.Lanes = s.lanesView()
	return nil
}

func (s *Server) loadRates(ctx context.Context, d *DashboardSnapshot) error {
	end := d.now.Truncate(time.Minute)
	start := end.Add(-(rateMinutes - 1) * time.Minute)
	stats, err := s.store.Stats(start)
	if err != nil {
		return err
	}
	r := &ratesJSON{Minutes: make([]int64, rateMinutes), Processed: make([]int64, rateMinutes), Failed: make([]int64, rateMinutes)}
	for i := range rateMinutes {
		r.Minutes[i] = start.Add(time.Duration(i) * time.Minute).Unix()
	}
	for _, m := range stats {
		i := int(m.Minute.Sub(start) / time.Minute)
		if i >= 0 && i < rateMinutes {
			r.Processed[i], r.Failed[i] = m.Processed, m.Failed
		}
	}
	d.Rates = r
	return nil
}

// loadRecent lists the jobs that moved last: running ones, and the latest
// finished, done or dead, newest first.
func (s *Server) loadRecent(ctx context.Context, d *DashboardSnapshot) error {
	var jobs []*queue.Job
	for _, st := range []queue.State{queue.StateRunning, queue.StateDone, queue.StateDead, queue.StateRetry} {
		p, err := s.store.List(queue.ListFilter{State: st, Limit: recentJobs})
		if err != nil {
			return err
		}
		jobs = append(jobs, p.Jobs...)
	}
	moved := func(j *queue.Job) time.Time {
		if len(j.Errors) > 0 && j.State == queue.StateRetry {
			return j.Errors[len(j.Errors)-1].At
		}
		return cmp.Or(j.FinishedAt, j.StartedAt, j.CreatedAt)
	}
	slices.SortStableFunc(jobs, func(a, b *queue.Job) int { return moved(b).Compare(moved(a)) })
	d.Recent = []jobJSON{}
	for _, j := range jobs[:min(len(jobs), recentJobs)] {
		d.Recent = append(d.Recent, s.listJob(j, d.now))
	}
	return nil
}

func (s *Server) loadIssues(ctx context.Context, d *DashboardSnapshot) error {
	db, err := s.failuresDB()
	if err != nil {
		return err
	}
	is, total, err := db.FindIssues(ctx, data.IssueFilter{Status: data.IssueOpen, Limit: dashboardIssues})
	if err != nil {
		return err
	}
	p := &issuesPanelJSON{Open: total, Issues: []issueJSON{}}
	for _, i := range is {
		p.Issues = append(p.Issues, s.issueOut(issueView(i)))
	}
	d.Issues = p
	return nil
}

func (s *Server) loadSchedule(ctx context.Context, d *DashboardSnapshot) error {
	c, err := s.cronView()
	if err != nil {
		return err
	}
	d.Schedule = &c
	return nil
}

func (s *Server) loadAI(ctx context.Context, d *DashboardSnapshot) error {
	if s.cfg.AI == nil {
		d.AI = &aiJSON{Reason: "local AI is not watched by this server", Checks: []Check{}}
		return nil
	}
	v := s.cfg.AI()
	d.AI = &aiJSON{Configured: true, Required: v.Required, Healthy: v.Healthy, LanesOpen: v.LanesOpen, Reason: v.Reason,
		Checks: append([]Check{}, v.Checks...), CheckedAt: stamp(v.CheckedAt), Since: stamp(v.Since)}
	return nil
}

func (s *Server) loadReplication(ctx context.Context, d *DashboardSnapshot) error {
	if s.cfg.Replication == nil {
		d.Replication = &replicationJSON{}
		return nil
	}
	v := s.cfg.Replication()
	r := &replicationJSON{Configured: true, Enabled: v.Enabled, Replica: v.Replica, LastSync: stamp(v.LastSync),
		QueueSnapshotAt: stamp(v.QueueSnapshotAt)}
	if !v.LastSync.IsZero() {
		r.LagS = max(0, d.now.Sub(v.LastSync).Seconds())
	}
	d.Replication = r
	return nil
}

// listLanes serves GET /api/v1/lanes.
func (s *Server) listLanes(r *http.Request, _ httprouter.Params) (int, any, error) {
	return http.StatusOK, s.lanesView(), nil
}

func (s *Server) quietLanes(r *http.Request, _ httprouter.Params) (int, any, error) {
	return s.setQuiet(true)
}

func (s *Server) resumeLanes(r *http.Request, _ httprouter.Params) (int, any, error) {
	return s.setQuiet(false)
}

// setQuiet serves POST /api/v1/lanes/quiet and …/resume: every lane stops
// claiming (running jobs finish), or claims again.
func (s *Server) setQuiet(quiet bool) (int, any, error) {
	p := s.cfg.Pool
	if p == nil {
		return 0, nil, &fieldError{kind: errUnavailable, Msg: "lanes do not run in this server"}
	}
	p.SetQuiet(quiet)
	if quiet {
		s.log.Info("lanes quiet: no lane claims jobs until resumed")
	} else {
		s.log.Info("lanes resumed")
	}
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(events.TopicMetrics)
	}
	return http.StatusOK, s.lanesView(), nil
}
