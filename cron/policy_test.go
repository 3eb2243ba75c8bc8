package cron

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func hourly(t testing.TB, policy Policy, window time.Duration) Entry {
	t.Helper()
	e := mustEntry(t, "0 * * * *")
	e.Name = "hourly"
	e.Policy = policy
	e.CatchUpWindow = window
	return e
}

func at(hhmmss string) time.Time {
	return utc("2026-05-04T" + hhmmss + "Z")
}

func TestDecide(t *testing.T) {
	t.Parallel()
	since := at("08:30:00")
	cases := []struct {
		name       string
		policy     Policy
		window     time.Duration
		hist       History
		now        time.Time
		fire, next time.Time
		missed     [2]time.Time
	}{
		{name: "first start fires nothing from before it", policy: RunOnce, window: time.Hour,
			hist: History{Since: at("12:30:00")}, now: at("12:30:00"),
			next: at("13:00:00")},
		{name: "first start exactly on a tick does not fire it", policy: Skip,
			hist: History{Since: at("13:00:00")}, now: at("13:00:00"),
			next: at("14:00:00")},
		{name: "first tick after start fires", policy: Skip,
			hist: History{Since: at("12:30:00")}, now: at("13:00:00.300"),
			fire: at("13:00:00"), next: at("14:00:00")},
		{name: "on time", policy: Skip,
			hist: History{Since: since, Last: at("12:00:00")}, now: at("13:00:00.002"),
			fire: at("13:00:00"), next: at("14:00:00")},
		{name: "woken early", policy: Skip,
			hist: History{Since: since, Last: at("12:00:00")}, now: at("12:59:59.900"),
			next: at("13:00:00")},
		{name: "late within grace fires", policy: Skip,
			hist: History{Since: since, Last: at("12:00:00")}, now: at("13:01:00"),
			fire: at("13:00:00"), next: at("14:00:00")},
		{name: "late beyond grace is missed under skip", policy: Skip,
			hist: History{Since: since, Last: at("12:00:00")}, now: at("13:01:01"),
			next: at("14:00:00"), missed: [2]time.Time{at("13:00:00"), at("13:00:00")}},
		{name: "restart after downtime, skip", policy: Skip,
			hist: History{Since: since, Last: at("09:00:00")}, now: at("12:30:00"),
			next: at("13:00:00"), missed: [2]time.Time{at("10:00:00"), at("12:00:00")}},
		{name: "restart after downtime, run once", policy: RunOnce, window: time.Hour,
			hist: History{Since: since, Last: at("09:00:00")}, now: at("12:30:00"),
			fire: at("12:00:00"), next: at("13:00:00"), missed: [2]time.Time{at("10:00:00"), at("11:00:00")}},
		{name: "restart after downtime, run once, only one missed", policy: RunOnce, window: time.Hour,
			hist: History{Since: since, Last: at("11:00:00")}, now: at("12:20:00"),
			fire: at("12:00:00"), next: at("13:00:00")},
		{name: "restart after downtime, run once, outside the window", policy: RunOnce, window: 30 * time.Minute,
			hist: History{Since: since, Last: at("09:00:00")}, now: at("12:45:00"),
			next: at("13:00:00"), missed: [2]time.Time{at("10:00:00"), at("12:00:00")}},
		{name: "run once with zero window uses the default", policy: RunOnce, window: 0,
			hist: History{Since: since, Last: at("09:00:00")}, now: at("12:59:00"),
			fire: at("12:00:00"), next: at("13:00:00"), missed: [2]time.Time{at("10:00:00"), at("11:00:00")}},
		{name: "never fired, downtime over its first tick, run once", policy: RunOnce, window: time.Hour,
			hist: History{Since: since}, now: at("09:10:00"),
			fire: at("09:00:00"), next: at("10:00:00")},
		{name: "clock jumped back: nothing fires again", policy: RunOnce, window: time.Hour,
			hist: History{Since: since, Last: at("13:00:00")}, now: at("12:10:00"),
			next: at("14:00:00")},
		{name: "clock jumped back onto the last tick", policy: Skip,
			hist: History{Since: since, Last: at("13:00:00")}, now: at("13:00:00"),
			next: at("14:00:00")},
		{name: "clock jumped forward, skip", policy: Skip,
			hist: History{Since: since, Last: at("13:00:00")}, now: at("17:20:00"),
			next: at("18:00:00"), missed: [2]time.Time{at("14:00:00"), at("17:00:00")}},
		{name: "clock jumped forward, run once", policy: RunOnce, window: time.Hour,
			hist: History{Since: since, Last: at("13:00:00")}, now: at("17:20:00"),
			fire: at("17:00:00"), next: at("18:00:00"), missed: [2]time.Time{at("14:00:00"), at("16:00:00")}},
		{name: "missed ticks already reported are not reported again", policy: Skip,
			hist: History{Since: since, Last: at("09:00:00"), Missed: at("12:00:00")}, now: at("13:00:01"),
			fire: at("13:00:00"), next: at("14:00:00")},
		{name: "missed ticks never fire later, even when the clock jumps back", policy: RunOnce, window: time.Hour,
			hist: History{Since: since, Last: at("09:00:00"), Missed: at("12:00:00")}, now: at("12:10:00"),
			next: at("13:00:00")},
		{name: "re-enabled: ticks from while it was disabled do not fire", policy: RunOnce, window: time.Hour,
			hist: History{Since: at("12:10:00"), Last: at("09:00:00")}, now: at("12:10:00"),
			next: at("13:00:00")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := hourly(t, c.policy, c.window)
			d, err := Decide(e, c.hist, c.now)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Fire.Equal(c.fire) || !d.Next.Equal(c.next) || !d.MissedFirst.Equal(c.missed[0]) || !d.MissedLast.Equal(c.missed[1]) {
				t.Errorf("Decide = fire %s next %s missed %s..%s\n          want fire %s next %s missed %s..%s",
					clock(d.Fire), clock(d.Next), clock(d.MissedFirst), clock(d.MissedLast),
					clock(c.fire), clock(c.next), clock(c.missed[0]), clock(c.missed[1]))
			}
			// Recording the decision and asking again at the same moment
			// fires nothing and reports nothing.
			again, err := Decide(e, c.hist.Record(d), c.now)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Fire.IsZero() || !again.MissedFirst.IsZero() || !again.Next.Equal(c.next) {
				t.Errorf("second Decide after Record = %+v", again)
			}
		})
	}
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05.000")
}

func TestDecideDisabledAndErrors(t *testing.T) {
	t.Parallel()
	e := hourly(t, RunOnce, time.Hour)
	e.Enabled = false
	d, err := Decide(e, History{Since: at("08:00:00"), Last: at("09:00:00")}, at("12:30:00"))
	if err != nil || d != (Decision{}) {
		t.Errorf("disabled: %+v, %v", d, err)
	}
	if _, err := Decide(hourly(t, Skip, 0), History{}, at("12:30:00")); !errors.Is(err, ErrNoSince) {
		t.Errorf("zero Since: %v", err)
	}
	bad := Entry{Name: "bad", Spec: "0 0 31 2 *", Enabled: true}
	if _, err := Decide(bad, History{Since: at("08:00:00")}, at("12:30:00")); !errors.Is(err, ErrNever) {
		t.Errorf("impossible spec: %v", err)
	}
}

func TestHistoryRecord(t *testing.T) {
	t.Parallel()
	h := History{Since: at("08:00:00"), Last: at("10:00:00"), Missed: at("09:00:00")}
	got := h.Record(Decision{Fire: at("12:00:00"), MissedFirst: at("11:00:00"), MissedLast: at("11:00:00")})
	if !got.Last.Equal(at("12:00:00")) || !got.Missed.Equal(at("11:00:00")) || !got.Since.Equal(h.Since) {
		t.Errorf("Record = %+v", got)
	}
	if same := got.Record(Decision{Next: at("13:00:00")}); same != got {
		t.Errorf("Record of an empty decision changed History: %+v", same)
	}
	// A stale decision never moves History back.
	if back := got.Record(Decision{Fire: at("10:00:00")}); !back.Last.Equal(at("12:00:00")) {
		t.Errorf("Record moved Last back: %+v", back)
	}
}

// TestDecideSimulation drives a scheduler loop for simulated weeks with an
// injected clock that sleeps late, goes down for hours, and jumps forwards
// and backwards, and checks the promise: every tick after Since is fired or
// reported missed exactly once, fires come in order and never repeat, and
// a fire is never later than the policy allows.
func TestDecideSimulation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line string
		down time.Duration // longest downtime or jump forward
	}{
		{"*/5 * * * *", 3 * time.Hour},
		{"0 * * * *", 12 * time.Hour},
		{"*/15 * * * * Australia/Sydney", 6 * time.Hour},
		{"30 2 * * * America/New_York", 50 * time.Hour},
		{"0 30 1 * * * America/New_York", 50 * time.Hour},
	}
	for i, c := range cases {
		line := c.line
		for _, policy := range []Policy{Skip, RunOnce} {
			t.Run(line+"/"+string(policy), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(len(policy))))
				e := mustEntry(t, line)
				e.Policy, e.CatchUpWindow = policy, 0
				if policy == RunOnce {
					e.CatchUpWindow = 40 * time.Minute
				}
				window := Grace
				if policy == RunOnce {
					window = e.CatchUpWindow
				}
				start := time.Date(2026, 2, 25, 0, 0, 0, 0, time.UTC) // spans the March DST changes
				h := History{Since: start}
				now := start
				fired := map[time.Time]bool{}
				missed := map[time.Time]bool{}
				var lastFire time.Time
				for range 600 {
					d, err := Decide(e, h, now)
					if err != nil {
						t.Fatal(err)
					}
					if !d.Fire.IsZero() {
						if !d.Fire.After(lastFire) {
							t.Fatalf("fired %s after %s", d.Fire, lastFire)
						}
						if late := now.Sub(d.Fire); late < 0 || late > window {
							t.Fatalf("fired %s at %s: %s late, policy allows %s", d.Fire, now, late, window)
						}
						fired[d.Fire.UTC()] = true
						lastFire = d.Fire
					}
					if !d.MissedFirst.IsZero() {
						for tk := d.MissedFirst; !tk.After(d.MissedLast); {
							if missed[tk.UTC()] || fired[tk.UTC()] {
								t.Fatalf("tick %s reported twice", tk)
							}
							missed[tk.UTC()] = true
							if tk, err = e.Next(tk); err != nil {
								t.Fatal(err)
							}
						}
					}
					if !d.Next.After(now) {
						t.Fatalf("Next %s is not after now %s", d.Next, now)
					}
					h = h.Record(d)
					// The clock: usually wake at Next, a little late; sometimes
					// much later (downtime), sometimes jump back.
					switch r := rng.IntN(100); {
					case r < 70:
						now = d.Next.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
					case r < 80:
						now = d.Next.Add(time.Duration(rng.IntN(120)) * time.Second)
					case r < 90:
						now = now.Add(time.Duration(rng.Int64N(int64(c.down)))) // down, or a jump forward
					case r < 95:
						now = now.Add(-time.Duration(rng.IntN(3*60)) * time.Minute) // jump back
					default:
						now = now.Add(time.Duration(rng.IntN(60)) * time.Second) // woken early
					}
				}
				// Coverage: below the high-water mark, every tick was fired
				// or reported missed, never both.
				high := h.floor()
				n := 0
				for tk, err := e.Next(start); !tk.After(high); tk, err = e.Next(tk) {
					if err != nil {
						t.Fatal(err)
					}
					f, m := fired[tk.UTC()], missed[tk.UTC()]
					if f == m {
						t.Fatalf("tick %s: fired %v, missed %v", tk, f, m)
					}
					n++
				}
				if n != len(fired)+len(missed) {
					t.Fatalf("%d ticks below %s, but %d fired and %d missed", n, high, len(fired), len(missed))
				}
				if len(fired) == 0 || len(missed) == 0 {
					t.Fatalf("the simulation exercised too little: %d fired, %d missed", len(fired), len(missed))
				}
			})
		}
	}
}
