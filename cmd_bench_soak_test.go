package main

import (
	"strings"
	"testing"
	"time"
)

// TestSoakJudge: the soak's verdicts hold a steady run and catch each way a run
// can drift (latency, memory, the file, a long commit).
func TestSoakJudge(t *testing.T) {
	t.Parallel()
	steady := func() []soakSample {
		var ss []soakSample
		for i := range 18 { // 3 minutes of 10 s windows
			ss = append(ss, soakSample{At: time.Duration(i+1) * soakWindow, P99Ms: 10, RSSMB: 50, LiveMB: 10, MaxCommitMs: 20})
		}
		return ss
	}
	for _, tc := range []struct {
		name   string
		change func([]soakSample)
		broken string // "" when every verdict must hold
	}{
		{"steady", func([]soakSample) {}, ""},
		{"latency drifts", func(ss []soakSample) { ss[15].P99Ms = 25 }, "p99"},
		{"memory grows", func(ss []soakSample) { ss[17].RSSMB = 90 }, "rss"},
		{"the file grows", func(ss []soakSample) { ss[17].LiveMB = 40 }, "live file"},
		{"a commit stalls", func(ss []soakSample) { ss[9].MaxCommitMs = 150 }, "commit"},
	} {
		ss := steady()
		tc.change(ss)
		r := &soakResult{Samples: ss}
		r.judge()
		if r.Held != (tc.broken == "") {
			t.Errorf("%s: held %v: %v", tc.name, r.Held, r.Verdicts)
		}
		for _, v := range r.Verdicts {
			if strings.HasPrefix(v, "NOT") && !strings.Contains(v, tc.broken) {
				t.Errorf("%s: verdict %q", tc.name, v)
			}
		}
	}
	short := &soakResult{Samples: steady()[:6]}
	short.judge()
	if short.Held || !strings.Contains(short.Verdicts[0], "too short") {
		t.Errorf("a one-minute run was judged: %v", short.Verdicts)
	}
}
