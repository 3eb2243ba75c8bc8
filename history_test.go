package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The crash tests' history is the exec log the server writes ("start <id>
// <attempt>", "end <id> <attempt> ok|error", fsynced before the job goes on),
// with lines the test appends itself: "kill" after each SIGKILL (the server is
// dead then, so every line before it was written before the kill), "stop"
// after a graceful stop (SIGTERM, the server has exited), and "done <id>" when
// the API has shown the job done.
type historyReport struct {
	lost          []uint64 // acknowledged, never completed
	afterDone     []string // a start after the job was seen done
	unexplained   []string // a second start with no crash in between, not right after one, or after a graceful stop
	duplicates    int      // starts beyond the first, each explained by a crash
	inflightTotal int      // jobs in flight summed over the kills
	overKill      []string // kills after which more jobs re-ran than were in flight
	badLines      []string
}

func (r historyReport) ok() bool {
	return len(r.lost) == 0 && len(r.afterDone) == 0 && len(r.unexplained) == 0 && len(r.overKill) == 0 &&
		len(r.badLines) == 0
}

func (r historyReport) String() string {
	return fmt.Sprintf("lost %v; ran after done %v; unexplained re-runs %v; kills with too many re-runs %v; bad lines %v; duplicates %d (jobs in flight at kills: %d)",
		r.lost, r.afterDone, r.unexplained, r.overKill, r.badLines, r.duplicates, r.inflightTotal)
}

// checkHistory checks that every acknowledged job completed at least once, that
// no job started again after it was seen done, and that every re-run is
// explained by a crash: the job's previous start was in an earlier process
// that was killed (not stopped gracefully), and at most as many jobs of a
// killed process ran again as were in flight in it when it died.
func checkHistory(lines []string, acked []uint64) historyReport {
	var r historyReport
	epoch := 0
	graceful := map[int]bool{}     // epochs that ended with a graceful stop
	lastStart := map[uint64]int{}  // epoch of the latest start
	completed := map[uint64]bool{} // an attempt ended ok
	failed := map[uint64]bool{}    // the latest attempt ended with an error: a retry may follow
	seenDone := map[uint64]bool{}
	inflight := map[int]int{} // epoch → jobs started in it and not seen done when it was killed
	reruns := map[int]int{}   // epoch → re-runs in it
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var id uint64
		if f[0] != "kill" && f[0] != "stop" {
			if len(f) < 2 {
				r.badLines = append(r.badLines, line)
				continue
			}
			var err error
			if id, err = strconv.ParseUint(f[1], 10, 64); err != nil {
				r.badLines = append(r.badLines, line)
				continue
			}
		}
		switch f[0] {
		case "start":
			if seenDone[id] {
				r.afterDone = append(r.afterDone, fmt.Sprintf("job %d (epoch %d)", id, epoch))
			}
			if prev, started := lastStart[id]; started && failed[id] {
				failed[id] = false // a retry after a failed attempt
			} else if started {
				switch {
				case prev == epoch:
					r.unexplained = append(r.unexplained, fmt.Sprintf("job %d started twice in epoch %d", id, epoch))
				case graceful[prev]:
					r.unexplained = append(r.unexplained, fmt.Sprintf("job %d ran again after the graceful stop that ended epoch %d", id, prev))
				default:
					// Its attempt in epoch prev was cut by the kill that ended it
					// (or its ack was). It may run again in any later process: a
					// job struck by a crash runs alone, and a quick kill can come
					// before its turn.
					r.duplicates++
					reruns[prev]++
				}
			}
			lastStart[id] = epoch
		case "end":
			if len(f) >= 4 && f[3] == "ok" {
				completed[id] = true
			} else {
				failed[id] = true
			}
		case "done":
			seenDone[id] = true
		case "stop":
			graceful[epoch] = true
			epoch++
		case "kill":
			n := 0
			for id, e := range lastStart {
				if e == epoch && !seenDone[id] {
					n++
				}
			}
			inflight[epoch] = n
			r.inflightTotal += n
			epoch++
		default:
			r.badLines = append(r.badLines, line)
		}
	}
	for e, n := range reruns {
		if n > inflight[e] {
			r.overKill = append(r.overKill, fmt.Sprintf("epoch %d: %d of its jobs ran again, %d were in flight at its kill", e, n, inflight[e]))
		}
	}
	for _, id := range acked {
		if !completed[id] {
			r.lost = append(r.lost, id)
		}
	}
	slices.Sort(r.lost)
	return r
}

func TestCheckHistoryCatchesLossAndReruns(t *testing.T) {
	t.Parallel()
	good := []string{
		"start 1 1", "end 1 1 ok", "done 1",
		"start 2 1",               // running at the kill
		"start 3 1", "end 3 1 ok", // finished, ack maybe not durable
		"kill",
		"start 2 2", "end 2 2 ok",
		"start 3 2", "end 3 2 ok",
		"start 4 1", "end 4 1 error", "start 4 2", "end 4 2 ok",
		"start 5 1", "end 5 1 error", // cancelled by the stop: released
		"stop",
		"start 5 2", "end 5 2 ok",
		"start 6 1",    // struck by the next kill: it runs alone, and the kill after
		"kill", "kill", // comes before its turn
		"start 6 2", "end 6 2 ok",
	}
	if r := checkHistory(good, []uint64{1, 2, 3, 5, 6}); !r.ok() || r.duplicates != 3 || r.inflightTotal != 4 {
		t.Fatalf("a correct history was flagged: %v", r)
	}
	cases := []struct {
		name  string
		lines []string
		acked []uint64
		check func(historyReport) bool
	}{
		{"lost job", []string{"start 1 1", "end 1 1 ok", "start 2 1", "kill"}, []uint64{1, 2, 5},
			func(r historyReport) bool { return slices.Equal(r.lost, []uint64{2, 5}) }},
		{"re-run after done", []string{"start 1 1", "end 1 1 ok", "done 1", "kill", "start 1 2", "end 1 2 ok"}, []uint64{1},
			func(r historyReport) bool { return len(r.afterDone) == 1 }},
		{"re-run without a crash", []string{"start 1 1", "end 1 1 ok", "start 1 2", "end 1 2 ok"}, []uint64{1},
			func(r historyReport) bool { return len(r.unexplained) == 1 }},
		{"re-run after a graceful stop", []string{"start 1 1", "end 1 1 ok", "stop", "start 1 2", "end 1 2 ok"}, []uint64{1},
			func(r historyReport) bool { return len(r.unexplained) == 1 }},
		{"garbage", []string{"start x", "bogus 1"}, nil,
			func(r historyReport) bool { return len(r.badLines) == 2 }},
	}
	for _, tc := range cases {
		r := checkHistory(tc.lines, tc.acked)
		if r.ok() || !tc.check(r) {
			t.Errorf("%s: not caught: %v", tc.name, r)
		}
	}
}
