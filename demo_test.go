package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// demoBound is the promise: within a minute of start the demo has
// every schedule entry active and feed captures and analyses done.
const demoBound = time.Minute

// TestDemoEndToEnd starts the real binary with --demo and checks, on the
// API's state, that within a minute every schedule entry is active and
// jobs of ProcessInstagramAccountContinuouslyJob, CaptureHomeFeedJob and
// AnalyzePostJob are done; then drives the accounts CLI against it.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
	s, err := launchServer(t, t.TempDir(), env, "--demo")
	if err != nil {
		t.Fatalf("%v\n%s", err, s.stderr.String())
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(deadline(t), demoBound)
	defer cancel()

	var cron struct {
		Entries []struct {
			Name, Status, Unavailable string
		} `json:"entries"`
	}
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/cron", nil, &cron); err != nil || code != 200 {
		t.Fatalf("cron: %d %v", code, err)
	}
	if len(cron.Entries) != 11 {
		t.Fatalf("%d schedule entries, want the default schedule's 11", len(cron.Entries))
	}
	for _, e := range cron.Entries {
		if e.Status != "active" {
			t.Errorf("entry %s is %s (%s)", e.Name, e.Status, e.Unavailable)
		}
	}

	// Each class with a done job; the pause between questions is not a
	// guess at how long the work takes: the bound is the minute.
	for _, class := range []string{"ProcessInstagramAccountContinuouslyJob", "CaptureHomeFeedJob", "AnalyzePostJob"} {
		for {
			var page struct {
				Jobs []struct{ ID uint64 } `json:"jobs"`
			}
			code, err := s.api(ctx, http.MethodGet, "/api/v1/jobs?state=done&size=1&class="+class, nil, &page)
			if err == nil && code == 200 && len(page.Jobs) > 0 {
				t.Logf("%s done %v after start", class, time.Since(started).Round(time.Millisecond))
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no %s done within %v (%d %v)\n%s", class, demoBound, code, err, s.stderr.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	// The accounts CLI against the demo: the sandbox's 25, then one more.
	getenv := func(k string) string {
		return map[string]string{"CONVEYOR_URL": "http://" + s.addr, "CONVEYOR_TOKEN": testToken}[k]
	}
	out, err := runCmd(t, getenv, "accounts", "list")
	if err != nil || strings.Count(out, "sandbox_") != 25 {
		t.Fatalf("accounts list: %v\n%s", err, out)
	}
	out, err = runCmd(t, getenv, "accounts", "add", "operator_added", "--switches", "avatar_sync,profile_scan")
	if err != nil || !strings.Contains(out, `"avatar_sync":true`) || !strings.Contains(out, `"follow_graph_sync":false`) {
		t.Fatalf("accounts add: %v\n%s", err, out)
	}
	if _, err := runCmd(t, getenv, "accounts", "add", "x", "--switches", "auto_dm"); err == nil {
		t.Error("an unknown switch was accepted")
	}
	out, err = runCmd(t, getenv, "accounts", "disable", "operator_added")
	if err != nil || !strings.Contains(out, `"enabled":false`) {
		t.Fatalf("accounts disable: %v\n%s", err, out)
	}
	out, _ = runCmd(t, getenv, "accounts", "list")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "operator_added" && f[2] != "-" {
			t.Errorf("the disabled account's row shows it enabled: %q", line)
		}
	}
	if err, _ := s.terminate(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, s.stderr.String())
	}
}

// TestServeWithoutDemo: without --demo there are no accounts and the
// account jobs have no connector; a bad catalog variable stops start-up
// naming it.
func TestServeWithoutDemo(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	var page struct {
		Accounts []any `json:"accounts"`
	}
	if code, err := s.api(deadline(t), http.MethodGet, "/api/v1/accounts", nil, &page); err != nil || code != 200 || len(page.Accounts) != 0 {
		t.Fatalf("accounts without the demo: %d %v %v", code, err, page.Accounts)
	}
	if !strings.Contains(s.stderr.String(), "no connector is configured") {
		t.Errorf("no warning about the missing connector:\n%s", s.stderr.String())
	}
	s.terminate()

	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken, "STORY_AUTO_REPLY_ACCOUNT_BATCH_SIZE=lots")
	bad, err := launchServer(t, t.TempDir(), env)
	if err == nil {
		t.Fatal("serve started with a bad batch size")
	}
	<-bad.exited
	if !strings.Contains(bad.stderr.String(), `STORY_AUTO_REPLY_ACCOUNT_BATCH_SIZE="lots"`) {
		t.Errorf("the error does not name the variable:\n%s", bad.stderr.String())
	}
}
