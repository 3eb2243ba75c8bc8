package jobs_test

import (
	"context"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/internal/testlog"
	"conveyor/jobs"
	"conveyor/lanes"
)

// kickoffRig is a rig with the default schedule's scheduler started on
// the rig's fake clock.
func kickoffRig(t *testing.T) (*jobs.Rig, *cron.Scheduler) {
	t.Helper()
	r := jobs.NewRig(t, t.TempDir())
	if err := lanes.RegisterBuiltins(r.Reg); err != nil {
		t.Fatal(err)
	}
	entries, err := cron.Default()
	if err != nil {
		t.Fatal(err)
	}
	sched, err := cron.NewScheduler(cron.Options{Entries: entries, Store: r.Store, DB: r.DB, Registry: r.Reg,
		Topology: lanes.DefaultTopology(), Clock: r.Clock, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sched.Stop(context.Background()) })
	return r, sched
}

// TestKickoffRunsEachFanOutOnce: the kickoff runs every orchestrator's
// entry once, continuous processing at start and the last one Spread
// later, each at its planned time and not before, as an enqueue-now: the
// job carries the manual trigger and the entry's latest tick, as one run
// through POST /api/v1/cron/{entry}/enqueue would. A disabled entry is
// left out.
func TestKickoffRunsEachFanOutOnce(t *testing.T) {
	t.Parallel()
	r, sched := kickoffRig(t)
	if _, err := sched.SetEnabled(t.Context(), "avatar_sync", false); err != nil {
		t.Fatal(err)
	}
	type run struct {
		entry string
		job   uint64
		err   error
	}
	ran := make(chan run, 16)
	clk := &askingClock{FakeClock: r.Clock, asked: make(chan time.Time, 16)}
	k, err := jobs.NewKickoff(jobs.KickoffOptions{Scheduler: sched, Spread: 30 * time.Second, Clock: clk,
		Logger: testlog.New(t), Ran: func(e string, id uint64, err error) { ran <- run{e, id, err} }})
	if err != nil {
		t.Fatal(err)
	}
	plan := k.Plan()
	if len(plan) != len(jobs.Orchestrators())-1 || plan[0].Class != jobs.EnqueueContinuousAccountProcessing ||
		plan[0].After != 0 || plan[len(plan)-1].After != 30*time.Second {
		t.Fatalf("plan %+v", plan)
	}
	for i, st := range plan {
		if st.Entry == "avatar_sync" || (i > 0 && st.After <= plan[i-1].After) {
			t.Fatalf("plan %+v", plan)
		}
	}
	start := r.Clock.Now()
	if err := k.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop(context.Background()) })
	for i, st := range plan {
		// The kickoff waits for exactly the step's time, then runs it.
		if at := <-clk.asked; !at.Equal(start.Add(st.After)) {
			t.Fatalf("step %d (%s) waits until %v after start, want %v", i, st.Entry, at.Sub(start), st.After)
		}
		r.Clock.Set(start.Add(st.After))
		got := <-ran
		if got.entry != st.Entry || got.err != nil {
			t.Fatalf("step %d: ran %+v, want %s", i, got, st.Entry)
		}
		j, err := r.Store.Get(got.job)
		if err != nil {
			t.Fatal(err)
		}
		views := map[string]cron.View{}
		for _, v := range sched.Entries() {
			views[v.Name] = v
		}
		latest, _ := time.Parse(time.RFC3339, j.Context[cron.CtxTick])
		if j.Class != st.Class || j.Context[cron.CtxTrigger] != cron.TriggerManual || j.Context[cron.CtxEntry] != st.Entry ||
			latest.After(r.Clock.Now()) || views[st.Entry].ManualJobID != got.job || j.CreatedAt.Before(start.Add(st.After)) {
			t.Fatalf("%s's job %+v (entry %+v)", st.Entry, j, views[st.Entry])
		}
	}
	if err := k.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case extra := <-ran:
		t.Fatalf("ran more than the plan: %+v", extra)
	default:
	}
	n := 0
	for _, o := range jobs.Orchestrators() {
		n += len(r.Jobs(o.Class))
	}
	if n != len(plan) {
		t.Errorf("%d orchestrator jobs, want one per planned entry (%d)", n, len(plan))
	}
	if got := len(r.Jobs(jobs.EnqueueAvatarSync)); got != 0 {
		t.Errorf("the disabled entry ran %d times", got)
	}
}

// askingClock is a fake clock that tells which times timers are asked for.
type askingClock struct {
	*cron.FakeClock
	asked chan time.Time
}

func (c *askingClock) Timer(at time.Time) cron.Timer {
	c.asked <- at
	return c.FakeClock.Timer(at)
}

// TestKickoffStopsEarly: stopped before its last runs, the kickoff makes
// none of them.
func TestKickoffStopsEarly(t *testing.T) {
	t.Parallel()
	r, sched := kickoffRig(t)
	ran := make(chan string, 16)
	k, _ := jobs.NewKickoff(jobs.KickoffOptions{Scheduler: sched, Clock: r.Clock, Ran: func(e string, _ uint64, _ error) { ran <- e }})
	if err := k.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if first := <-ran; first != "continuous_account_processing" {
		t.Fatalf("first run %s", first)
	}
	if err := k.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.Clock.Advance(time.Hour)
	select {
	case e := <-ran:
		t.Fatalf("%s ran after Stop", e)
	default:
	}
	if _, err := jobs.NewKickoff(jobs.KickoffOptions{}); err == nil {
		t.Error("a kickoff without a scheduler")
	}
}
