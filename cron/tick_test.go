package cron

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocore/gronx"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustEntry(t testing.TB, line string) Entry {
	t.Helper()
	s, zone, err := parseLine(line)
	if err != nil {
		t.Fatalf("parseLine(%q): %v", line, err)
	}
	return Entry{Name: "e", Line: line, Spec: s.spec, Zone: zone, Enabled: true, Policy: Skip, sched: s}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestGronxZoneBehaviour pins what gronx itself does with zones, which is
// why the package evaluates gronx on a zone-free wall clock instead: it
// skips a whole day for a wall time inside a spring-forward gap, and fires
// a repeated wall time at its first occurrence in New York but at its
// second in Sydney. If this test fails after a gronx upgrade, gronx changed;
// the package's own DST tests below are what must keep passing.
func TestGronxZoneBehaviour(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	syd := mustZone(t, "Australia/Sydney")
	cases := []struct {
		expr string
		from time.Time
		want string // UTC
	}{
		// Spring forward in New York, 2026-03-08 02:00 EST -> 03:00 EDT: the day is skipped.
		{"30 2 * * *", time.Date(2026, 3, 7, 12, 0, 0, 0, ny), "2026-03-09T06:30:00Z"},
		// Fall back in New York, 2026-11-01 02:00 EDT -> 01:00 EST: first occurrence.
		{"30 1 * * *", time.Date(2026, 11, 1, 0, 0, 0, 0, ny), "2026-11-01T05:30:00Z"},
		// Fall back in Sydney, 2026-04-05 03:00 AEDT -> 02:00 AEST: second occurrence.
		{"30 2 * * *", time.Date(2026, 4, 4, 12, 0, 0, 0, syd), "2026-04-04T16:30:00Z"},
	}
	for _, c := range cases {
		got, err := gronx.NextTickAfter(c.expr, c.from, false)
		if err != nil {
			t.Fatal(err)
		}
		if want := utc(c.want); !got.Equal(want) {
			t.Errorf("gronx %q after %s = %s, pinned %s", c.expr, c.from, got.UTC().Format(time.RFC3339), c.want)
		}
	}
}

// TestNextDST spells out the rules (see Entry.Next) on both transitions in
// a northern and a southern zone.
func TestNextDST(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, line, from string
		want             []string // UTC, with the local reading in comments
	}{
		// New York, spring forward 2026-03-08 02:00 EST (-5) -> 03:00 EDT (-4), at 07:00Z.
		{"ny spring daily in gap fires at gap end", "30 2 * * * America/New_York", "2026-03-07T00:00:00Z", []string{
			"2026-03-07T07:30:00Z", // 03-07 02:30 EST
			"2026-03-08T07:00:00Z", // 03-08 03:00 EDT: 02:30 does not exist
			"2026-03-09T06:30:00Z", // 03-09 02:30 EDT
		}},
		{"ny spring daily at gap end", "0 3 * * * America/New_York", "2026-03-07T12:00:00Z", []string{
			"2026-03-08T07:00:00Z", // 03:00 EDT, once
			"2026-03-09T07:00:00Z",
		}},
		{"ny spring hourly skips the missing hour", "0 * * * * America/New_York", "2026-03-08T05:30:00Z", []string{
			"2026-03-08T06:00:00Z", // 01:00 EST
			"2026-03-08T07:00:00Z", // 03:00 EDT, one real hour later
			"2026-03-08T08:00:00Z", // 04:00 EDT
		}},
		{"ny spring hourly at :30", "30 * * * * America/New_York", "2026-03-08T06:00:00Z", []string{
			"2026-03-08T06:30:00Z", // 01:30 EST
			"2026-03-08T07:30:00Z", // 03:30 EDT; 02:30 never happened
		}},
		{"ny spring every 15 minutes", "*/15 * * * * America/New_York", "2026-03-08T06:40:00Z", []string{
			"2026-03-08T06:45:00Z", // 01:45 EST
			"2026-03-08T07:00:00Z", // 03:00 EDT
			"2026-03-08T07:15:00Z", // 03:15 EDT
		}},
		{"ny spring seconds", "*/20 * * * * * America/New_York", "2026-03-08T06:59:30Z", []string{
			"2026-03-08T06:59:40Z", // 01:59:40 EST
			"2026-03-08T07:00:00Z", // 03:00:00 EDT
			"2026-03-08T07:00:20Z",
		}},
		{"ny spring fixed seconds in gap", "15 30 2 * * * America/New_York", "2026-03-08T00:00:00Z", []string{
			"2026-03-08T07:00:00Z", // 03:00:00 EDT for 02:30:15
			"2026-03-09T06:30:15Z",
		}},
		{"ny spring fixed hour every 15 minutes in gap fires once", "*/15 2 * * * America/New_York", "2026-03-08T06:00:00Z", []string{
			"2026-03-08T07:00:00Z", // all of 02:00-02:45 fold into 03:00 EDT
			"2026-03-09T06:00:00Z", // 03-09 02:00 EDT
		}},

		// New York, fall back 2026-11-01 02:00 EDT (-4) -> 01:00 EST (-5), at 06:00Z.
		{"ny fall daily in repeated hour fires once", "30 1 * * * America/New_York", "2026-10-31T12:00:00Z", []string{
			"2026-11-01T05:30:00Z", // 01:30 EDT, the first occurrence
			"2026-11-02T06:30:00Z", // 11-02 01:30 EST
		}},
		{"ny fall daily outside the repeated hour", "30 2 * * * America/New_York", "2026-10-31T12:00:00Z", []string{
			"2026-11-01T07:30:00Z", // 02:30 EST
			"2026-11-02T07:30:00Z",
		}},
		{"ny fall hourly fires both real hours", "0 * * * * America/New_York", "2026-11-01T04:30:00Z", []string{
			"2026-11-01T05:00:00Z", // 01:00 EDT
			"2026-11-01T06:00:00Z", // 01:00 EST
			"2026-11-01T07:00:00Z", // 02:00 EST
		}},
		{"ny fall every 15 minutes", "*/15 * * * * America/New_York", "2026-11-01T05:40:00Z", []string{
			"2026-11-01T05:45:00Z", // 01:45 EDT
			"2026-11-01T06:00:00Z", // 01:00 EST
			"2026-11-01T06:15:00Z", // 01:15 EST
		}},
		{"ny fall seconds", "*/20 * * * * * America/New_York", "2026-11-01T05:59:30Z", []string{
			"2026-11-01T05:59:40Z", // 01:59:40 EDT
			"2026-11-01T06:00:00Z", // 01:00:00 EST
			"2026-11-01T06:00:20Z",
		}},
		{"ny fall fixed seconds in repeated hour", "0 30 1 * * * America/New_York", "2026-11-01T05:00:00Z", []string{
			"2026-11-01T05:30:00Z", // 01:30:00 EDT
			"2026-11-02T06:30:00Z",
		}},
		{"ny fall fixed hour every 15 minutes fires the hour once", "*/15 1 * * * America/New_York", "2026-11-01T05:40:00Z", []string{
			"2026-11-01T05:45:00Z", // 01:45 EDT
			"2026-11-02T06:00:00Z", // not 01:00 EST: the hour already ran
		}},

		// Sydney, fall back 2026-04-05 03:00 AEDT (+11) -> 02:00 AEST (+10), at 04-04 16:00Z.
		{"sydney fall daily in repeated hour fires once", "30 2 * * * Australia/Sydney", "2026-04-04T00:00:00Z", []string{
			"2026-04-04T15:30:00Z", // 04-05 02:30 AEDT, the first occurrence
			"2026-04-05T16:30:00Z", // 04-06 02:30 AEST
		}},
		{"sydney fall hourly fires both real hours", "0 * * * * Australia/Sydney", "2026-04-04T14:30:00Z", []string{
			"2026-04-04T15:00:00Z", // 02:00 AEDT
			"2026-04-04T16:00:00Z", // 02:00 AEST
			"2026-04-04T17:00:00Z", // 03:00 AEST
		}},
		{"sydney fall every 15 minutes", "*/15 * * * * Australia/Sydney", "2026-04-04T15:40:00Z", []string{
			"2026-04-04T15:45:00Z", // 02:45 AEDT
			"2026-04-04T16:00:00Z", // 02:00 AEST
		}},
		{"sydney fall seconds", "*/30 * * * * * Australia/Sydney", "2026-04-04T15:59:45Z", []string{
			"2026-04-04T16:00:00Z", // 02:00:00 AEST
			"2026-04-04T16:00:30Z",
		}},
		// Sydney, spring forward 2026-10-04 02:00 AEST (+10) -> 03:00 AEDT (+11), at 10-03 16:00Z.
		{"sydney spring daily in gap fires at gap end", "30 2 * * * Australia/Sydney", "2026-10-02T12:00:00Z", []string{
			"2026-10-02T16:30:00Z", // 10-03 02:30 AEST
			"2026-10-03T16:00:00Z", // 10-04 03:00 AEDT
			"2026-10-04T15:30:00Z", // 10-05 02:30 AEDT
		}},
		{"sydney spring hourly", "0 * * * * Australia/Sydney", "2026-10-03T14:30:00Z", []string{
			"2026-10-03T15:00:00Z", // 01:00 AEST
			"2026-10-03T16:00:00Z", // 03:00 AEDT
		}},
		{"sydney spring every 15 minutes", "*/15 * * * * Australia/Sydney", "2026-10-03T15:50:00Z", []string{
			"2026-10-03T16:00:00Z", // 03:00 AEDT
			"2026-10-03T16:15:00Z",
		}},
		{"sydney spring seconds", "*/30 * * * * * Australia/Sydney", "2026-10-03T15:59:45Z", []string{
			"2026-10-03T16:00:00Z", // 03:00:00 AEDT
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := mustEntry(t, c.line)
			after := utc(c.from)
			for i, w := range c.want {
				got, err := e.Next(after)
				if err != nil {
					t.Fatalf("Next(%s): %v", after.Format(time.RFC3339), err)
				}
				if !got.Equal(utc(w)) {
					t.Fatalf("tick %d: Next(%s) = %s (%s), want %s", i, after.Format(time.RFC3339),
						got.UTC().Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				if got.Location() != e.Zone {
					t.Errorf("Next returned a time in %s, want the entry's zone %s", got.Location(), e.Zone)
				}
				// Prev undoes Next.
				if i > 0 {
					p, err := e.Prev(got)
					if err != nil {
						t.Fatal(err)
					}
					if !p.Equal(utc(c.want[i-1])) {
						t.Errorf("Prev(%s) = %s, want %s", w, p.UTC().Format(time.RFC3339), c.want[i-1])
					}
				}
				after = got
			}
		})
	}
}

// transitions returns the zone's offset changes in [from, to).
func transitions(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	t := from
	for {
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() || !end.Before(to) {
			return out
		}
		out = append(out, end)
		t = end
	}
}

// oracle lists an entry's ticks in [from, to] by brute force: it walks
// every candidate instant (step apart) and applies the documented rules
// directly, using gronx only to ask whether a wall time matches.
func oracle(s *schedule, loc *time.Location, from, to time.Time, step time.Duration) []time.Time {
	g := gronx.New()
	segs, err := gronx.Segments(s.expr)
	if err != nil {
		panic(err)
	}
	due := func(w time.Time) bool {
		g.C.SetRef(w)
		ok, err := g.SegmentsDue(segs)
		return err == nil && ok
	}
	wallAt := func(u time.Time) time.Time {
		_, off := u.In(loc).Zone()
		return wall(u, off)
	}
	var ticks []time.Time
	seen := make(map[int64]bool) // wall times already reached (fixed-hour rule)
	var prevU, prevWall time.Time
	for u := from; !u.After(to); u = u.Add(step) {
		w := wallAt(u)
		if s.wild {
			if due(w) {
				ticks = append(ticks, u)
			}
			continue
		}
		if !prevWall.IsZero() {
			// Wall times jumped over (a gap) fire at the first instant
			// after it: the offset change.
			gapTick := false
			for gw := prevWall.Add(step); gw.Before(w); gw = gw.Add(step) {
				if due(gw) && !seen[gw.Unix()] {
					gapTick = true
				}
				seen[gw.Unix()] = true
			}
			if gapTick {
				_, change := prevU.In(loc).ZoneBounds()
				ticks = append(ticks, change)
			}
		}
		if due(w) && !seen[w.Unix()] && (len(ticks) == 0 || !ticks[len(ticks)-1].Equal(u)) {
			ticks = append(ticks, u)
		}
		seen[w.Unix()] = true
		prevU, prevWall = u, w
	}
	return ticks
}

// TestNextPrevMatchOracle checks Next and Prev against the brute-force
// oracle around every offset change of 2026 in a northern zone, a southern
// zone and Lord Howe Island (whose clocks move by 30 minutes).
func TestNextPrevMatchOracle(t *testing.T) {
	t.Parallel()
	// margin: how far around each offset change Next and Prev are sampled;
	// pad: oracle window beyond that, at least the longest gap between ticks.
	specs := []struct {
		line        string
		margin, pad time.Duration
		step, phase time.Duration // oracle resolution, and the second it samples
	}{
		{"30 2 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"30 1 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"0 2 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"0 3 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"59 1 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"0 1,2,3 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"0 1-3/2 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"*/15 1 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"*/15 2 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 0},
		{"10 30 2 * * *", 4 * time.Hour, 25 * time.Hour, time.Minute, 10 * time.Second},
		{"0 * * * *", 3 * time.Hour, 2 * time.Hour, time.Minute, 0},
		{"30 * * * *", 3 * time.Hour, 2 * time.Hour, time.Minute, 0},
		{"*/15 * * * *", 2 * time.Hour, time.Hour, time.Minute, 0},
		{"*/7 * * * *", 2 * time.Hour, time.Hour, time.Minute, 0},
		{"0 */2 * * *", 3 * time.Hour, 3 * time.Hour, time.Minute, 0},
		{"*/20 * * * * *", 20 * time.Minute, 2 * time.Minute, time.Second, 0},
	}
	zones := []string{"America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Europe/Berlin"}
	for _, z := range zones {
		loc := mustZone(t, z)
		for _, sp := range specs {
			t.Run(z+"/"+strings.ReplaceAll(sp.line, " ", "_"), func(t *testing.T) {
				t.Parallel()
				e := mustEntry(t, sp.line+" "+z)
				year := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				for _, tr := range transitions(loc, year, year.AddDate(1, 0, 0)) {
					checkOracle(t, e, tr, sp.margin, sp.pad, sp.step, sp.phase)
				}
			})
		}
	}
}

func checkOracle(t *testing.T, e Entry, tr time.Time, margin, pad, step, phase time.Duration) {
	t.Helper()
	from := tr.Add(-margin - pad).Truncate(time.Hour).Add(phase)
	to := tr.Add(margin + pad)
	ticks := oracle(e.sched, e.Zone, from, to, step)
	if len(ticks) < 2 {
		t.Fatalf("oracle found %d ticks around %s", len(ticks), tr)
	}
	// Sample instants: a regular grid, and the ticks near the change and
	// their neighbours.
	var samples []time.Time
	for s := tr.Add(-margin); s.Before(tr.Add(margin)); s = s.Add(margin/40 + 13*time.Second) {
		samples = append(samples, s)
	}
	for _, tk := range ticks {
		if tk.After(tr.Add(-margin/4)) && tk.Before(tr.Add(margin/4)) {
			samples = append(samples, tk, tk.Add(-time.Nanosecond), tk.Add(time.Nanosecond), tk.Add(-time.Second), tk.Add(time.Second))
		}
	}
	for _, s := range samples {
		wantNext, wantPrev := time.Time{}, time.Time{}
		for _, tk := range ticks {
			if tk.After(s) {
				wantNext = tk
				break
			}
			if tk.Before(s) {
				wantPrev = tk
			}
		}
		got, err := e.Next(s)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(wantNext) {
			t.Fatalf("Next(%s) = %s, oracle %s", show(s, e.Zone), show(got, e.Zone), show(wantNext, e.Zone))
		}
		gotPrev, err := e.Prev(s)
		if err != nil {
			t.Fatal(err)
		}
		if !gotPrev.Equal(wantPrev) {
			t.Fatalf("Prev(%s) = %s, oracle %s", show(s, e.Zone), show(gotPrev, e.Zone), show(wantPrev, e.Zone))
		}
	}
}

func show(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format("2006-01-02T15:04:05.999999999Z"), t.In(loc).Format("15:04:05 MST"))
}

func TestNextUTCAndFixedZones(t *testing.T) {
	t.Parallel()
	cases := []struct{ line, after, want string }{
		{"*/5 * * * *", "2026-01-01T10:02:59Z", "2026-01-01T10:05:00Z"},
		{"*/5 * * * *", "2026-01-01T10:05:00Z", "2026-01-01T10:10:00Z"}, // strictly after
		{"0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"0 0 29 2 *", "2097-03-01T00:00:00Z", "2104-02-29T00:00:00Z"}, // 2100 is not a leap year
		{"0 0 L * *", "2026-02-10T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"0 0 * * 5L", "2026-01-01T00:00:00Z", "2026-01-30T00:00:00Z"},
		{"0 0 * * MON#2", "2026-01-01T00:00:00Z", "2026-01-12T00:00:00Z"},
		{"0 0 15W * *", "2026-02-01T00:00:00Z", "2026-02-16T00:00:00Z"}, // the 15th is a Sunday
		{"@daily", "2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z"},
		{"@hourly Asia/Kolkata", "2026-01-01T10:00:00Z", "2026-01-01T10:30:00Z"}, // +05:30
		{"0 9 * * 1-5 America/Chicago", "2026-01-02T16:00:00Z", "2026-01-05T15:00:00Z"},
		{"0 22 * * 1-5 America/Chicago", "2026-07-01T00:00:00Z", "2026-07-01T03:00:00Z"},
		{"0 0 * * * Etc/GMT+5", "2026-01-01T04:00:00Z", "2026-01-01T05:00:00Z"},
	}
	for _, c := range cases {
		e := mustEntry(t, c.line)
		got, err := e.Next(utc(c.after))
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		if !got.Equal(utc(c.want)) {
			t.Errorf("%q: Next(%s) = %s, want %s", c.line, c.after, got.UTC().Format(time.RFC3339), c.want)
		}
		p, err := e.Prev(got)
		if err != nil {
			t.Fatalf("%q: Prev: %v", c.line, err)
		}
		if !p.Before(got) || !p.Before(utc(c.after).Add(time.Nanosecond)) {
			t.Errorf("%q: Prev(%s) = %s, want before %s", c.line, c.want, p.UTC().Format(time.RFC3339), c.after)
		}
	}
}

func TestNextFractionalSeconds(t *testing.T) {
	t.Parallel()
	e := mustEntry(t, "* * * * * *")
	after := utc("2026-01-01T10:00:00Z").Add(400 * time.Millisecond)
	got, err := e.Next(after)
	if err != nil {
		t.Fatal(err)
	}
	if want := utc("2026-01-01T10:00:01Z"); !got.Equal(want) {
		t.Errorf("Next(10:00:00.4) = %s, want %s", got, want)
	}
	p, err := e.Prev(after)
	if err != nil {
		t.Fatal(err)
	}
	if want := utc("2026-01-01T10:00:00Z"); !p.Equal(want) {
		t.Errorf("Prev(10:00:00.4) = %s, want %s", p, want)
	}
}

func TestNextN(t *testing.T) {
	t.Parallel()
	e := mustEntry(t, "0 */6 * * *")
	got := e.NextN(utc("2026-01-01T01:00:00Z"), 3)
	want := []string{"2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z", "2026-01-01T18:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("NextN = %v", got)
	}
	for i := range want {
		if !got[i].Equal(utc(want[i])) {
			t.Errorf("NextN[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if n := e.NextN(utc("2026-01-01T01:00:00Z"), 0); len(n) != 0 {
		t.Errorf("NextN(0) = %v", n)
	}
}

func TestHandBuiltEntry(t *testing.T) {
	t.Parallel()
	e := Entry{Name: "x", Spec: "0 3 * * *", Zone: mustZone(t, "Europe/Berlin")}
	got, err := e.Next(utc("2026-01-01T00:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if want := utc("2026-01-01T02:00:00Z"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	if _, err := (Entry{Name: "y", Spec: "0 3 * * * Europe/Berlin"}).Next(time.Now()); err == nil {
		t.Error("a Spec carrying a zone was accepted")
	}
	if _, err := (Entry{Name: "z", Spec: "0 0 31 2 *"}).Next(time.Now()); !errors.Is(err, ErrNever) {
		t.Errorf("impossible hand-built spec: err = %v, want ErrNever", err)
	}
}

func TestTickKey(t *testing.T) {
	t.Parallel()
	e := Entry{Name: "nightly"}
	tick := time.Date(2026, 3, 8, 3, 0, 0, 0, mustZone(t, "America/New_York"))
	if got, want := TickKey(e, tick), "cron:nightly:1772953200"; got != want {
		t.Errorf("TickKey = %q, want %q", got, want)
	}
	if TickKey(e, tick) != TickKey(e, tick.UTC()) {
		t.Error("TickKey depends on the zone of the tick")
	}
}
