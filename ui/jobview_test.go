package ui

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"conveyor/queue"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// t0 is the fixed clock of the golden files.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// goldenJobs are job values built directly, one per shape the dashboard shows.
var goldenJobs = []struct {
	name string
	job  queue.Job
	lane string
	now  time.Time
}{
	{"ready", queue.Job{ID: 1, Class: "NoopJob", Queue: "default", State: queue.StateReady, MaxAttempts: 25,
		RunAt: t0, CreatedAt: t0}, "default", at(3200 * time.Millisecond)},
	{"scheduled", queue.Job{ID: 2, Class: "CaptureHomeFeedJob", Queue: "sync", State: queue.StateScheduled, MaxAttempts: 25,
		Args:  json.RawMessage(`{"account_id":42,"note":"<script>alert('x')</script> & more"}`),
		RunAt: at(5 * time.Minute), CreatedAt: t0, UniqueKey: "feed:42", UniqueUntil: at(time.Hour),
		Context: map[string]string{queue.CtxAccountID: "42", "source": "<b>cron</b>"}}, "default", at(time.Second)},
	{"running", queue.Job{ID: 3, Class: "SleepJob", Queue: "default", State: queue.StateRunning, Attempt: 1, MaxAttempts: 25,
		Args: json.RawMessage(`{"ms":60000}`), RunAt: t0, CreatedAt: t0, StartedAt: at(time.Second),
		LeaseUntil: at(31 * time.Minute)}, "default", at(3500 * time.Millisecond)},
	{"retry", queue.Job{ID: 4, Class: "ProfileRefreshJob", Queue: "profiles", State: queue.StateRetry, Attempt: 1, MaxAttempts: 25,
		RunAt: at(1340*time.Millisecond + 16*time.Second), CreatedAt: t0, StartedAt: at(time.Second),
		Errors: []queue.AttemptError{{Attempt: 1, Class: "bridge.StatusError", Message: "503 from bridge", At: at(1340 * time.Millisecond)}}},
		"default", at(2 * time.Second)},
	{"done_after_retry", queue.Job{ID: 5, Class: "ProfileRefreshJob", Queue: "profiles", State: queue.StateDone, Attempt: 2, MaxAttempts: 25,
		RunAt: at(1340*time.Millisecond + 16*time.Second), CreatedAt: t0,
		StartedAt: at(1340*time.Millisecond + 16*time.Second + 5*time.Millisecond), FinishedAt: at(1340*time.Millisecond + 16*time.Second + 125*time.Millisecond),
		Errors: []queue.AttemptError{{Attempt: 1, Class: "bridge.StatusError", Message: "503 from bridge", At: at(1340 * time.Millisecond)}}},
		"default", at(time.Hour)},
	{"dead_out_of_attempts", queue.Job{ID: 6, Class: "AvatarDownloadJob", Queue: "avatars", State: queue.StateDead, Attempt: 3, MaxAttempts: 3,
		RunAt: at(2 * time.Minute), CreatedAt: t0, StartedAt: at(2*time.Minute + time.Second), FinishedAt: at(2*time.Minute + 2*time.Second),
		Errors: []queue.AttemptError{
			{Attempt: 1, Class: "Panic", Message: "runtime error: index out of range [3] with length 3", Backtrace: "goroutine 7 [running]:\nmain.handler()\n\t/app/jobs/avatar.go:42", At: at(2 * time.Second)},
			{Attempt: 2, Class: "Timeout", Message: "timed out after 30s: context deadline exceeded", At: at(time.Minute)},
			{Attempt: 3, Class: "Error", Message: "404 <not found>", At: at(2*time.Minute + 2*time.Second)},
		}}, "default", at(time.Hour)},
	{"dead_orphaned", queue.Job{ID: 7, Class: "VideoFrameJob", Queue: "frame_generation", State: queue.StateDead, Attempt: 3, MaxAttempts: 25,
		RunAt: t0, CreatedAt: t0, StartedAt: at(20 * time.Second), FinishedAt: at(30 * time.Second), Orphans: 3,
		Errors: []queue.AttemptError{
			{Attempt: 1, Class: "Orphaned", Message: "orphaned by a crash", At: at(10 * time.Second)},
			{Attempt: 2, Class: "Orphaned", Message: "orphaned by a crash", At: at(20 * time.Second)},
			{Attempt: 3, Class: "Orphaned", Message: "crashed the worker 3 times", At: at(30 * time.Second)},
		}}, "frame_generation", at(time.Hour)},
	{"dead_not_retryable", queue.Job{ID: 8, Class: "FailJob", Queue: "default", State: queue.StateDead, Attempt: 1, MaxAttempts: 25,
		Args: json.RawMessage(`{"kind":"authentication"}`), RunAt: t0, CreatedAt: t0, StartedAt: at(time.Millisecond), FinishedAt: at(3 * time.Millisecond),
		Errors: []queue.AttemptError{{Attempt: 1, Class: "Error", Message: "session expired", At: at(3 * time.Millisecond)}}}, "default", at(time.Hour)},
	{"unserved_queue", queue.Job{ID: 9, Class: "OldJob", Queue: "retired", State: queue.StateReady, MaxAttempts: 25,
		Args: json.RawMessage(`[1,"two",null]`), RunAt: at(3 * 24 * time.Hour), CreatedAt: t0}, "", at(3*24*time.Hour + 4*time.Hour + 5*time.Minute)},
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
	}
}

func TestJobViewGolden(t *testing.T) {
	t.Parallel()
	for _, c := range goldenJobs {
		t.Run(c.name, func(t *testing.T) {
			j := c.job
			v := jobView(&j, c.lane, c.now)
			golden(t, "job_"+c.name, v)
			if again := jobView(&j, c.lane, c.now); !jsonEqual(t, v, again) {
				t.Error("jobView is not deterministic")
			}
			if bytes.Contains(mustJSON(t, v), []byte("<")) {
				t.Error("the view's JSON holds an unescaped <")
			}
		})
	}
	j := goldenJobs[5].job
	golden(t, "list_item", listView(&j, goldenJobs[5].lane, goldenJobs[5].now))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(t *testing.T, a, b any) bool { return bytes.Equal(mustJSON(t, a), mustJSON(t, b)) }

func TestHuman(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0 ms"},
		{0, "0 ms"},
		{340 * time.Millisecond, "340 ms"},
		{time.Second, "1 s"},
		{2500 * time.Millisecond, "2.5 s"},
		{9999 * time.Millisecond, "9.9 s"},
		{16 * time.Second, "16 s"},
		{5 * time.Minute, "5 min"},
		{5*time.Minute + 3*time.Second, "5 min 3 s"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2 h 5 min"},
		{3*24*time.Hour + 4*time.Hour, "3 d 4 h"},
	} {
		if got := human(c.d); got != c.want {
			t.Errorf("human(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestStampRoundTrip(t *testing.T) {
	t.Parallel()
	in := stamp(time.Date(2026, 5, 1, 14, 0, 0, 123456789, time.FixedZone("CEST", 2*3600)))
	b := mustJSON(t, in)
	if string(b) != `"2026-05-01T12:00:00.123Z"` {
		t.Errorf("stamp %s", b)
	}
	var out stamp
	if err := json.Unmarshal(b, &out); err != nil || !time.Time(out).Equal(time.Date(2026, 5, 1, 12, 0, 0, 123e6, time.UTC)) {
		t.Errorf("round trip %v %v", time.Time(out), err)
	}
	if b := mustJSON(t, stamp{}); string(b) != "null" {
		t.Errorf("zero stamp %s", b)
	}
}
