package ui

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/queue"
)

// scheduleSrc is the schedule of the golden files: an active entry, one
// in a zone with a catch-up window, one whose class is not registered here,
// and one disabled in the file.
const scheduleSrc = `
queue_health_check:
  cron: "* * * * *"
  class: CheckQueueHealthJob
  queue: maintenance
  description: Checks queue sizes and latencies.
follow_graph_sync:
  cron: "15 2 * * * Europe/Berlin"
  class: NoopJob
  args: {"batch": 100}
  missed: run_once
  catch_up_window: 6h
  retry: 2
story_auto_replies:
  cron: "10 * * * *"
  class: EnqueueStoryAutoRepliesForAllAccountsJob
  queue: engagements
paused:
  cron: "*/5 * * * *"
  class: NoopJob
  status: disabled
`

// scheduleRig is a server rig whose Config carries a real scheduler on a
// real SQLite database, driven by a fake clock shared with the store.
type scheduleRig struct {
	*rig
	clk   *cron.FakeClock
	sched *cron.Scheduler
	db    *data.DB
}

func newScheduleRig(t *testing.T) *scheduleRig {
	t.Helper()
	clk := cron.NewFakeClock(time.Date(2026, 5, 4, 0, 10, 0, 0, time.UTC))
	entries, err := cron.Parse(strings.NewReader(scheduleSrc))
	if err != nil {
		t.Fatal(err)
	}
	db, err := data.Open(t.Context(), filepath.Join(t.TempDir(), "conveyor.db"), data.Options{Now: clk.Now, Logger: testlog.New(t), ReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	sr := &scheduleRig{clk: clk, db: db}
	noop := lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })
	sr.rig = newRig(t, rigOpts{
		store:   queue.Options{Now: clk.Now},
		classes: []lanes.Class{{Name: "CheckQueueHealthJob", Queue: "maintenance", Args: lanes.FreeForm, Handler: noop}},
		cfg: func(c *Config) {
			s, err := cron.NewScheduler(cron.Options{
				Entries: entries, Store: c.Store, DB: db, Registry: c.Registry, Topology: c.Topology,
				Clock: clk, Logger: testlog.New(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			sr.sched = s
			c.Schedule = s
		},
	})
	t.Cleanup(func() {
		if err := sr.sched.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("close db: %v", err)
		}
	})
	if err := sr.sched.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	sr.sync()
	return sr
}

func (sr *scheduleRig) sync() {
	sr.t.Helper()
	if err := sr.sched.Sync(context.Background(), sr.clk.Now()); err != nil {
		sr.t.Fatal(err)
	}
}

// advance moves the clock minute by minute, letting the scheduler work.
func (sr *scheduleRig) advance(minutes int) {
	for range minutes {
		sr.clk.Advance(time.Minute)
		sr.sync()
	}
}

func TestScheduleGolden(t *testing.T) {
	t.Parallel()
	sr := newScheduleRig(t)
	sr.advance(3) // 00:11, 00:12, 00:13 fire
	list := into[cronJSON](t, sr.call("GET", "/api/v1/cron", ""), http.StatusOK)
	golden(t, "schedule_list", list)
	if !list.Scheduler.OK || len(list.Entries) != 4 {
		t.Fatalf("list %+v", list)
	}
	byName := map[string]cronEntryJSON{}
	for _, e := range list.Entries {
		byName[e.Name] = e
	}
	if e := byName["queue_health_check"]; e.Status != cron.StatusActive || e.LastJobID == nil || *e.LastJobID != 3 {
		t.Errorf("queue_health_check %+v", e)
	}
	if e := byName["story_auto_replies"]; e.Status != cron.StatusUnavailable || !strings.Contains(e.Unavailable, "not registered") {
		t.Errorf("story_auto_replies %+v", e)
	}

	dis := into[cronEntryJSON](t, sr.call("POST", "/api/v1/cron/queue_health_check/disable", ""), http.StatusOK)
	golden(t, "schedule_disable", dis)
	if dis.Enabled || dis.Status != cron.StatusDisabled || dis.EnabledBy != cron.EnabledByOperator {
		t.Errorf("disable %+v", dis)
	}
	sr.advance(2)
	for _, v := range sr.sched.Entries() {
		if v.Name == "queue_health_check" && !v.LastTick.Equal(time.Date(2026, 5, 4, 0, 13, 0, 0, time.UTC)) {
			t.Errorf("a disabled entry fired: last tick %s", v.LastTick)
		}
	}

	enq := into[cronEnqueuedJSON](t, sr.call("POST", "/api/v1/cron/paused/enqueue", ""), http.StatusCreated)
	golden(t, "schedule_enqueue", enq)
	if j, err := sr.store.Get(enq.ID); err != nil || j.Class != "NoopJob" || j.Context[cron.CtxTrigger] != cron.TriggerManual {
		t.Errorf("job %+v, %v", j, err)
	}

	en := into[cronEntryJSON](t, sr.call("POST", "/api/v1/cron/paused/enable", ""), http.StatusOK)
	if !en.Enabled || en.Status != cron.StatusActive || time.Time(en.NextTick).IsZero() {
		t.Errorf("enable %+v", en)
	}
}

func TestScheduleErrors(t *testing.T) {
	t.Parallel()
	sr := newScheduleRig(t)
	for _, c := range []struct {
		method, path string
		status       int
		field        string
	}{
		{"POST", "/api/v1/cron/nope/enqueue", http.StatusNotFound, "name"},
		{"POST", "/api/v1/cron/nope/enable", http.StatusNotFound, "name"},
		{"POST", "/api/v1/cron/nope/disable", http.StatusNotFound, "name"},
		{"POST", "/api/v1/cron/story_auto_replies/enqueue", http.StatusUnprocessableEntity, "name"},
		{"GET", "/api/v1/cron/queue_health_check/enqueue", http.StatusMethodNotAllowed, ""},
		{"POST", "/api/v1/cron", http.StatusMethodNotAllowed, ""},
	} {
		e := wantError(t, sr.call(c.method, c.path, ""), c.status, c.field)
		if c.status == http.StatusUnprocessableEntity && !strings.Contains(e.Error, "not registered") {
			t.Errorf("%s %s: %q does not say why", c.method, c.path, e.Error)
		}
	}
	if n := sr.store.Counts()[queue.StateReady]; n != 0 {
		t.Errorf("a refused request enqueued %d jobs", n)
	}
	if rp := sr.send("GET", "/api/v1/cron", "", ""); rp.status != http.StatusUnauthorized {
		t.Errorf("unauthenticated list: %d", rp.status)
	}

	// Once stopped, actions answer 503; the list still shows the state.
	if err := sr.sched.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantError(t, sr.call("POST", "/api/v1/cron/paused/enable", ""), http.StatusServiceUnavailable, "")
	list := into[cronJSON](t, sr.call("GET", "/api/v1/cron", ""), http.StatusOK)
	if list.Scheduler.OK || list.Scheduler.State != string(cron.HealthStopped) {
		t.Errorf("scheduler after stop: %+v", list.Scheduler)
	}
}

func TestScheduleNotConfigured(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	wantError(t, r.call("GET", "/api/v1/cron", ""), http.StatusServiceUnavailable, "")
	wantError(t, r.call("POST", "/api/v1/cron/x/enqueue", ""), http.StatusServiceUnavailable, "")
}
