package data

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"conveyor/internal/testlog"
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
	if _, err := db.RecordCronFire(ctx, "x", time.Time{}, 1, clk.Now()); err == nil {
		t.Fatal("zero tick accepted")
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
	if err := db.SetCronEnabled(ctx, " ", &on); err == nil {
		t.Fatal("empty name accepted")
	}
}

// SyncCron keeps a stored since unless given a new one; ToggleCron stores
// the override and the scheduler's view together.
func TestCronSyncAndToggle(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	t0 := clk.Now()
	if err := db.SyncCron(ctx, []CronSync{
		{Name: "a", Line: "* * * * *", Active: true, Since: t0},
		{Name: "b", Line: "0 3 * * * Europe/Berlin", Active: false, Since: t0},
	}); err != nil {
		t.Fatal(err)
	}
	// A later start keeps since when told to (zero), changes line and active.
	if err := db.SyncCron(ctx, []CronSync{{Name: "a", Line: "*/5 * * * *", Active: false}}); err != nil {
		t.Fatal(err)
	}
	a, err := db.CronState(ctx, "a")
	if err != nil || a.Line != "*/5 * * * *" || a.Active || !a.Since.Equal(t0) || a.Enabled != nil {
		t.Fatalf("a = %+v, %v", a, err)
	}
	on := true
	t1 := t0.Add(time.Hour)
	if err := db.ToggleCron(ctx, CronSync{Name: "b", Line: "0 3 * * * Europe/Berlin", Active: true, Since: t1}, &on); err != nil {
		t.Fatal(err)
	}
	b, _ := db.CronState(ctx, "b")
	if b.Enabled == nil || !*b.Enabled || !b.Active || !b.Since.Equal(t1) || b.Line != "0 3 * * * Europe/Berlin" {
		t.Fatalf("b = %+v", b)
	}
	// Toggling an entry never seen creates it.
	off := false
	if err := db.ToggleCron(ctx, CronSync{Name: "c", Line: "@hourly"}, &off); err != nil {
		t.Fatal(err)
	}
	c, _ := db.CronState(ctx, "c")
	if c.Enabled == nil || *c.Enabled || c.Active || !c.Since.IsZero() {
		t.Fatalf("c = %+v", c)
	}
	for _, bad := range [][]CronSync{{{Name: ""}}, {{Name: "ok"}, {Name: "  "}}} {
		if err := db.SyncCron(ctx, bad); err == nil {
			t.Errorf("SyncCron(%+v) accepted", bad)
		}
	}
	if err := db.ToggleCron(ctx, CronSync{}, &on); err == nil {
		t.Error("ToggleCron without a name accepted")
	}
	if err := db.SyncCron(ctx, nil); err != nil {
		t.Errorf("empty sync: %v", err)
	}
}

// A run records its fire and its misses in one go; misses are kept per
// entry, newest first, and missed_last only moves forward.
func TestCronRunsAndMisses(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	m := func(min int) time.Time { return time.Date(2026, 3, 1, 10, min, 0, 0, time.UTC) }
	runs := []CronRun{
		{Entry: "a", Fire: m(30), JobID: 5, FiredAt: m(30).Add(20 * time.Millisecond), MissedFirst: m(1), MissedLast: m(29), ReportedAt: m(30)},
		{Entry: "b", MissedFirst: m(0), MissedLast: m(0)},
		{Entry: "c", Fire: m(30), JobID: 6},
	}
	fresh, err := db.RecordCronRuns(ctx, runs)
	if err != nil || len(fresh) != 3 || !fresh[0] || fresh[1] || !fresh[2] {
		t.Fatalf("fresh = %v, %v", fresh, err)
	}
	// The same runs again (a retried store): nothing new, no duplicate misses.
	fresh, err = db.RecordCronRuns(ctx, runs)
	if err != nil || fresh[0] || fresh[2] {
		t.Fatalf("again: fresh = %v, %v", fresh, err)
	}
	a, _ := db.CronState(ctx, "a")
	if !a.LastTick.Equal(m(30)) || a.LastJobID != 5 || !a.Missed.Equal(m(29)) || !a.LastFiredAt.Equal(m(30).Add(20*time.Millisecond)) {
		t.Fatalf("a = %+v", a)
	}
	c, _ := db.CronState(ctx, "c")
	if !c.LastFiredAt.Equal(clk.Now()) || !c.Missed.IsZero() {
		t.Fatalf("c = %+v (fired_at defaults to the store's clock)", c)
	}
	// An older range is recorded but does not move missed_last back.
	if _, err := db.RecordCronRuns(ctx, []CronRun{{Entry: "a", MissedFirst: m(40), MissedLast: m(45)}, {Entry: "a", MissedFirst: m(31), MissedLast: m(31)}}); err != nil {
		t.Fatal(err)
	}
	a, _ = db.CronState(ctx, "a")
	if !a.Missed.Equal(m(45)) {
		t.Fatalf("missed_last = %s, want %s", a.Missed, m(45))
	}
	misses, err := db.CronMisses(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []CronMiss{
		{Entry: "a", First: m(40), Last: m(45), ReportedAt: clk.Now()},
		{Entry: "a", First: m(31), Last: m(31), ReportedAt: clk.Now()},
		{Entry: "b", First: m(0), Last: m(0), ReportedAt: clk.Now()},
	}
	if len(misses) != len(want) {
		t.Fatalf("misses = %+v", misses)
	}
	for i := range want {
		if g, w := misses[i], want[i]; g.Entry != w.Entry || !g.First.Equal(w.First) || !g.Last.Equal(w.Last) || !g.ReportedAt.Equal(w.ReportedAt) {
			t.Errorf("misses[%d] = %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range []CronRun{
		{Entry: ""},
		{Entry: "a", MissedFirst: m(1)},
		{Entry: "a", MissedFirst: m(2), MissedLast: m(1)},
	} {
		if _, err := db.RecordCronRuns(ctx, []CronRun{bad}); err == nil {
			t.Errorf("RecordCronRuns(%+v) accepted", bad)
		}
	}
	if _, err := db.CronMisses(ctx, 0); err == nil {
		t.Error("CronMisses(0) accepted")
	}

	// Pruning keeps each entry's newest missed range.
	clk.Add(48 * time.Hour)
	n, err := db.PruneCronFires(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Fires: a and c have one each (kept). Misses: a has 3 ranges, keeps 1.
	if n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	misses, _ = db.CronMisses(ctx, 10)
	if len(misses) != 2 || !misses[0].Last.Equal(m(45)) || misses[1].Entry != "b" {
		t.Fatalf("after prune: %+v", misses)
	}
}

func TestCronManual(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	if err := db.RecordCronManual(ctx, "a", 77, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordCronFire(ctx, "a", clk.Now().Add(-time.Minute), 78, time.Time{}); err != nil {
		t.Fatal(err)
	}
	a, _ := db.CronState(ctx, "a")
	if a.ManualJobID != 77 || !a.ManualAt.Equal(clk.Now()) || a.LastJobID != 78 {
		t.Fatalf("a = %+v", a)
	}
	if err := db.RecordCronManual(ctx, "", 1, time.Time{}); err == nil {
		t.Fatal("empty entry accepted")
	}
}

// A database made by the first schema keeps its cron rows through the
// history migration, with the new columns empty.
func TestCronHistoryMigration(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	init, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	// Build a version-1 database by hand: the first script and its record.
	raw, err := sql.Open("sqlite", "file:"+escapePath(p))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(init[0].sql); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);
		INSERT INTO schema_migrations VALUES (1, ?, 0);
		INSERT INTO cron_entries (name, enabled, last_tick, last_fired_at, last_job_id, updated_at) VALUES ('old', 0, 60000, 61000, 9, 0);`, init[0].name); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err := Open(t.Context(), p, Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	old, err := db.CronState(t.Context(), "old")
	if err != nil || old.Enabled == nil || *old.Enabled || old.LastJobID != 9 || old.LastTick.UnixMilli() != 60000 ||
		old.Line != "" || old.Active || !old.Since.IsZero() || !old.Missed.IsZero() {
		t.Fatalf("old = %+v, %v", old, err)
	}
}
