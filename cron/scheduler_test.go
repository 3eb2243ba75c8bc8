package cron

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// Classes the test registry knows, with their queues.
const (
	tickClass  = "TickJob"  // queue maintenance
	otherClass = "OtherJob" // queue sync
)

// rig is a scheduler on a real queue store and a real SQLite database in a
// temp dir, driven by a FakeClock that the store shares.
type rig struct {
	t       *testing.T
	clk     *FakeClock
	store   *queue.Store
	db      *data.DB
	reg     *lanes.Registry
	entries []Entry
	s       *Scheduler
	tune    func(*Options)
}

func testRegistry(t testing.TB) *lanes.Registry {
	t.Helper()
	reg := lanes.NewRegistry()
	noop := lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })
	if err := lanes.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(lanes.Class{Name: tickClass, Queue: "maintenance", Args: lanes.FreeForm, Handler: noop})
	reg.MustRegister(lanes.Class{Name: otherClass, Queue: "sync", Args: lanes.FreeForm, Handler: noop, MaxAttempts: 3})
	return reg
}

func parseEntries(t testing.TB, src string) []Entry {
	t.Helper()
	es, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// newRig opens the storage and starts a scheduler for the schedule src at
// the clock's time start.
func newRig(t *testing.T, start time.Time, src string, tune ...func(*Options)) *rig {
	t.Helper()
	r := &rig{t: t, clk: NewFakeClock(start), reg: testRegistry(t), entries: parseEntries(t, src)}
	if len(tune) > 0 {
		r.tune = tune[0]
	}
	dir := t.TempDir()
	st, err := queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{Now: r.clk.Now, Logger: testlog.New(t), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	db, err := data.Open(t.Context(), filepath.Join(dir, "conveyor.db"), data.Options{Now: r.clk.Now, Logger: testlog.New(t), ReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.db = db
	t.Cleanup(func() {
		if r.s != nil {
			if err := r.s.Stop(context.Background()); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
		if err := db.IntegrityCheck(context.Background()); err != nil {
			t.Errorf("sqlite: %v", err)
		}
		db.Close()
		if err := st.Check(); err != nil && !errors.Is(err, queue.ErrClosed) {
			t.Errorf("store check: %v", err)
		}
		st.Close()
	})
	r.start()
	return r
}

func (r *rig) options() Options {
	o := Options{
		Entries: r.entries, Store: r.store, DB: r.db, Registry: r.reg, Topology: lanes.DefaultTopology(),
		Clock: r.clk, Logger: testlog.New(r.t),
	}
	if r.tune != nil {
		r.tune(&o)
	}
	return o
}

// start builds and starts a new scheduler (a process start) and waits for
// its first pass.
func (r *rig) start(hooks ...func(*Scheduler)) {
	r.t.Helper()
	s, err := NewScheduler(r.options())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, h := range hooks {
		h(s)
	}
	if err := s.Start(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	r.s = s
	r.sync()
}

// restart stops the scheduler and starts a new one on the same storage.
func (r *rig) restart(hooks ...func(*Scheduler)) {
	r.t.Helper()
	if err := r.s.Stop(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	r.start(hooks...)
}

func (r *rig) sync() {
	r.t.Helper()
	if err := r.s.Sync(r.t.Context(), r.clk.Now()); err != nil {
		r.t.Fatal(err)
	}
}

// advance moves the clock by d in steps of at most step, letting the
// scheduler handle each step: time passing, not a jump.
func (r *rig) advance(d, step time.Duration) {
	r.t.Helper()
	for d > 0 {
		s := min(d, step)
		r.clk.Advance(s)
		r.sync()
		d -= s
	}
}

// jump moves the clock to t at once and lets the scheduler handle it.
func (r *rig) jump(t time.Time) {
	r.t.Helper()
	r.clk.Set(t)
	r.sync()
}

// ticks returns the ticks of entry's enqueued jobs, in enqueue order, and
// checks each job's unique key.
func (r *rig) ticks(entry string) []time.Time {
	r.t.Helper()
	var out []time.Time
	var jobs []*queue.Job
	for _, st := range []queue.State{queue.StateReady, queue.StateDone} {
		for after := ""; ; {
			page, err := r.store.List(queue.ListFilter{State: st, Limit: 1000, After: after})
			if err != nil {
				r.t.Fatal(err)
			}
			jobs = append(jobs, page.Jobs...)
			if after = page.Next; after == "" {
				break
			}
		}
	}
	{
		for _, j := range jobs {
			if j.Context[CtxEntry] != entry || j.Context[CtxTrigger] != TriggerSchedule {
				continue
			}
			tick, err := time.Parse(time.RFC3339, j.Context[CtxTick])
			if err != nil {
				r.t.Fatalf("job %d: tick %q: %v", j.ID, j.Context[CtxTick], err)
			}
			if next, err := time.Parse(time.RFC3339, j.Context[CtxNext]); err != nil || !next.After(tick) {
				r.t.Errorf("job %d: next tick %q after tick %v", j.ID, j.Context[CtxNext], tick)
			}
			if want := "cron:" + entry + ":" + strconv.FormatInt(tick.Unix(), 10); j.UniqueKey != want {
				r.t.Errorf("job %d: unique key %q, want %q", j.ID, j.UniqueKey, want)
			}
			out = append(out, tick)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func (r *rig) view(name string) View {
	r.t.Helper()
	v, err := r.s.Entry(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

// waitFor waits, on the scheduler's change notifications, until cond holds.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 30*time.Second)
	defer cancel()
	for {
		r.s.mu.Lock()
		ok := cond()
		ch := r.s.changed
		r.s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			r.t.Fatalf("never saw %s; health %+v", what, r.s.Health())
		}
	}
}

func times(ts ...string) []time.Time {
	out := make([]time.Time, len(ts))
	for i, s := range ts {
		out[i] = utc(s)
	}
	return out
}

func sameTimes(t *testing.T, what string, got, want []time.Time) {
	t.Helper()
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

const everyMinute = `
minutely:
  cron: "* * * * *"
  class: TickJob
  queue: maintenance
  description: every minute
`

func TestSchedulerFiresEachTickOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute)
	if v := r.view("minutely"); v.Status != StatusActive || !v.NextTick.Equal(utc("2026-05-04T12:01:00Z")) || !v.Since.Equal(utc("2026-05-04T12:00:30Z")) {
		t.Fatalf("view after start: %+v", v)
	}
	r.advance(5*time.Minute, 10*time.Second)
	sameTimes(t, "ticks", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z",
		"2026-05-04T12:03:00Z", "2026-05-04T12:04:00Z", "2026-05-04T12:05:00Z"))
	v := r.view("minutely")
	if !v.LastTick.Equal(utc("2026-05-04T12:05:00Z")) || v.LastJobID == 0 || !v.NextTick.Equal(utc("2026-05-04T12:06:00Z")) || len(v.Missed) != 0 {
		t.Fatalf("view: %+v", v)
	}
	st, err := r.db.CronState(t.Context(), "minutely")
	if err != nil || !st.LastTick.Equal(v.LastTick) || st.LastJobID != v.LastJobID || !st.Active || st.Line != "* * * * *" {
		t.Fatalf("stored state %+v, %v", st, err)
	}
	for _, tick := range r.ticks("minutely") {
		if fired, _ := r.db.CronFired(t.Context(), "minutely", tick); !fired {
			t.Errorf("tick %s fired but not recorded", tick)
		}
	}
	j, err := r.store.Get(v.LastJobID)
	if err != nil || j.Class != tickClass || j.Queue != "maintenance" || j.UniqueUntil.Sub(j.CreatedAt) != Grace+time.Minute {
		t.Fatalf("job %+v, %v", j, err)
	}
	h := r.s.Health()
	if h.State != HealthOK || h.Fires != 5 || h.MaxLateness != 0 {
		t.Fatalf("health %+v", h)
	}
	if err := r.s.Start(t.Context()); err == nil {
		t.Fatal("a second Start succeeded")
	}
}

// Restarts never fire a tick twice and never fire ticks from before the
// entry was first seen; a tick due while the scheduler was down for less
// than Grace still fires.
func TestSchedulerOncePerTickAcrossRestarts(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute)
	r.advance(2*time.Minute, 30*time.Second) // 12:01, 12:02
	for range 3 {
		r.restart()
	}
	r.s.Stop(t.Context())
	r.clk.Advance(40 * time.Second) // 12:03:10, down across the 12:03 tick
	r.start()
	r.advance(90*time.Second, 30*time.Second) // 12:04
	sameTimes(t, "ticks", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z",
		"2026-05-04T12:03:00Z", "2026-05-04T12:04:00Z"))
	if v := r.view("minutely"); !v.Since.Equal(utc("2026-05-04T12:00:30Z")) {
		t.Fatalf("since moved on restart: %s", v.Since)
	}
}

// The crash of the issue: the process dies right after a tick's enqueue is
// durable and before its fire is recorded. The next start offers the tick
// again; the queue answers with the job holding its unique key, so it runs
// once, and the fire is recorded with that job. (The subprocess test in
// package main does the same with a real SIGKILL.)
func TestSchedulerCrashAfterEnqueue(t *testing.T) {
	t.Parallel()
	var crashed atomic.Bool
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute, func(o *Options) {
		o.AfterEnqueue = func() {
			if crashed.CompareAndSwap(false, true) {
				panic("simulated crash after enqueue")
			}
		}
	})
	r.clk.Advance(30 * time.Second) // 12:01:00
	r.waitFor("the loop to die", func() bool { return !r.s.running })
	if st, _ := r.db.CronState(t.Context(), "minutely"); !st.LastTick.IsZero() {
		t.Fatalf("fire recorded despite the crash: %+v", st)
	}
	enqueued := r.ticks("minutely")
	sameTimes(t, "ticks before restart", enqueued, times("2026-05-04T12:01:00Z"))
	if h := r.s.Health(); h.State != HealthStopped || !strings.Contains(h.Detail, "simulated crash") {
		t.Fatalf("health after the crash: %+v", h)
	}

	r.tune = nil
	r.clk.Advance(5 * time.Second)
	r.restart()
	sameTimes(t, "ticks after restart", r.ticks("minutely"), enqueued)
	page, _ := r.store.List(queue.ListFilter{State: queue.StateReady})
	st, _ := r.db.CronState(t.Context(), "minutely")
	if len(page.Jobs) != 1 || st.LastJobID != page.Jobs[0].ID || !st.LastTick.Equal(utc("2026-05-04T12:01:00Z")) {
		t.Fatalf("jobs %d, state %+v", len(page.Jobs), st)
	}
	r.advance(time.Minute, 30*time.Second)
	sameTimes(t, "ticks later", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z"))
}

func TestSchedulerClockJumps(t *testing.T) {
	t.Parallel()
	const src = `
minutely:
  cron: "* * * * *"
  class: TickJob
hourly_catch_up:
  cron: "0 * * * *"
  class: OtherJob
  missed: run_once
  catch_up_window: 2h
`
	r := newRig(t, utc("2026-05-04T12:00:30Z"), src)
	r.advance(time.Minute, 30*time.Second) // 12:01 fires

	// Back an hour: nothing fires until the clock is past 12:01 again,
	// then every tick once.
	r.jump(utc("2026-05-04T11:01:30Z"))
	r.advance(59*time.Minute+30*time.Second, time.Minute) // to 12:01:00
	sameTimes(t, "after the jump back", r.ticks("minutely"), times("2026-05-04T12:01:00Z"))
	r.advance(time.Minute, 30*time.Second)
	sameTimes(t, "past the last fire", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z"))
	if got := r.ticks("hourly_catch_up"); len(got) != 0 {
		t.Fatalf("hourly fired %v", got)
	}

	// Forward three hours: the minutely ticks before 15:02 are missed (skip;
	// 15:02 itself is only 10 s late and fires), the hourly entry runs its
	// latest missed tick once (run_once).
	r.jump(utc("2026-05-04T15:02:10Z"))
	sameTimes(t, "after the jump forward", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z", "2026-05-04T15:02:00Z"))
	sameTimes(t, "hourly catch-up", r.ticks("hourly_catch_up"), times("2026-05-04T15:00:00Z"))
	v := r.view("minutely")
	if len(v.Missed) != 1 || !v.Missed[0].First.Equal(utc("2026-05-04T12:03:00Z")) || !v.Missed[0].Last.Equal(utc("2026-05-04T15:01:00Z")) {
		t.Fatalf("minutely missed %+v", v.Missed)
	}
	h := r.view("hourly_catch_up")
	if len(h.Missed) != 1 || !h.Missed[0].First.Equal(utc("2026-05-04T13:00:00Z")) || !h.Missed[0].Last.Equal(utc("2026-05-04T14:00:00Z")) {
		t.Fatalf("hourly missed %+v", h.Missed)
	}
	misses, err := r.db.CronMisses(t.Context(), 5)
	if err != nil || len(misses) != 2 {
		t.Fatalf("stored misses %+v, %v", misses, err)
	}
	r.advance(time.Minute, 30*time.Second)
	sameTimes(t, "resumes", r.ticks("minutely"), times("2026-05-04T12:01:00Z", "2026-05-04T12:02:00Z", "2026-05-04T15:02:00Z", "2026-05-04T15:03:00Z"))
	if hs := r.s.Health(); hs.State != HealthOK {
		t.Fatalf("a clock jump read as a stall: %+v", hs)
	}
}

// Both daylight-saving transitions of New York, driven minute by minute
// through each day: a fixed-hour entry fires its wall time once a day (the
// spring-forward gap fires at 03:00, the repeated fall-back hour once), a
// wildcard-hour entry fires every real half hour.
func TestSchedulerDaylightSaving(t *testing.T) {
	t.Parallel()
	const src = `
nightly:
  cron: "30 2 * * * America/New_York"
  class: TickJob
fall:
  cron: "30 1 * * * America/New_York"
  class: TickJob
half_hourly:
  cron: "*/30 * * * * America/New_York"
  class: TickJob
`
	for _, c := range []struct {
		name          string
		from          string // midnight before, New York time
		nightly, fall []time.Time
		halfHourly    int
	}{
		{"spring forward", "2026-03-08T05:00:00Z",
			times("2026-03-08T07:00:00Z"), // 02:30 does not exist: 03:00 EDT
			times("2026-03-08T06:30:00Z"), // 01:30 EST
			46},                           // a 23-hour day
		{"fall back", "2026-11-01T04:00:00Z",
			times("2026-11-01T07:30:00Z"), // 02:30 EST
			times("2026-11-01T05:30:00Z"), // 01:30 EDT, not again at 01:30 EST
			50},                           // a 25-hour day
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ny := mustZone(t, "America/New_York")
			from := utc(c.from)
			r := newRig(t, from.Add(-time.Minute), src)
			day := from.In(ny)
			end := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, ny)
			r.advance(end.Sub(r.clk.Now())-time.Second, time.Minute)
			sameTimes(t, "nightly", r.ticks("nightly"), c.nightly)
			sameTimes(t, "fall", r.ticks("fall"), c.fall)
			hh := r.ticks("half_hourly")
			if len(hh) != c.halfHourly {
				t.Errorf("half_hourly fired %d times, want %d: %v", len(hh), c.halfHourly, hh)
			}
			for i := 1; i < len(hh); i++ {
				if d := hh[i].Sub(hh[i-1]); d != 30*time.Minute {
					t.Errorf("half_hourly: %s after %s is %s later", hh[i], hh[i-1], d)
				}
			}
			for _, name := range []string{"nightly", "fall", "half_hourly"} {
				if v := r.view(name); len(v.Missed) != 0 {
					t.Errorf("%s missed %+v", name, v.Missed)
				}
			}
		})
	}
}

// Missed-run policy over a restart after downtime.
func TestSchedulerMissedRunPolicy(t *testing.T) {
	t.Parallel()
	const src = `
skip_hourly:
  cron: "0 * * * *"
  class: TickJob
once_hourly:
  cron: "0 * * * *"
  class: TickJob
  missed: run_once
  catch_up_window: 90m
short_window:
  cron: "0 * * * *"
  class: TickJob
  missed: run_once
  catch_up_window: 10m
`
	r := newRig(t, utc("2026-05-04T09:30:00Z"), src)
	r.advance(time.Hour, 5*time.Minute) // 10:00 fires for all
	r.s.Stop(t.Context())
	r.clk.Set(utc("2026-05-04T13:20:00Z")) // down from 10:30 to 13:20
	r.start()
	for name, want := range map[string][]time.Time{
		"skip_hourly":  times("2026-05-04T10:00:00Z"),
		"once_hourly":  times("2026-05-04T10:00:00Z", "2026-05-04T13:00:00Z"),
		"short_window": times("2026-05-04T10:00:00Z"),
	} {
		sameTimes(t, name, r.ticks(name), want)
	}
	once := r.view("once_hourly")
	if len(once.Missed) != 1 || !once.Missed[0].First.Equal(utc("2026-05-04T11:00:00Z")) || !once.Missed[0].Last.Equal(utc("2026-05-04T12:00:00Z")) {
		t.Fatalf("once_hourly missed %+v", once.Missed)
	}
	if j, _ := r.store.Get(once.LastJobID); j == nil || j.UniqueUntil.Sub(j.CreatedAt) != 91*time.Minute {
		t.Fatalf("run_once job's unique window: %+v", j)
	}
	// A restart does not report the same misses again.
	r.restart()
	if v := r.view("skip_hourly"); len(v.Missed) != 1 {
		t.Fatalf("skip_hourly missed %+v after a second restart", v.Missed)
	}
	if misses, _ := r.db.CronMisses(t.Context(), 10); len(misses) != 3 {
		t.Fatalf("stored misses %+v", misses)
	}
}

// Disabled entries never fire; an operator's switch is persisted and beats
// the file; re-enabling never catches up the disabled time.
func TestSchedulerEnableDisable(t *testing.T) {
	t.Parallel()
	const src = `
off_in_file:
  cron: "* * * * *"
  class: TickJob
  status: disabled
nightly:
  cron: "0 3 * * *"
  class: TickJob
  missed: run_once
  catch_up_window: 6h
`
	r := newRig(t, utc("2026-05-04T00:30:00Z"), src)
	r.advance(10*time.Minute, time.Minute)
	if got := r.ticks("off_in_file"); len(got) != 0 {
		t.Fatalf("a disabled entry fired %v", got)
	}
	if v := r.view("off_in_file"); v.Status != StatusDisabled || v.Enabled || v.EnabledBy != EnabledByFile || !v.NextTick.IsZero() {
		t.Fatalf("view %+v", v)
	}

	ctx := t.Context()
	v, err := r.s.SetEnabled(ctx, "off_in_file", true)
	if err != nil || v.Status != StatusActive || v.EnabledBy != EnabledByOperator || !v.Since.Equal(r.clk.Now()) || !v.NextTick.Equal(utc("2026-05-04T00:41:00Z")) {
		t.Fatalf("enable: %+v, %v", v, err)
	}
	r.sync()
	r.advance(2*time.Minute, time.Minute)
	sameTimes(t, "after enabling", r.ticks("off_in_file"), times("2026-05-04T00:41:00Z", "2026-05-04T00:42:00Z"))

	// Disable the nightly entry before its tick, enable it again after: the
	// 03:00 tick is not caught up, though it is within its window.
	if _, err := r.s.SetEnabled(ctx, "nightly", false); err != nil {
		t.Fatal(err)
	}
	r.restart() // the switch is persisted
	if v := r.view("nightly"); v.Enabled || v.EnabledBy != EnabledByOperator {
		t.Fatalf("after restart: %+v", v)
	}
	r.advance(3*time.Hour, 10*time.Minute) // 03:42
	if v, err := r.s.SetEnabled(ctx, "nightly", true); err != nil || !v.NextTick.Equal(utc("2026-05-05T03:00:00Z")) {
		t.Fatalf("re-enable: %+v, %v", v, err)
	}
	r.restart()
	if got := r.ticks("nightly"); len(got) != 0 {
		t.Fatalf("the disabled time was caught up: %v", got)
	}
	if v := r.view("nightly"); v.Status != StatusActive || len(v.Missed) != 0 {
		t.Fatalf("after re-enable and restart: %+v", v)
	}
	// Enabling what is enabled keeps its Since.
	before := r.view("off_in_file").Since
	r.advance(time.Minute, time.Minute)
	if v, _ := r.s.SetEnabled(ctx, "off_in_file", true); !v.Since.Equal(before) {
		t.Fatalf("since moved from %s to %s", before, v.Since)
	}
	if _, err := r.s.SetEnabled(ctx, "nope", true); !errors.Is(err, ErrUnknownEntry) {
		t.Fatalf("unknown entry: %v", err)
	}
}

// A schedule file whose line changed starts the entry afresh: nothing from
// before the change is caught up.
func TestSchedulerLineChange(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T01:00:00Z"), "e:\n  cron: \"0 3 * * *\"\n  class: TickJob\n  missed: run_once\n  catch_up_window: 6h\n")
	r.advance(time.Hour, 10*time.Minute)
	r.s.Stop(t.Context())
	r.entries = parseEntries(t, "e:\n  cron: \"0 2 * * *\"\n  class: TickJob\n  missed: run_once\n  catch_up_window: 6h\n")
	r.clk.Set(utc("2026-05-04T02:30:00Z"))
	r.start()
	if got := r.ticks("e"); len(got) != 0 {
		t.Fatalf("the changed entry caught up %v", got)
	}
	if v := r.view("e"); !v.Since.Equal(utc("2026-05-04T02:30:00Z")) {
		t.Fatalf("since %s", v.Since)
	}
}

// Entries that cannot run here are shown with the reason and never enqueue.
func TestSchedulerUnavailableEntries(t *testing.T) {
	t.Parallel()
	const src = `
future_job:
  cron: "* * * * *"
  class: NotYetRegisteredJob
  queue: maintenance
lost_queue:
  cron: "* * * * *"
  class: TickJob
  queue: no_such_queue
default_queue:
  cron: "* * * * *"
  class: OtherJob
  retry: 4
bad_args:
  cron: "* * * * *"
  class: SleepJob
  args: {ms: 15, n: 3}
`
	r := newRig(t, utc("2026-05-04T12:00:30Z"), src)
	r.advance(3*time.Minute, time.Minute)
	for name, reason := range map[string]string{
		"future_job": "class NotYetRegisteredJob is not registered",
		"lost_queue": "queue no_such_queue is not served by any lane",
		"bad_args":   "its job is refused: args.n: SleepJob: unknown arg",
	} {
		v := r.view(name)
		if v.Status != StatusUnavailable || !strings.Contains(v.Unavailable, reason) || !v.NextTick.IsZero() || !v.Enabled {
			t.Errorf("%s: %+v", name, v)
		}
		if got := r.ticks(name); len(got) != 0 {
			t.Errorf("%s enqueued %v", name, got)
		}
		if _, err := r.s.EnqueueNow(t.Context(), name); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: enqueue now = %v", name, err)
		}
	}
	v := r.view("default_queue")
	if v.Queue != "sync" || v.MaxAttempts != 5 || len(r.ticks("default_queue")) != 3 {
		t.Fatalf("default_queue %+v", v)
	}
	if j, _ := r.store.Get(v.LastJobID); j.Queue != "sync" || j.MaxAttempts != 5 {
		t.Fatalf("job %+v", j)
	}
	if c := r.store.Counts(); c[queue.StateReady] != 3 {
		t.Fatalf("ready jobs %d, want 3", c[queue.StateReady])
	}
}

func TestSchedulerEnqueueNow(t *testing.T) {
	t.Parallel()
	src := everyMinute + `
off:
  cron: "0 0 1 1 *"
  class: OtherJob
  status: disabled
  args: {"batch": 5}
  date_as_argument: true
`
	r := newRig(t, utc("2026-05-04T12:00:30Z"), src)
	ctx := t.Context()
	id, err := r.s.EnqueueNow(ctx, "off")
	if err != nil {
		t.Fatal(err)
	}
	j, err := r.store.Get(id)
	if err != nil || j.Class != otherClass || j.Queue != "sync" || j.UniqueKey != "" ||
		j.Context[CtxTrigger] != TriggerManual || j.Context[CtxEntry] != "off" || string(j.Args) != `[{"batch":5},1777896030]` {
		t.Fatalf("job %+v (args %s), %v", j, j.Args, err)
	}
	// A run by hand counts as the entry's latest tick, and carries the next.
	if j.Context[CtxTick] != "2026-01-01T00:00:00Z" || j.Context[CtxNext] != "2027-01-01T00:00:00Z" {
		t.Fatalf("manual run's ticks: %v", j.Context)
	}
	mid, err := r.s.EnqueueNow(ctx, "minutely")
	if err != nil {
		t.Fatal(err)
	}
	if mj, _ := r.store.Get(mid); mj.Context[CtxTick] != "2026-05-04T12:00:00Z" || mj.Context[CtxNext] != "2026-05-04T12:01:00Z" {
		t.Fatalf("manual run of minutely: %v", mj.Context)
	}
	v := r.view("off")
	if v.ManualJobID != id || !v.ManualAt.Equal(r.clk.Now()) || !v.LastTick.IsZero() || v.Status != StatusDisabled {
		t.Fatalf("view %+v", v)
	}
	if st, _ := r.db.CronState(ctx, "off"); st.ManualJobID != id {
		t.Fatalf("stored %+v", st)
	}
	// Twice is two runs.
	id2, err := r.s.EnqueueNow(ctx, "off")
	if err != nil || id2 == id {
		t.Fatalf("second enqueue now = %d, %v", id2, err)
	}
	// The ticks are untouched.
	r.advance(time.Minute, time.Minute)
	sameTimes(t, "ticks", r.ticks("minutely"), times("2026-05-04T12:01:00Z"))
	if _, err := r.s.EnqueueNow(ctx, "nope"); !errors.Is(err, ErrUnknownEntry) {
		t.Fatalf("unknown: %v", err)
	}
	r.s.Stop(ctx)
	if _, err := r.s.EnqueueNow(ctx, "off"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("after stop: %v", err)
	}
}

// openIssue returns the scheduler issue if one is open.
func (r *rig) openIssue() *data.Issue {
	r.t.Helper()
	is, _, err := r.db.FindIssues(r.t.Context(), data.IssueFilter{Source: data.SourceScheduler, Status: data.IssueOpen})
	if err != nil {
		r.t.Fatal(err)
	}
	if len(is) == 0 {
		return nil
	}
	return is[0]
}

// A loop that stops waking is late after LateAfter: health says so and an
// issue opens; it resolves when the loop catches up.
func TestSchedulerLivenessLate(t *testing.T) {
	t.Parallel()
	var blocking atomic.Bool
	release := make(chan struct{})
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute)
	r.restart(func(s *Scheduler) {
		s.beforePass = func() {
			if blocking.Load() {
				<-release
			}
		}
	})
	r.waitFor("a healthy verdict", func() bool { return r.s.health.State == HealthOK })
	blocking.Store(true)
	r.clk.Set(utc("2026-05-04T12:01:00Z")) // the loop wakes and hangs
	r.waitFor("the watchdog to watch", func() bool { return r.s.obs.active })
	r.clk.Advance(DefaultLateAfter - time.Second)
	if h := r.s.Health(); h.State != HealthOK {
		t.Fatalf("late before the threshold: %+v", h)
	}
	r.clk.Advance(time.Second)
	r.waitFor("the issue", func() bool { return r.s.reported == HealthLate })
	h := r.s.Health()
	if h.State != HealthLate || !strings.Contains(h.Detail, "behind") {
		t.Fatalf("health %+v", h)
	}
	is := r.openIssue()
	if is == nil || is.Kind != string(HealthLate) || !strings.Contains(is.Title, "late") {
		t.Fatalf("issue %+v", is)
	}

	blocking.Store(false)
	close(release)
	r.waitFor("recovery", func() bool { return r.s.reported == HealthOK })
	if is := r.openIssue(); is != nil {
		t.Fatalf("issue still open: %+v", is)
	}
	// The 12:01 tick was 30 s late: within Grace, it fired.
	sameTimes(t, "ticks", r.ticks("minutely"), times("2026-05-04T12:01:00Z"))
	if h := r.s.Health(); h.LastLateness != 30*time.Second {
		t.Fatalf("lateness %+v", h)
	}
}

// The liveness issue goes through the issue tracker, under the tracker's
// fingerprint; one left open under the fingerprint of earlier versions is
// resolved at the first verdict of the next start.
func TestSchedulerLivenessIssueFingerprints(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute)
	ctx := t.Context()
	legacy, _, err := r.db.UpsertIssue(ctx, data.IssueEvent{Fingerprint: legacyLivenessFingerprint, Source: data.SourceScheduler,
		Kind: string(HealthLate), Title: "Scheduler late: left open by an earlier version", At: r.clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	r.restart()
	r.waitFor("a healthy verdict reported", func() bool { return r.s.reported == HealthOK })
	got, err := r.db.IssueByID(ctx, legacy.ID)
	if err != nil || got.Status != data.IssueResolved || got.ResolvedBy != data.ResolvedByAuto {
		t.Fatalf("legacy issue %+v, %v: want resolved by auto", got, err)
	}
	if want := failures.ProblemFingerprint(data.SourceScheduler, "scheduler"); want == legacyLivenessFingerprint {
		t.Fatal("the tracker's fingerprint is the legacy one: the test proves nothing")
	}
}

// A loop that dies is reported stopped, with an issue.
func TestSchedulerLivenessStopped(t *testing.T) {
	t.Parallel()
	var die atomic.Bool
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute)
	r.restart(func(s *Scheduler) {
		s.beforePass = func() {
			if die.Load() {
				panic("loop bug")
			}
		}
	})
	die.Store(true)
	r.clk.Advance(30 * time.Second)
	r.waitFor("the issue", func() bool { return r.s.reported == HealthStopped })
	if h := r.s.Health(); h.State != HealthStopped || !strings.Contains(h.Detail, "loop bug") {
		t.Fatalf("health %+v", h)
	}
	if is := r.openIssue(); is == nil || is.Kind != string(HealthStopped) {
		t.Fatalf("issue %+v", is)
	}
	// A new start resolves the issue left open.
	r.restart()
	r.waitFor("resolution", func() bool { return r.s.reported == HealthOK })
	if is := r.openIssue(); is != nil {
		t.Fatalf("issue still open after a healthy start: %+v", is)
	}
}

// Enqueues that keep failing make the scheduler "failing" after LateAfter.
func TestSchedulerLivenessFailing(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T12:00:50Z"), everyMinute)
	r.store.Close()
	r.advance(10*time.Second, 10*time.Second) // 12:01: the enqueue fails
	v := r.view("minutely")
	if !strings.Contains(v.Error, "enqueue") || !v.NextTick.Equal(utc("2026-05-04T12:01:01Z")) {
		t.Fatalf("view %+v", v)
	}
	if h := r.s.Health(); h.State != HealthOK {
		t.Fatalf("failing at once: %+v", h)
	}
	r.advance(DefaultLateAfter, time.Second)
	r.waitFor("the issue", func() bool { return r.s.reported == HealthFailing })
	if h := r.s.Health(); h.State != HealthFailing || !strings.Contains(h.Detail, "minutely") {
		t.Fatalf("health %+v", h)
	}
	// Past Grace the tick is reported missed and retries stop.
	r.advance(time.Minute, 10*time.Second)
	if v := r.view("minutely"); len(v.Missed) == 0 || !v.Missed[len(v.Missed)-1].First.Equal(utc("2026-05-04T12:01:00Z")) {
		t.Fatalf("view %+v", v)
	}
}

func TestSchedulerOptions(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t)
	good := parseEntries(t, everyMinute)
	cases := map[string]Options{
		"no store":    {Entries: good, Registry: reg},
		"duplicate":   {Entries: append(slices.Clone(good), good[0]), Registry: reg},
		"negative":    {Entries: good, Registry: reg, LateAfter: -1},
		"zoned spec":  {Entries: []Entry{{Name: "x", Class: "C", Spec: "* * * * * UTC"}}, Registry: reg},
		"no class":    {Entries: []Entry{{Name: "x", Spec: "* * * * *"}}, Registry: reg},
		"unnamed":     {Entries: []Entry{{Class: "C", Spec: "* * * * *"}}, Registry: reg},
		"no registry": {Entries: good},
	}
	for name, o := range cases {
		if _, err := NewScheduler(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// Before Start: starting, and the controls refuse.
	r := &rig{t: t, clk: NewFakeClock(utc("2026-05-04T12:00:00Z")), reg: reg, entries: good}
	dir := t.TempDir()
	st, err := queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := data.Open(t.Context(), filepath.Join(dir, "conveyor.db"), data.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r.store, r.db = st, db
	s, err := NewScheduler(r.options())
	if err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.State != HealthStarting || h.OK() {
		t.Errorf("health before start: %+v", h)
	}
	if _, err := s.EnqueueNow(t.Context(), "minutely"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("enqueue now before start: %v", err)
	}
	if _, err := s.SetEnabled(t.Context(), "minutely", false); !errors.Is(err, ErrNotRunning) {
		t.Errorf("set enabled before start: %v", err)
	}
	if v := s.Entries(); len(v) != 1 || v[0].Name != "minutely" {
		t.Errorf("entries before start: %+v", v)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("stop before start: %v", err)
	}
}

// TestSchedulerConcurrentUse hammers the API while the clock moves, for
// the race detector.
func TestSchedulerConcurrentUse(t *testing.T) {
	t.Parallel()
	r := newRig(t, utc("2026-05-04T12:00:30Z"), everyMinute+"\nother:\n  cron: \"*/2 * * * *\"\n  class: OtherJob\n")
	ctx := t.Context()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				switch i {
				case 0:
					if _, err := r.s.SetEnabled(ctx, "other", n%2 == 0); err != nil {
						t.Error(err)
						return
					}
				case 1:
					if _, err := r.s.EnqueueNow(ctx, "minutely"); err != nil {
						t.Error(err)
						return
					}
				case 2:
					_ = r.s.Entries()
					_ = r.s.Health()
				}
			}
		}()
	}
	r.advance(10*time.Minute, 20*time.Second)
	close(stop)
	wg.Wait()
	got := r.ticks("minutely")
	if len(got) != 10 {
		t.Fatalf("minutely fired %d times under concurrent use: %v", len(got), got)
	}
	seen := map[int64]bool{}
	for _, tk := range r.ticks("other") {
		if seen[tk.Unix()] {
			t.Fatalf("other fired %s twice", tk)
		}
		seen[tk.Unix()] = true
	}
}
