package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/jobs"
	"conveyor/queue"
)

// TestDemoFirstMinute starts the real binary with --demo and checks the
// rest of the promise for the first minute (TestDemoEndToEnd
// checks the done jobs): failures and retries happen for real — a failure
// row is recorded and a job that failed is retried — and the first
// continuous-processing fan-out is the first thing the demo enqueues, due
// at once, with its per-account jobs due at the fan-out's start plus the
// batching arithmetic (k × stagger + the account's jitter), the first of
// them with no stagger at all.
func TestDemoFirstMinute(t *testing.T) {
	t.Parallel()
	s, started, ctx, changed, stopEvents := startDemo(t)

	// A failure row, a retried job and the first fan-out done, asked again
	// at each jobs_changed event until the minute is up.
	var first uint64
	for {
		total, retried, err := s.failedAndRetried(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var fanOut jobJSON
		if first = s.firstFanOut(ctx, t); first != 0 {
			fanOut = s.job(ctx, t, first)
		}
		if total > 0 && retried != "" && fanOut.State == queue.StateDone.String() {
			t.Logf("%d failure rows and %s, %v after start", total, retried, time.Since(started).Round(time.Millisecond))
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("within %v: %d failure rows, retried %q, the first fan-out %+v\n%s", demoBound, total, retried, fanOut, s.stderr.String())
		}
	}
	stopEvents()

	s.checkFirstFanOut(ctx, t, first)
	if err, _ := s.terminate(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, s.stderr.String())
	}
}

// failedAndRetried returns how many failure rows GET /api/v1/failures
// counts and, when one of the failed jobs of its first page has been
// retried, which and how: it waits in the retry state for its next attempt,
// or it has started an attempt after the failed one.
func (s *server) failedAndRetried(ctx context.Context) (int, string, error) {
	var page struct {
		Total int `json:"total"`
		Data  []struct {
			JobID   uint64 `json:"job_id"`
			Class   string `json:"class"`
			Kind    string `json:"kind"`
			Attempt int    `json:"attempt"`
		} `json:"data"`
	}
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/failures?size=100", nil, &page); err != nil || code != http.StatusOK {
		return 0, "", fmt.Errorf("failures: %d %v", code, err)
	}
	for _, f := range page.Data {
		var j jobJSON
		if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", f.JobID), nil, &j); err != nil || code != http.StatusOK {
			return 0, "", fmt.Errorf("job %d of a failure row: %d %v", f.JobID, code, err)
		}
		switch {
		case j.Attempt > f.Attempt:
			return page.Total, fmt.Sprintf("%s %d (%s failure on attempt %d) started attempt %d", j.Class, j.ID, f.Kind, f.Attempt, j.Attempt), nil
		case j.State == queue.StateRetry.String():
			return page.Total, fmt.Sprintf("%s %d (%s failure on attempt %d) waits to retry", j.Class, j.ID, f.Kind, f.Attempt), nil
		}
	}
	return page.Total, "", nil
}

// firstFanOut returns the job of the kickoff's enqueue-now of continuous
// processing, 0 before it ran. Every other enqueue-now of the kickoff must
// come after it.
func (s *server) firstFanOut(ctx context.Context, t *testing.T) uint64 {
	t.Helper()
	var sched struct {
		Entries []struct {
			Name        string  `json:"name"`
			Class       string  `json:"class"`
			ManualJobID *uint64 `json:"manual_job_id"`
		} `json:"entries"`
	}
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/cron", nil, &sched); err != nil || code != http.StatusOK {
		t.Fatalf("cron: %d %v", code, err)
	}
	var first uint64
	manual := map[string]uint64{}
	for _, e := range sched.Entries {
		if e.ManualJobID != nil {
			manual[e.Name] = *e.ManualJobID
		}
		if e.Class == jobs.EnqueueContinuousAccountProcessing && e.ManualJobID != nil {
			first = *e.ManualJobID
		}
	}
	for name, id := range manual {
		if first == 0 || id < first {
			t.Fatalf("the kickoff ran %s (job %d) before continuous processing (job %d)", name, id, first)
		}
	}
	return first
}

// checkFirstFanOut checks the demo's first fan-out, job first, done: the
// kickoff's enqueue-now of continuous processing is the first job the demo
// made (only the schedule's own ticks may come before it) and was due at
// once, and every enabled account with continuous processing on got its
// per-account job for that tick, due at exactly the fan-out's start + k ×
// stagger + jitter(account), the start being when the orchestrator ran.
func (s *server) checkFirstFanOut(ctx context.Context, t *testing.T, first uint64) {
	t.Helper()
	for id := uint64(1); id < first; id++ {
		j := s.job(ctx, t, id)
		if j.Context[cron.CtxTrigger] != cron.TriggerSchedule {
			t.Errorf("job %d (%s, %v) came before the first fan-out (job %d)", id, j.Class, j.Context, first)
		}
	}

	orch := s.job(ctx, t, first)
	if orch.State != queue.StateDone.String() || !orch.RunAt.Equal(orch.CreatedAt) || orch.Context[cron.CtxTrigger] != cron.TriggerManual {
		t.Fatalf("the first fan-out's job %+v: want done, due when enqueued, a manual run", orch)
	}
	tick, err := time.Parse(time.RFC3339, orch.Context[cron.CtxTick])
	if err != nil {
		t.Fatalf("the first fan-out's tick: %v", err)
	}
	set, err := jobs.SettingsFromEnv(os.Getenv, true) // the server's environment is this process's
	if err != nil {
		t.Fatal(err)
	}
	b := set.Batching[jobs.EnqueueContinuousAccountProcessing]

	want := s.fanOutAccounts(ctx, t)
	byKey := map[string]jobJSON{}
	for _, j := range s.classJobs(ctx, t, jobs.ProcessAccountContinuously) {
		if j.UniqueKey != nil {
			byKey[*j.UniqueKey] = j
		}
	}
	// Each job's due time after the fan-out's start: k × stagger + jitter.
	type slot struct {
		j   jobJSON
		due time.Duration
	}
	var slots []slot
	for k, id := range want {
		j, ok := byKey[jobs.UniqueKey(jobs.ProcessAccountContinuously, id, tick)]
		switch {
		case !ok:
			t.Errorf("account %d has no %s for the first fan-out", id, jobs.ProcessAccountContinuously)
			continue
		case j.Context[queue.CtxAccountID] != strconv.FormatInt(id, 10):
			t.Errorf("account %d's job %d has context %v", id, j.ID, j.Context)
		case len(j.Errors) > 0:
			// A failed attempt moved run_at to its retry.
			if k == 0 {
				t.Errorf("the first account's job %d failed: %+v", j.ID, j)
			}
			continue
		}
		slots = append(slots, slot{j, time.Duration(k)*b.Stagger + jobs.Jitter(jobs.EnqueueContinuousAccountProcessing, id, b.Jitter)})
	}
	// The start is read off a job due after its enqueue: the queue stores
	// a due time that has passed as the enqueue time (due at once).
	var start time.Time
	for _, sl := range slots {
		if sl.j.RunAt.After(sl.j.CreatedAt) {
			start = sl.j.RunAt.Add(-sl.due)
			break
		}
	}
	if start.IsZero() {
		t.Fatalf("none of the first fan-out's %d jobs is due after its enqueue (batching %+v)", len(slots), b)
	}
	if start.Before(orch.StartedAt.Truncate(time.Second)) || start.After(orch.FinishedAt) {
		t.Errorf("the fan-out's start %v is not when its orchestrator ran (%v to %v)", start, orch.StartedAt, orch.FinishedAt)
	}
	for _, sl := range slots {
		want := start.Add(sl.due)
		if !want.After(sl.j.CreatedAt) {
			want = sl.j.CreatedAt
		}
		if !sl.j.RunAt.Equal(want) {
			t.Errorf("account %s's job %d is due at %v, want %v (start %v + %v, enqueued %v)",
				sl.j.Context[queue.CtxAccountID], sl.j.ID, sl.j.RunAt, want, start, sl.due, sl.j.CreatedAt)
		}
	}
}

// fanOutAccounts returns the ids of the accounts a continuous-processing
// fan-out covers (enabled, switch on), ascending: the k-th is its slot.
func (s *server) fanOutAccounts(ctx context.Context, t *testing.T) []int64 {
	t.Helper()
	var ids []int64
	for cursor := ""; ; {
		var page struct {
			Accounts []struct {
				ID                   int64 `json:"id"`
				Enabled              bool  `json:"enabled"`
				ContinuousProcessing bool  `json:"continuous_processing"`
			} `json:"accounts"`
			Next *string `json:"next"`
		}
		path := "/api/v1/accounts"
		if cursor != "" {
			path += "?cursor=" + url.QueryEscape(cursor)
		}
		if code, err := s.api(ctx, http.MethodGet, path, nil, &page); err != nil || code != http.StatusOK {
			t.Fatalf("accounts: %d %v", code, err)
		}
		for _, a := range page.Accounts {
			if a.Enabled && a.ContinuousProcessing {
				ids = append(ids, a.ID)
			}
		}
		if page.Next == nil {
			break
		}
		cursor = *page.Next
	}
	if len(ids) == 0 {
		t.Fatal("the demo has no account with continuous processing on")
	}
	slices.Sort(ids)
	return ids
}

// classJobs lists the jobs of class in every state. The states are listed
// one request at a time, in the order a job goes through them, so a job
// that moves on between two requests is listed twice: its later listing
// wins.
func (s *server) classJobs(ctx context.Context, t *testing.T, class string) map[uint64]jobJSON {
	t.Helper()
	out := map[uint64]jobJSON{}
	for _, st := range queue.States {
		for cursor := ""; ; {
			var page struct {
				Jobs []jobJSON `json:"jobs"`
				Next *string   `json:"next"`
			}
			q := url.Values{"state": {st.String()}, "class": {class}, "size": {"1000"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			if code, err := s.api(ctx, http.MethodGet, "/api/v1/jobs?"+q.Encode(), nil, &page); err != nil || code != http.StatusOK {
				t.Fatalf("jobs of %s, %s: %d %v", class, st, code, err)
			}
			for _, j := range page.Jobs {
				out[j.ID] = j
			}
			if page.Next == nil {
				break
			}
			cursor = *page.Next
		}
	}
	return out
}
