package cron

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

var benchNow = time.Date(2026, 5, 4, 12, 0, 30, 0, time.UTC)

// BenchmarkNext is the cost of one Next call for typical entries.
func BenchmarkNext(b *testing.B) {
	for _, line := range []string{
		"*/5 * * * *",
		"0 * * * *",
		"30 2 * * * America/New_York",
		"*/15 * * * * Australia/Sydney",
		"0 9 * * MON-FRI Europe/Berlin",
		"*/30 * * * * *",
	} {
		e := mustEntry(b, line)
		b.Run(line, func(b *testing.B) {
			for b.Loop() {
				if _, err := e.Next(benchNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchEntries builds n entries of assorted shapes and zones.
func benchEntries(b *testing.B, n int) []Entry {
	b.Helper()
	shapes := []string{"*/5 * * * *", "%d * * * *", "%d 3 * * *", "*/15 * * * *", "%d 9 * * 1-5", "0 */2 * * *", "%d 4 1 * *"}
	zones := []string{"", " America/New_York", " Europe/Berlin", " Australia/Sydney", " Asia/Tokyo"}
	out := make([]Entry, n)
	for i := range out {
		line := shapes[i%len(shapes)]
		if bytes.Contains([]byte(line), []byte("%d")) {
			line = fmt.Sprintf(line, i%60)
		}
		out[i] = mustEntry(b, line+zones[i%len(zones)])
		out[i].Name = fmt.Sprintf("entry-%d", i)
	}
	return out
}

// BenchmarkNext1000 is the scheduler's cost per wake-up if it recomputed
// the next tick of every one of 1,000 entries (it need only recompute the
// entries that fired).
func BenchmarkNext1000(b *testing.B) {
	entries := benchEntries(b, 1000)
	for b.Loop() {
		for i := range entries {
			if _, err := entries[i].Next(benchNow); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecide1000 is the same for the full decision (Prev, Next, and
// the missed-tick bookkeeping) after an hour of downtime.
func BenchmarkDecide1000(b *testing.B) {
	entries := benchEntries(b, 1000)
	h := History{Since: benchNow.Add(-48 * time.Hour), Last: benchNow.Add(-time.Hour)}
	for b.Loop() {
		for i := range entries {
			if _, err := Decide(entries[i], h, benchNow); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkParseDefault is the cost of loading the default schedule.
func BenchmarkParseDefault(b *testing.B) {
	src := DefaultSchedule()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(src)); err != nil {
			b.Fatal(err)
		}
	}
}
