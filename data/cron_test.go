package data

import (
	"testing"
	"time"
)

func TestCronFiresOncePerTick(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	st, err := db.CronState(ctx, "CheckQueueHealthJob")
	if err != nil || st.Name != "CheckQueueHealthJob" || st.Enabled != nil || !st.LastTick.IsZero() {
		t.Fatalf("fresh state = %+v, %v", st, err)
	}
	tick := time.Date(2026, 3, 1, 12, 5, 0, 0, time.FixedZone("CET", 3600))
	ok, err := db.RecordCronFire(ctx, "CheckQueueHealthJob", tick, 101, clk.Now())
	if err != nil || !ok {
		t.Fatalf("first fire = %v %v", ok, err)
	}
	ok, err = db.RecordCronFire(ctx, "CheckQueueHealthJob", tick.UTC(), 102, clk.Add(time.Second))
	if err != nil || ok {
		t.Fatalf("same tick again = %v %v, want false", ok, err)
	}
	st, _ = db.CronState(ctx, "CheckQueueHealthJob")
	if !st.LastTick.Equal(tick) || st.LastTick.Location() != time.UTC || st.LastJobID != 101 || !st.LastFiredAt.Equal(clk.Now().Add(-time.Second)) {
		t.Fatalf("state after a duplicate = %+v", st)
	}
	if fired, _ := db.CronFired(ctx, "CheckQueueHealthJob", tick); !fired {
		t.Fatal("CronFired = false for a recorded tick")
	}

	// A later tick moves the state; a late older tick is recorded but does
	// not move it back.
	next := tick.Add(5 * time.Minute)
	if ok, _ := db.RecordCronFire(ctx, "CheckQueueHealthJob", next, 103, clk.Add(time.Minute)); !ok {
		t.Fatal("next tick not recorded")
	}
	if ok, _ := db.RecordCronFire(ctx, "CheckQueueHealthJob", tick.Add(-5*time.Minute), 99, clk.Now()); !ok {
		t.Fatal("older tick not recorded")
	}
	st, _ = db.CronState(ctx, "CheckQueueHealthJob")
	if !st.LastTick.Equal(next) || st.LastJobID != 103 {
		t.Fatalf("state went backwards: %+v", st)
	}
	if _, err := db.RecordCronFire(ctx, "", tick, 1, clk.Now()); err == nil {
		t.Fatal("empty entry accepted")
	}

	// Retention keeps each entry's newest fire.
	if _, err := db.RecordCronFire(ctx, "Other", tick, 7, clk.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneCronFires(ctx, clk.Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if fired, _ := db.CronFired(ctx, "CheckQueueHealthJob", next); !fired {
		t.Fatal("the newest tick of the entry was pruned")
	}
	if fired, _ := db.CronFired(ctx, "CheckQueueHealthJob", tick.Add(-5*time.Minute)); fired {
		t.Fatal("an old tick survived the prune")
	}
	if fired, _ := db.CronFired(ctx, "Other", tick); !fired {
		t.Fatal("the only fire of Other was pruned")
	}
}

func TestCronEnabledOverride(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	ctx := t.Context()
	off, on := false, true
	if err := db.SetCronEnabled(ctx, "b", &off); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCronEnabled(ctx, "a", &on); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCronEnabled(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	sts, err := db.CronStates(ctx)
	if err != nil || len(sts) != 2 || sts[0].Name != "a" || sts[0].Enabled != nil || sts[1].Enabled == nil || *sts[1].Enabled {
		t.Fatalf("states = %+v, %v", sts, err)
	}
}
