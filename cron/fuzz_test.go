package cron

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzRefs are the instants the fuzz targets compute ticks from: ordinary
// days, both New York and Sydney offset changes, a leap day, and 2100 (not
// a leap year).
var fuzzRefs = []time.Time{
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2026, 3, 8, 6, 59, 59, 500_000_000, time.UTC),
	time.Date(2026, 4, 4, 15, 30, 0, 0, time.UTC),
	time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),
	time.Date(2028, 2, 29, 23, 59, 59, 0, time.UTC),
	time.Date(2100, 2, 27, 12, 0, 0, 0, time.UTC),
}

// checkTicks asserts that Next and Prev work and agree with each other.
func checkWorkingNext(t *testing.T, e Entry) {
	t.Helper()
	for _, ref := range fuzzRefs {
		n, err := e.Next(ref)
		if err != nil {
			t.Fatalf("%q parsed but Next(%s) failed: %v", e.Line, ref, err)
		}
		if !n.After(ref) {
			t.Fatalf("%q: Next(%s) = %s, not after", e.Line, ref, n)
		}
		if n.Location() != e.location() {
			t.Fatalf("%q: Next returned a time in %s", e.Line, n.Location())
		}
		p, err := e.Prev(n)
		if err != nil {
			t.Fatalf("%q: Prev(%s) failed: %v", e.Line, n, err)
		}
		if p.After(ref) {
			t.Fatalf("%q: Prev(Next(%s)) = %s, after the reference: Next skipped a tick", e.Line, ref, p)
		}
		if again, err := e.Next(p); err != nil || !again.Equal(n) {
			t.Fatalf("%q: Next(Prev(%s)) = %s, %v", e.Line, n, again, err)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"*/5 * * * *", "0 22 * * 1-5 America/Chicago", "*/30 * * * * *", "0 0 9 * * MON-FRI Europe/Berlin",
		"@daily", "@hourly Asia/Kolkata", "0 0 L * *", "0 0 15W * *", "0 0 * * 5L", "0 0 * * FRI#3",
		"0 0 ? * 7", "5-10/2 1,3 */2 1-31/10 * *", "0 0 29 2 *", "0 0 31 2 *", "every 3 hours",
		"30 2 * * * America/New_York", "30 1 * * * Australia/Sydney", "0 0 * * * Etc/GMT+5",
		"0 0 31 * 1", "0 0 1 1 * 2030", "0 0 29 2 1#5", "0 0 30 */11 *", "0 0 1-31/31 2 *",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, zone, err := parseLine(line)
		if err != nil {
			return
		}
		checkWorkingNext(t, Entry{Name: "fuzz", Line: line, Spec: s.spec, Zone: zone, sched: s})
		// The spec alone parses to the same schedule.
		s2, zone2, err := parseLine(s.spec)
		if err != nil || zone2 != time.UTC || s2.expr != s.expr || s2.wild != s.wild {
			t.Fatalf("spec %q of %q does not parse back: %v", s.spec, line, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultSchedule())
	if b, err := os.ReadFile(filepath.Join("testdata", "check.yml")); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"job:\n  cron: '* * * * *'\n  class: A\n",
		"- name: a\n  cron: '0 3 * * * Europe/Berlin'\n  class: A\n  args: {x: [1, 2]}\n  missed: run_once\n  catch_up_window: 2h\n",
		"base: &b\n  cron: '*/5 * * * *'\n  class: A\nderived:\n  <<: *b\n  class: B\n  args: [*b]\n",
		"job:\n  cron: every 3 hours\n  class: A\n  queu: x\n",
		"a: [\n", "", "~", "[1, 2]", "job: {cron: '0 0 31 2 *', class: A}\n",
		"job:\n  cron: '* * * * *'\n  class: A\n  retry: false\n  date_as_argument: true\n  active_job: true\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		entries, err := Parse(bytes.NewReader(src))
		ok := Check(bytes.NewReader(src), Known{}, fuzzRefs[0], io.Discard)
		if ok != (err == nil) {
			t.Fatalf("Check = %v but Parse error = %v", ok, err)
		}
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, e := range entries {
			if e.Name == "" || names[e.Name] || e.Class == "" || e.sched == nil {
				t.Fatalf("bad entry from Parse: %+v", e)
			}
			names[e.Name] = true
			if e.Args != nil && !json.Valid(e.Args) {
				t.Fatalf("entry %q: args are not JSON: %s", e.Name, e.Args)
			}
			if _, err := e.ArgsAt(fuzzRefs[0]); err != nil {
				t.Fatalf("entry %q: ArgsAt: %v", e.Name, err)
			}
			if _, err := Decide(e, History{Since: fuzzRefs[0]}, fuzzRefs[1]); err != nil {
				t.Fatalf("entry %q: Decide: %v", e.Name, err)
			}
			checkWorkingNext(t, e)
		}
	})
}
