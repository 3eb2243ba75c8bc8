package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeclaredClassEndToEnd: a job class declared in the configuration
// file (a shell script) runs in the lanes, fails for real (captured as a
// transient failure), is retried through the failures API, and runs from
// the schedule; schedule check knows it and the catalog's args.
func TestDeclaredClassEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "ran-once")
	script := filepath.Join(dir, "job.sh")
	body := fmt.Sprintf(`#!/bin/sh
read args
if [ ! -f %q ]; then : > %q; echo "not ready yet" >&2; exit 75; fi
echo "done with $args"
`, state, state)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	sched := writeSchedule(t, dir, `
shell:
  cron: "0 4 * * *"
  class: ShellJob
  args: {report: nightly}
avatars_bad_args:
  cron: "45 4 * * *"
  class: EnqueueAvatarSyncForAllAccountsJob
  args: {cursor: "x"}
`)
	cfg := filepath.Join(dir, "conveyor.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
schedule: %s
job_classes:
  - name: ShellJob
    queue: maintenance
    timeout: 30s
    command: [/bin/sh, %s]
`, sched, script)), 0o600); err != nil {
		t.Fatal(err)
	}

	// schedule check: the declared class is known, the bad args are not.
	out, err := runCmd(t, mapEnv(), "schedule", "check", "--config", cfg, sched)
	if err == nil || !strings.Contains(out, "shell  enabled") || !strings.Contains(out, "avatars_bad_args  INVALID") ||
		!strings.Contains(out, "args.cursor") || strings.Contains(out, `"ShellJob" is not registered`) {
		t.Fatalf("schedule check: %v\n%s", err, out)
	}

	s := startServer(t, filepath.Join(dir, "data"), "--config", cfg)
	ctx := deadline(t)
	e := s.cronEntry(t, "shell")
	if e.Status != "active" {
		t.Fatalf("the declared class's entry is %s", e.Status)
	}
	if bad := s.cronEntry(t, "avatars_bad_args"); bad.Status != "unavailable" {
		t.Fatalf("an entry with bad args is %s", bad.Status)
	}
	id := s.enqueue(t, "ShellJob", "", map[string]int{"n": 7})
	s.waitJob(t, id, "retry")
	var fl struct {
		Data []struct {
			ID           int64  `json:"id"`
			Class        string `json:"class"`
			Kind         string `json:"kind"`
			ErrorMessage string `json:"error_message"`
		} `json:"data"`
	}
	for len(fl.Data) == 0 {
		if code, err := s.api(ctx, http.MethodGet, "/api/v1/failures", nil, &fl); err != nil || code != 200 {
			t.Fatalf("failures: %d %v", code, err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the failure was never captured")
		case <-time.After(20 * time.Millisecond):
		}
	}
	f := fl.Data[0]
	if f.Class != "ShellJob" || f.Kind != "transient" || !strings.Contains(f.ErrorMessage, "not ready yet") {
		t.Fatalf("failure %+v", f)
	}
	var rr struct {
		JobID uint64 `json:"job_id"`
	}
	if code, err := s.api(ctx, http.MethodPost, fmt.Sprintf("/api/v1/failures/%d/retry", f.ID), nil, &rr); err != nil || code != 200 {
		t.Fatalf("retry: %d %v", code, err)
	}
	s.waitJob(t, rr.JobID, "done")
	var run struct {
		ID uint64 `json:"id"`
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/cron/shell/enqueue", nil, &run); err != nil || code != 201 {
		t.Fatalf("enqueue now: %d %v", code, err)
	}
	s.waitJob(t, run.ID, "done")
	// A declared class's args are checked like any other's: free-form here.
	var bad struct{ Field string }
	if code, _ := s.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "ShellJob", "max_attempts": 0}, &bad); code != 422 {
		t.Errorf("max_attempts 0 for a declared class: %d", code)
	}
	s.terminate()
}

// TestJobsSettings: the catalog's keys in the configuration file, the
// environment over them, and the errors that name what is wrong.
func TestJobsSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conveyor.yml")
	if err := os.WriteFile(cfg, []byte(`
connector_url: http://127.0.0.1:9100/calls
connector_token: file-token
connector_timeout: 45s
job_classes:
  - {name: ReportJob, queue: maintenance, command: /usr/local/bin/report --fast}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := serveSettings([]string{"--config", cfg}, mapEnv(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	j := st.Jobs
	if j.Demo || j.ConnectorURL != "http://127.0.0.1:9100/calls" || j.ConnectorToken != "file-token" || j.ConnectorTimeout != 45*time.Second ||
		len(j.Declared) != 1 || j.Declared[0].Command[1] != "--fast" || j.Catalog.FeedSyncInterval != 2*time.Hour {
		t.Fatalf("settings %+v", j)
	}
	st, err = serveSettings([]string{"--config", cfg, "--demo"}, mapEnv("CONVEYOR_CONNECTOR_URL=https://env.example/c", "CONVEYOR_SANDBOX_ACCOUNTS=3"), io.Discard)
	if err != nil || !st.Jobs.Demo || st.Jobs.ConnectorURL != "https://env.example/c" || st.Jobs.Sandbox.Accounts != 3 || st.Jobs.Catalog.FeedSyncInterval != 2*time.Minute {
		t.Fatalf("env and --demo: %+v, %v", st.Jobs, err)
	}
	if st, err := serveSettings(nil, mapEnv("CONVEYOR_DEMO=1"), io.Discard); err != nil || !st.Jobs.Demo {
		t.Fatalf("CONVEYOR_DEMO=1: %+v, %v", st.Jobs, err)
	}
	for _, c := range []struct {
		file string
		env  []string
		want string
	}{
		{"connector_url: ftp://x\n", nil, "connector_url"},
		{"", []string{"CONVEYOR_CONNECTOR_URL=nope"}, "CONVEYOR_CONNECTOR_URL"},
		{"", []string{"CONVEYOR_DEMO=maybe"}, "CONVEYOR_DEMO"},
		{"", []string{"CONVEYOR_SANDBOX_FAULT_RATE=2"}, "CONVEYOR_SANDBOX_FAULT_RATE"},
		{"", []string{"FEED_SYNC_INTERVAL=often"}, "FEED_SYNC_INTERVAL"},
		{"job_classes:\n  - {name: A, command: x, retries: 3}\n", nil, "retries"},
		{"job_classes:\n  - {name: A}\n", nil, "job class A"},
	} {
		p := filepath.Join(t.TempDir(), "c.yml")
		os.WriteFile(p, []byte(c.file), 0o600)
		_, err := serveSettings([]string{"--config", p}, mapEnv(c.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want an error naming %s", c.file, c.env, err, c.want)
		}
	}
}
