package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/lanes"
	"conveyor/queue"
)

// panelsRig is the live app with every dashboard panel fed by real state:
// local AI held down by a loopback stand-in answering 503 (so the AI lanes'
// gates are held closed, with a reason), replication into a file replica,
// and the scheduler on a fake clock whose loop the test can wedge in a
// pass, so that its watchdog calls it late without any sleep.
type panelsRig struct {
	*liveApp
	clk     *watchedClock
	micro   *stubAI // the local AI microservice: 503
	replica string  // the file replica's URL
	wedged  chan struct{}
	release func()
	block   chan struct{} // the loop waits on it after a tick's enqueue while wedging
	mu      sync.Mutex
	wedging bool
}

// panelsStart is the scheduler's clock at start: half a minute before the
// every-minute entries' next tick, long before the machine's time (so the
// jobs a tick enqueues are due at once).
var panelsStart = time.Date(2026, 6, 1, 12, 0, 30, 0, time.UTC)

func startPanelsRig(t *testing.T) *panelsRig {
	t.Helper()
	r := &panelsRig{clk: newWatchedClock(panelsStart), micro: newStubAI(t, http.StatusServiceUnavailable),
		wedged: make(chan struct{}, 1), block: make(chan struct{})}
	var once sync.Once
	r.release = func() { once.Do(func() { close(r.block) }) }
	ollama := newStubAI(t, http.StatusOK)
	r.replica = (&url.URL{Scheme: "file", Path: filepath.Join(t.TempDir(), "replica")}).String()
	fp := failpoints{
		scheduleClock: func() cron.Clock { return r.clk },
		afterScheduleEnqueue: func() {
			r.mu.Lock()
			w := r.wedging
			r.mu.Unlock()
			if w {
				r.wedged <- struct{}{}
				<-r.block
			}
		},
	}
	r.liveApp = startLiveAppWith(t, fp, []string{"--replica", r.replica},
		"LOCAL_AI_URL="+r.micro.URL, "OLLAMA_URL="+ollama.URL, "START_LOCAL_AI=false", "LOCAL_AI_WATCH_INTERVAL=1h")
	// Registered after the app's stop, so it runs first: a wedged loop
	// would hold the scheduler's stop.
	t.Cleanup(r.release)
	return r
}

// dashboard returns GET /api/v1/dashboard, decoded.
func (r *panelsRig) dashboard() dashSnap {
	r.t.Helper()
	var d dashSnap
	if st := r.api("GET", "/api/v1/dashboard", nil, &d); st != http.StatusOK {
		r.t.Fatalf("GET /api/v1/dashboard: %d", st)
	}
	return d
}

// watchedClock is the scheduler's fake clock; it records the instants
// timers are asked for, so a test knows the watchdog waits for an instant
// before it moves the clock there.
type watchedClock struct {
	*cron.FakeClock
	mu      sync.Mutex
	asked   []time.Time
	changed chan struct{}
}

func newWatchedClock(start time.Time) *watchedClock {
	return &watchedClock{FakeClock: cron.NewFakeClock(start), changed: make(chan struct{})}
}

func (c *watchedClock) Timer(at time.Time) cron.Timer {
	c.mu.Lock()
	c.asked = append(c.asked, at)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return c.FakeClock.Timer(at)
}

// mark returns how many timers have been asked for so far, for waitAsked.
func (c *watchedClock) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.asked)
}

// waitAsked waits until a timer for at is asked for after mark.
func (c *watchedClock) waitAsked(ctx context.Context, mark int, at time.Time) error {
	for {
		c.mu.Lock()
		for _, a := range c.asked[mark:] {
			if a.Equal(at) {
				c.mu.Unlock()
				return nil
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// dashSnap is GET /api/v1/dashboard as the tests read it.
type dashSnap struct {
	At     time.Time `json:"at"`
	Totals struct {
		Counts map[string]int64 `json:"counts"`
		Busy   int              `json:"busy"`
		Quiet  bool             `json:"quiet"`
	} `json:"totals"`
	Queues []dashQueue `json:"queues"`
	Lanes  struct {
		Running bool       `json:"running"`
		Quiet   bool       `json:"quiet"`
		Lanes   []dashLane `json:"lanes"`
	} `json:"lanes"`
	Rates struct {
		Minutes   []int64 `json:"minutes"`
		Processed []int64 `json:"processed"`
		Failed    []int64 `json:"failed"`
	} `json:"rates"`
	Recent []struct {
		ID     uint64 `json:"id"`
		Class  string `json:"class"`
		Queue  string `json:"queue"`
		State  string `json:"state"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"recent"`
	Issues struct {
		Open   int         `json:"open"`
		Issues []dashIssue `json:"issues"`
	} `json:"issues"`
	Schedule struct {
		Scheduler struct {
			State      string  `json:"state"`
			OK         bool    `json:"ok"`
			Detail     string  `json:"detail"`
			LateAfterS float64 `json:"late_after_s"`
		} `json:"scheduler"`
		Entries []dashEntry `json:"entries"`
	} `json:"schedule"`
	AI struct {
		Configured bool   `json:"configured"`
		Required   bool   `json:"required"`
		Healthy    bool   `json:"healthy"`
		LanesOpen  bool   `json:"lanes_open"`
		Reason     string `json:"reason"`
		Checks     []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	} `json:"ai"`
	Replication struct {
		Configured      bool       `json:"configured"`
		Enabled         bool       `json:"enabled"`
		Replica         string     `json:"replica"`
		LastSync        *time.Time `json:"last_sync"`
		LagS            float64    `json:"lag_s"`
		QueueSnapshotAt *time.Time `json:"queue_snapshot_at"`
	} `json:"replication"`
	Errors map[string]string `json:"errors"`
	Panels []string          `json:"panels"`
}

type dashQueue struct {
	Name      string           `json:"name"`
	Lane      string           `json:"lane"`
	Size      int64            `json:"size"`
	LatencyMS int64            `json:"latency_ms"`
	Paused    bool             `json:"paused"`
	Counts    map[string]int64 `json:"counts"`
}

type dashLane struct {
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

type dashIssue struct {
	Source      string `json:"source"`
	Kind        string `json:"kind"`
	Title       string `json:"title"`
	Class       string `json:"class"`
	Occurrences int64  `json:"occurrences"`
	Status      string `json:"status"`
}

type dashEntry struct {
	Name        string     `json:"name"`
	Cron        string     `json:"cron"`
	CronWords   string     `json:"cron_words"`
	Class       string     `json:"class"`
	Queue       string     `json:"queue"`
	Status      string     `json:"status"`
	Enabled     bool       `json:"enabled"`
	EnabledBy   string     `json:"enabled_by"`
	LastTick    *time.Time `json:"last_tick"`
	LastFire    *time.Time `json:"last_fire"`
	LastJobID   *uint64    `json:"last_job_id"`
	ManualJobID *uint64    `json:"manual_job_id"`
	NextTick    *time.Time `json:"next_tick"`
}

// queue returns queue name of d.
func (d dashSnap) queue(name string) (dashQueue, bool) {
	for _, q := range d.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return dashQueue{}, false
}

// lane returns lane name of d.
func (d dashSnap) lane(name string) (dashLane, bool) {
	for _, l := range d.Lanes.Lanes {
		if l.Name == name {
			return l, true
		}
	}
	return dashLane{}, false
}

// issue returns the open issue of d from source whose title has part.
func (d dashSnap) issue(source, part string) (dashIssue, bool) {
	for _, is := range d.Issues.Issues {
		if is.Source == source && strings.Contains(is.Title, part) {
			return is, true
		}
	}
	return dashIssue{}, false
}

func sumAll(xs []int64) (n int64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// waitSnap asks for the dashboard until cond holds; the pause between
// questions is not a guess at how long the work takes: the bound is the
// test's deadline.
func (r *panelsRig) waitSnap(what string, cond func(d dashSnap) bool) dashSnap {
	r.t.Helper()
	ctx := deadline(r.t)
	for {
		d := r.dashboard()
		if cond(d) {
			return d
		}
		select {
		case <-ctx.Done():
			b, _ := json.Marshal(d)
			r.t.Fatalf("the dashboard never showed %s: %s", what, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lateTick is the tick the scheduler's loop is wedged in by makeLate.
var lateTick = panelsStart.Truncate(time.Minute).Add(time.Minute)

// makeLate wedges the scheduler's loop in the pass of lateTick (right
// after the tick's jobs are enqueued) and, once the watchdog waits to look
// again LateAfter later, moves the clock there: the watchdog then finds
// the loop still in that pass and calls the scheduler late. unwedge lets
// the pass finish.
func (r *panelsRig) makeLate() {
	r.t.Helper()
	ctx := deadline(r.t)
	sched := r.a.schedule.sched
	if err := sched.Sync(ctx, r.clk.Now()); err != nil {
		r.t.Fatal(err)
	}
	if h := sched.Health(); h.State != cron.HealthOK {
		r.t.Fatalf("the scheduler before it is made late: %+v", h)
	}
	r.mu.Lock()
	r.wedging = true
	r.mu.Unlock()
	mark := r.clk.mark()
	r.clk.Set(lateTick)
	select {
	case <-r.wedged:
	case <-ctx.Done():
		r.t.Fatal("the scheduler's loop never enqueued the tick")
	}
	watchAgain := lateTick.Add(sched.Health().LateAfter)
	if err := r.clk.waitAsked(ctx, mark, watchAgain); err != nil {
		r.t.Fatalf("the watchdog never waited for %s: %v", watchAgain, err)
	}
	r.clk.Set(watchAgain)
}

// unwedge lets the wedged pass finish.
func (r *panelsRig) unwedge() {
	r.mu.Lock()
	r.wedging = false
	r.mu.Unlock()
	r.release()
}

// entry returns the schedule entry name of d.
func (d dashSnap) entry(t *testing.T, name string) dashEntry {
	t.Helper()
	for _, e := range d.Schedule.Entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no schedule entry %s", name)
	return dashEntry{}
}

// TestDashboardAPIPanels drives real state into every panel and reads it
// back from GET /api/v1/dashboard: jobs run, fail, wait in a paused queue
// and run long; local AI is down, so the AI lanes' gates are held closed
// with its reason; the database is replicated; the quiet switch; the
// schedule's entries and the scheduler's lateness.
func TestDashboardAPIPanels(t *testing.T) {
	t.Parallel()
	r := startPanelsRig(t)
	const failMsg = "503 from bridge"
	var done, dead []uint64
	for range 3 {
		done = append(done, r.enqueue(map[string]any{"class": "NoopJob"}))
	}
	for range 2 {
		dead = append(dead, r.enqueue(map[string]any{"class": "FailJob", "args": map[string]any{"message": failMsg}, "max_attempts": 1}))
	}
	for _, id := range done {
		r.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDone })
	}
	for _, id := range dead {
		r.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
	}
	if st := r.api("POST", "/api/v1/queues/sync/pause", nil, nil); st != http.StatusOK {
		t.Fatalf("pause sync: %d", st)
	}
	enqueued := time.Now()
	var waiting []uint64
	for range 2 {
		waiting = append(waiting, r.enqueue(map[string]any{"class": "NoopJob", "queue": "sync"}))
	}
	madeReady := time.Now()
	// A job that runs until the app stops: a busy worker.
	sleeper := r.enqueue(map[string]any{"class": "SleepJob", "args": map[string]any{"ms": lanes.MaxSleep.Milliseconds()}})
	r.waitJob(sleeper, func(j *queue.Job) bool { return j.State == queue.StateRunning })

	asked := time.Now()
	d := r.waitSnap("the two failures in one issue and the busy worker", func(d dashSnap) bool {
		is, _ := d.issue("job_failure", failMsg)
		l, _ := d.lane("default")
		return is.Occurrences == 2 && l.Busy == 1
	})
	answered := time.Now()
	if len(d.Errors) != 0 || !slices.Equal(d.Panels, []string{"totals", "queues", "lanes", "rates", "recent", "issues", "schedule", "ai", "replication"}) {
		t.Errorf("panels %v, errors %v", d.Panels, d.Errors)
	}

	// Queues: the paused one with its two ready jobs and their wait.
	q, ok := d.queue("sync")
	if !ok || q.Lane != "default" || q.Size != 2 || !q.Paused || q.Counts["ready"] != 2 {
		t.Errorf("queue sync: %+v", q)
	}
	// The oldest became ready between enqueued and madeReady; the snapshot
	// was taken between asked (or a later question) and answered.
	if lo, hi := asked.Sub(madeReady).Milliseconds(), answered.Sub(enqueued).Milliseconds(); q.LatencyMS < lo || q.LatencyMS > hi {
		t.Errorf("queue sync's latency %d ms, not within [%d, %d]", q.LatencyMS, lo, hi)
	}
	if q, _ := d.queue("default"); q.Paused || q.Size != 0 || q.Counts["done"] != 3 || q.Counts["dead"] != 2 || q.Counts["running"] != 1 {
		t.Errorf("queue default: %+v", q)
	}

	// Lanes: the default lane's one busy worker and its counts; every AI
	// lane held closed for the reason local AI gives.
	wantReason := "local AI unhealthy: local AI microservice at " + r.micro.URL + "/health: 503 Service Unavailable: model warming up"
	if !d.Lanes.Running || d.Lanes.Quiet {
		t.Errorf("lanes running=%v quiet=%v", d.Lanes.Running, d.Lanes.Quiet)
	}
	if l, _ := d.lane("default"); l.Concurrency != 16 || l.Busy != 1 || l.Idle != 15 || !l.Open || l.Reason != "" || l.Processed != 5 || l.Failed != 2 {
		t.Errorf("lane default: %+v", l)
	}
	for _, name := range lanes.AILanes {
		if l, ok := d.lane(name); !ok || l.Open || l.Reason != wantReason || l.Busy != 0 || l.Idle != l.Concurrency {
			t.Errorf("AI lane %s: %+v, want held closed: %q", name, l, wantReason)
		}
	}
	if d.Totals.Busy != 1 || d.Totals.Counts["done"] != 3 || d.Totals.Counts["dead"] != 2 || d.Totals.Counts["ready"] != 2 || d.Totals.Counts["running"] != 1 {
		t.Errorf("totals: %+v", d.Totals)
	}

	// Rates: an hour of minutes up to this one, holding the five attempts
	// that ended and the two that failed.
	rt := d.Rates
	if len(rt.Minutes) != 60 || len(rt.Processed) != 60 || len(rt.Failed) != 60 {
		t.Fatalf("rates: %d minutes, %d processed, %d failed", len(rt.Minutes), len(rt.Processed), len(rt.Failed))
	}
	if last := rt.Minutes[59]; last != d.At.Truncate(time.Minute).Unix() {
		t.Errorf("the last minute is %d, want the snapshot's (%s)", last, d.At)
	}
	for i := 1; i < 60; i++ {
		if rt.Minutes[i]-rt.Minutes[i-1] != 60 {
			t.Fatalf("minutes not a minute apart at %d: %v", i, rt.Minutes)
		}
	}
	if p, f := sumAll(rt.Processed), sumAll(rt.Failed); p != 5 || f != 2 {
		t.Errorf("rates: %d processed, %d failed in the hour, want 5 and 2\n%v\n%v", p, f, rt.Processed, rt.Failed)
	}

	// Recent jobs: the ones that ran, with the failures' errors; not the
	// waiting ones.
	seen := map[uint64]string{}
	for _, j := range d.Recent {
		seen[j.ID] = j.State
		if j.State == "dead" && (len(j.Errors) != 1 || j.Errors[0].Message != failMsg) {
			t.Errorf("recent dead job %d: errors %+v", j.ID, j.Errors)
		}
	}
	want := map[uint64]string{sleeper: "running"}
	for _, id := range done {
		want[id] = "done"
	}
	for _, id := range dead {
		want[id] = "dead"
	}
	if !maps.Equal(seen, want) {
		t.Errorf("recent jobs %v, want %v", seen, want)
	}
	if len(d.Recent) > 0 && d.Recent[0].ID != sleeper {
		t.Errorf("the running job is not the most recent: %+v", d.Recent[0])
	}

	// Issues: the failures' issue with its count, and the AI outage.
	if is, _ := d.issue("job_failure", failMsg); is.Class != "FailJob" || is.Status != "open" {
		t.Errorf("the failures' issue: %+v", is)
	}
	if is, ok := d.issue("ai_outage", "local AI microservice"); !ok || is.Occurrences != 1 || is.Status != "open" {
		t.Errorf("the AI outage issue: %+v (%v)", is, ok)
	}
	if d.Issues.Open != 2 || len(d.Issues.Issues) != 2 {
		t.Errorf("open issues: %d, listed %d: %+v", d.Issues.Open, len(d.Issues.Issues), d.Issues.Issues)
	}

	// Local AI: down, with the failing check and the one that passed.
	ai := d.AI
	if !ai.Configured || !ai.Required || ai.Healthy || ai.LanesOpen || ai.Reason != wantReason || len(ai.Checks) != 2 ||
		ai.Checks[0].Name != "local AI microservice" || ai.Checks[0].OK || !strings.HasPrefix(ai.Checks[0].Detail, "503 Service Unavailable: model warming up in ") ||
		ai.Checks[1].Name != "Ollama" || !ai.Checks[1].OK || !strings.HasPrefix(ai.Checks[1].Detail, "200 OK in ") {
		t.Errorf("local AI: %+v", ai)
	}

	// Replication: the replica, its last sync and the lag from it to the
	// snapshot; a backup brings the last sync forward.
	rp := d.Replication
	if !rp.Configured || !rp.Enabled || rp.Replica != r.replica || rp.LastSync == nil || rp.LastSync.After(d.At) {
		t.Fatalf("replication: %+v (snapshot at %s)", rp, d.At)
	}
	if lag := d.At.Sub(*rp.LastSync).Seconds(); math.Abs(lag-rp.LagS) > 0.002 {
		t.Errorf("replication lag %.3f s, but the snapshot at %s is %.3f s after the last sync", rp.LagS, d.At, lag)
	}
	var backup struct {
		QueueSnapshotAt *time.Time `json:"queue_snapshot_at"`
	}
	backedUp := time.Now()
	if st := r.api("POST", "/api/v1/backup", nil, &backup); st != http.StatusOK || backup.QueueSnapshotAt == nil {
		t.Fatalf("backup: %d %+v", st, backup)
	}
	rp = r.dashboard().Replication
	if rp.LastSync == nil || rp.LastSync.Before(backedUp.Truncate(time.Millisecond)) {
		t.Errorf("the last sync after a backup begun at %s: %v", backedUp, rp.LastSync)
	}
	if rp.QueueSnapshotAt == nil || rp.QueueSnapshotAt.Before(backup.QueueSnapshotAt.Truncate(time.Millisecond)) {
		t.Errorf("the queue snapshot after a backup that wrote one at %s: %v", backup.QueueSnapshotAt, rp.QueueSnapshotAt)
	}

	// Quiet: both the totals and the lanes say so, until resumed.
	if st := r.api("POST", "/api/v1/lanes/quiet", nil, nil); st != http.StatusOK {
		t.Fatalf("quiet: %d", st)
	}
	if d := r.dashboard(); !d.Lanes.Quiet || !d.Totals.Quiet {
		t.Errorf("quiet lanes: lanes.quiet=%v totals.quiet=%v", d.Lanes.Quiet, d.Totals.Quiet)
	}
	if st := r.api("POST", "/api/v1/lanes/resume", nil, nil); st != http.StatusOK {
		t.Fatalf("resume: %d", st)
	}
	if d := r.dashboard(); d.Lanes.Quiet || d.Totals.Quiet {
		t.Errorf("resumed lanes: lanes.quiet=%v totals.quiet=%v", d.Lanes.Quiet, d.Totals.Quiet)
	}

	// Schedule: the entry's line in words, its next fire on the
	// scheduler's clock, no fire yet; disabling it takes its next fire away.
	sch := d.Schedule
	if sch.Scheduler.State != "ok" || !sch.Scheduler.OK || sch.Scheduler.LateAfterS != cron.DefaultLateAfter.Seconds() {
		t.Errorf("scheduler: %+v", sch.Scheduler)
	}
	e := d.entry(t, "queue_health_check")
	if e.Cron != "* * * * *" || e.CronWords != "every minute" || e.Class != "CheckQueueHealthJob" || e.Queue != "maintenance" ||
		e.Status != "active" || !e.Enabled || e.EnabledBy != "file" || e.LastFire != nil || e.NextTick == nil || !e.NextTick.Equal(lateTick) {
		t.Errorf("queue_health_check: %+v", e)
	}
	if e := d.entry(t, "retry_failed_background_jobs"); e.CronWords != "every 10 minutes" || e.NextTick == nil || !e.NextTick.Equal(lateTick.Add(9*time.Minute)) {
		t.Errorf("retry_failed_background_jobs: %+v", e)
	}
	if st := r.api("POST", "/api/v1/cron/queue_health_check/disable", nil, nil); st != http.StatusOK {
		t.Fatalf("disable: %d", st)
	}
	if e := r.dashboard().entry(t, "queue_health_check"); e.Enabled || e.Status != "disabled" || e.EnabledBy != "operator" || e.NextTick != nil {
		t.Errorf("queue_health_check disabled: %+v", e)
	}
	if st := r.api("POST", "/api/v1/cron/queue_health_check/enable", nil, nil); st != http.StatusOK {
		t.Fatalf("enable: %d", st)
	}
	if e := r.dashboard().entry(t, "queue_health_check"); !e.Enabled || e.Status != "active" || e.NextTick == nil || !e.NextTick.Equal(lateTick) {
		t.Errorf("queue_health_check enabled again: %+v", e)
	}

	// The scheduler late: the flag, what it saw, and its issue.
	r.makeLate()
	d = r.waitSnap("the scheduler late", func(d dashSnap) bool { return d.Schedule.Scheduler.State == "late" })
	if s := d.Schedule.Scheduler; s.OK || !strings.Contains(s.Detail, "30s behind") || !strings.Contains(s.Detail, lateTick.Format(time.RFC3339)) {
		t.Errorf("the late scheduler: %+v", s)
	}
	d = r.waitSnap("the scheduler's issue", func(d dashSnap) bool { _, ok := d.issue("scheduler", "late"); return ok })
	if is, _ := d.issue("scheduler", "late"); is.Kind != "late" {
		t.Errorf("the scheduler's issue: %+v", is)
	}
	r.unwedge()
	// On time again, and its issue resolved (the watchdog's verdict
	// first, then the issue).
	d = r.waitSnap("the scheduler on time again, its issue resolved", func(d dashSnap) bool {
		_, open := d.issue("scheduler", "late")
		return d.Schedule.Scheduler.OK && !open
	})
	e = d.entry(t, "queue_health_check")
	// The tick fired when the wedged pass let its enqueue go on, LateAfter
	// after the tick.
	if e.LastTick == nil || !e.LastTick.Equal(lateTick) || e.LastFire == nil || !e.LastFire.Equal(lateTick.Add(cron.DefaultLateAfter)) ||
		e.LastJobID == nil || e.NextTick == nil || !e.NextTick.Equal(lateTick.Add(time.Minute)) {
		t.Fatalf("queue_health_check after its tick: %+v", e)
	}
	if j, err := r.a.store.Get(*e.LastJobID); err != nil || j.Class != "CheckQueueHealthJob" {
		t.Errorf("the tick's job: %+v %v", j, err)
	}
}

// TestDashboardReplicationOff: with replication off, the snapshot and the
// page's replication panel say so; ?panels= loads the panels named and no
// other, and refuses a name that is not a panel.
func TestDashboardReplicationOff(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	var raw map[string]json.RawMessage
	if st := l.api("GET", "/api/v1/dashboard?panels=replication,ai", nil, &raw); st != http.StatusOK {
		t.Fatalf("GET /api/v1/dashboard?panels=replication,ai: %d", st)
	}
	if keys := slices.Sorted(maps.Keys(raw)); !slices.Equal(keys, []string{"ai", "at", "panels", "replication"}) {
		t.Errorf("the snapshot of two panels has %v", keys)
	}
	if got, want := string(raw["replication"]), `{"configured":true,"enabled":false,"replica":"","last_sync":null,"lag_s":0,"queue_snapshot_at":null}`; got != want {
		t.Errorf("replication off: %s, want %s", got, want)
	}
	var bad struct{ Field string }
	if st := l.api("GET", "/api/v1/dashboard?panels=replication,nope", nil, &bad); st != http.StatusBadRequest || bad.Field != "panels" {
		t.Errorf("an unknown panel: %d %+v", st, bad)
	}
	req, _ := http.NewRequestWithContext(deadline(t), "GET", l.base+"/admin/background_jobs?panel=replication", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Replication is off: the database and the queue have no backup.") {
		t.Errorf("the replication panel with replication off: %d\n%s", resp.StatusCode, body)
	}
}
