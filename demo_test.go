package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"conveyor/lanes"
)

// demoBound is the promise: within a minute of start the demo has
// every schedule entry active and jobs flowing through every lane.
const demoBound = time.Minute

// TestDemoEndToEnd starts the real binary with --demo and checks, on the
// API's state, that within a minute every schedule entry is active, every
// lane of the topology has finished at least one job (the AI capsules
// through the post-analysis pipeline), and jobs of the continuous feed
// capture, the analyses and every per-account class the fan-outs enqueue
// at start are done; then drives the accounts CLI against it.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	s, started, ctx, changed, stopEvents := startDemo(t)

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

	// Every lane with a done job, and every class with one; the state is
	// asked again at each jobs_changed event, until the minute is up.
	classes := []string{"ProcessInstagramAccountContinuouslyJob", "CaptureHomeFeedJob", "AnalyzePostJob",
		"StoryAutoReplyJob", "FeedAutoEngagementJob", "RecentProfilePostScanJob", "SyncFollowGraphJob", "SyncAvatarJob",
		"RefreshProfilesJob"}
	var missing []string
	for {
		missing = missing[:0]
		lanes, err := s.lanesWithoutDone(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lanes {
			missing = append(missing, "lane "+l)
		}
		for _, class := range classes {
			var page struct {
				Jobs []struct{ ID uint64 } `json:"jobs"`
			}
			code, err := s.api(ctx, http.MethodGet, "/api/v1/jobs?state=done&size=1&class="+class, nil, &page)
			if err != nil || code != 200 {
				t.Fatalf("jobs of %s: %d %v", class, code, err)
			}
			if len(page.Jobs) == 0 {
				missing = append(missing, class)
			}
		}
		if len(missing) == 0 {
			t.Logf("every lane and class has a done job %v after start", time.Since(started).Round(time.Millisecond))
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("within %v nothing done for: %s\n%s", demoBound, strings.Join(missing, ", "), s.stderr.String())
		}
	}
	stopEvents()

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

// startDemo starts the real binary with --demo and returns it, when it
// served, a context that ends demoBound later, and the jobs_changed
// signals of s.jobEvents until stopEvents: the stream must end before the
// test stops the server, whose graceful shutdown an open stream holds up.
func startDemo(t *testing.T) (s *server, started time.Time, ctx context.Context, changed <-chan struct{}, stopEvents func()) {
	t.Helper()
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
	s, err := launchServer(t, t.TempDir(), env, "--demo")
	if err != nil {
		t.Fatalf("%v\n%s", err, s.stderr.String())
	}
	started = time.Now()
	ctx, cancel := context.WithTimeout(deadline(t), demoBound)
	t.Cleanup(cancel)
	evctx, stopEvents := context.WithCancel(ctx)
	return s, started, ctx, s.jobEvents(evctx), stopEvents
}

// jobEvents streams the server's live events and signals (coalesced) each
// jobs_changed on the returned channel, until ctx ends.
func (s *server) jobEvents(ctx context.Context) <-chan struct{} {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/api/v1/events", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("events: %v %v", resp, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "event: jobs_changed" {
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// lanesWithoutDone returns the lanes of the topology none of whose queues
// has a done job.
func (s *server) lanesWithoutDone(ctx context.Context) ([]string, error) {
	var qs []struct {
		Lane   string           `json:"lane"`
		Counts map[string]int64 `json:"counts"`
	}
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/queues", nil, &qs); err != nil || code != 200 {
		return nil, fmt.Errorf("queues: %d %v", code, err)
	}
	done := map[string]int64{}
	for _, q := range qs {
		if q.Lane != "" {
			done[q.Lane] += q.Counts["done"]
		}
	}
	var out []string
	for l, n := range done {
		if n == 0 {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	if len(done) != len(lanes.DefaultTopology().Lanes) {
		return nil, fmt.Errorf("the queues name %d lanes, the default topology has %d", len(done), len(lanes.DefaultTopology().Lanes))
	}
	return out, nil
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
