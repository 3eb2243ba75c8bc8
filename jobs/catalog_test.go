package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/jobs"
	"conveyor/jobs/sandbox"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

func accountJob(r *jobs.Rig, class string, acct int64) *queue.Job {
	b, _ := json.Marshal(jobs.AccountArgs{AccountID: acct})
	return r.Enqueue(lanes.JobRequest{Class: class, Args: b, Context: map[string]string{queue.CtxAccountID: "x"}})
}

// withAI serves the local AI stand-in on loopback and points the catalog
// at it.
func withAI(t *testing.T, s *sandbox.Sandbox) func(*jobs.Options) {
	srv := httptest.NewServer(s.AIHandler())
	t.Cleanup(srv.Close)
	ai, err := jobs.NewLocalAI(srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *jobs.Options) { o.LocalAI = ai }
}

// TestContinuousFeedCapture: the coordinator enqueues a capture when the
// account's next feed sync is due and sets the next one; the capture pages
// through the feed with a new job per page delay_seconds apart, stores new
// posts once, and enqueues one analysis per new post, which the local AI
// stand-in answers.
func TestContinuousFeedCapture(t *testing.T) {
	t.Parallel()
	clk := cron.NewFakeClock(jobs.RigStart)
	sb := startSandbox(t, sandbox.Options{Seed: 4, Now: clk.Now}, nil)
	r := jobs.NewRigClock(t, t.TempDir(), clk, bridgeTo(t, sb.URL), withAI(t, sb.Sandbox))
	acct := r.AddAccounts(1, "feed")[0]
	ctx := context.Background()

	coord := accountJob(r, jobs.ProcessAccountContinuously, acct.ID)
	if err := r.Perform(coord); err != nil {
		t.Fatal(err)
	}
	a, _ := r.DB.AccountByID(ctx, acct.ID)
	interval := r.Cat.Settings().FeedSyncInterval
	if !a.LastFeedCaptureAt.Equal(jobs.RigStart) || a.NextFeedSyncAt.Before(jobs.RigStart.Add(interval)) ||
		a.NextFeedSyncAt.After(jobs.RigStart.Add(interval+interval/10)) {
		t.Fatalf("after the coordinator: capture at %v, next sync %v", a.LastFeedCaptureAt, a.NextFeedSyncAt)
	}
	// Not due again: nothing more.
	if err := r.Perform(accountJob(r, jobs.ProcessAccountContinuously, acct.ID)); err != nil {
		t.Fatal(err)
	}
	caps := r.Jobs(jobs.CaptureHomeFeed)
	if len(caps) != 1 {
		t.Fatalf("%d captures, want 1", len(caps))
	}
	// Page by page: each next page is a new job due three seconds later.
	for page := 1; page <= sandbox.FeedPages; page++ {
		caps = r.Jobs(jobs.CaptureHomeFeed)
		cur := caps[len(caps)-1]
		if page > 1 && !cur.RunAt.Equal(r.Clock.Now().Add(jobs.DefaultFeedPageDelay)) {
			t.Fatalf("page %d due %v, want 3 s after %v", page, cur.RunAt, r.Clock.Now())
		}
		r.Clock.Set(cur.RunAt)
		if err := r.Perform(cur); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.Jobs(jobs.CaptureHomeFeed)); n != sandbox.FeedPages {
		t.Fatalf("%d capture jobs, want one per page (%d)", n, sandbox.FeedPages)
	}
	total, _, _ := r.DB.CountPosts(ctx, acct.ID)
	analyses := r.Jobs(jobs.AnalyzePost)
	if want := sandbox.FeedPages * sandbox.FeedPageSize; total != want || len(analyses) != want {
		t.Fatalf("%d posts and %d analyses, want %d of each", total, len(analyses), want)
	}
	if a, _ := r.DB.AccountByID(ctx, acct.ID); !strings.HasPrefix(a.LastSyncResult, "ok: 3 pages, 15 new posts") {
		t.Errorf("last sync result %q", a.LastSyncResult)
	}
	for _, j := range analyses {
		if j.Queue != "ai" || j.Context[queue.CtxAccountID] == "" || j.Context[queue.CtxProfileID] == "" {
			t.Fatalf("analysis job %+v", j)
		}
	}
	// A capture an hour later sees six new posts on top, stores only them
	// and analyses only them.
	r.Clock.Advance(time.Hour)
	b, _ := json.Marshal(jobs.CaptureArgs{AccountID: acct.ID})
	if err := r.Perform(r.Enqueue(lanes.JobRequest{Class: jobs.CaptureHomeFeed, Args: b})); err != nil {
		t.Fatal(err)
	}
	total2, _, _ := r.DB.CountPosts(ctx, acct.ID)
	if total2-total != 5 || len(r.Jobs(jobs.AnalyzePost))-len(analyses) != 5 {
		t.Fatalf("the next capture's first page: %d new posts, %d new analyses, want 5 (a full page of new posts)", total2-total, len(r.Jobs(jobs.AnalyzePost))-len(analyses))
	}
	// The analyses go through the local AI stand-in.
	j := analyses[0]
	if err := r.Perform(j); err != nil {
		t.Fatal(err)
	}
	var args jobs.AnalyzeArgs
	json.Unmarshal(j.Args, &args)
	p, _ := r.DB.PostByID(ctx, args.PostID)
	if p.AnalyzedAt.IsZero() || !strings.Contains(string(p.Analysis), `"labels"`) {
		t.Fatalf("post after analysis %+v", p)
	}
	calls, _ := r.DB.JobCalls(ctx, j.ID)
	if len(calls) != 1 || calls[0].Status != 200 || !strings.Contains(calls[0].Endpoint, "/analyze") {
		t.Fatalf("analysis calls %+v", calls)
	}
	// Media was stored and a download recorded per post.
	cap1 := r.Jobs(jobs.CaptureHomeFeed)[0]
	acts, _ := r.DB.AccountActions(ctx, cap1.ID)
	if len(acts) != sandbox.FeedPageSize || acts[0].Action != "download" {
		t.Fatalf("actions of the first capture %+v", acts)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "media", strings.TrimPrefix(strings.Fields(acts[0].Detail)[3], "media/"))); err != nil {
		t.Fatalf("media file: %v (%s)", err, acts[0].Detail)
	}
}

// TestCoordinatorHeldBackWhileAIDown: while the AI gate is closed the
// coordinator enqueues nothing, says why in the account's last sync
// result, and leaves the sync due.
func TestCoordinatorHeldBackWhileAIDown(t *testing.T) {
	t.Parallel()
	open := false
	r := jobs.NewRig(t, t.TempDir(), func(o *jobs.Options) {
		o.AIGate = func() (bool, string) { return open, "local AI microservice: connection refused" }
	})
	acct := r.AddAccounts(1, "ai")[0]
	if err := r.Perform(accountJob(r, jobs.ProcessAccountContinuously, acct.ID)); err != nil {
		t.Fatal(err)
	}
	a, _ := r.DB.AccountByID(context.Background(), acct.ID)
	if len(r.Jobs(jobs.CaptureHomeFeed)) != 0 || !a.NextFeedSyncAt.IsZero() ||
		!strings.Contains(a.LastSyncResult, "local AI is unavailable (local AI microservice: connection refused)") {
		t.Fatalf("with AI down: %d captures, account %+v", len(r.Jobs(jobs.CaptureHomeFeed)), a)
	}
	open = true
	if err := r.Perform(accountJob(r, jobs.ProcessAccountContinuously, acct.ID)); err != nil {
		t.Fatal(err)
	}
	if len(r.Jobs(jobs.CaptureHomeFeed)) != 1 {
		t.Fatal("no capture once AI is back")
	}
}

// TestAccountJobsRecordCallsAndActions: each per-account job calls the
// sandbox over HTTP, records the call, and does its part.
func TestAccountJobsRecordCallsAndActions(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{Seed: 21}, nil)
	r := jobs.NewRig(t, t.TempDir(), bridgeTo(t, sb.URL))
	accts := r.AddAccounts(6, "acc")
	ctx := context.Background()
	acted := map[string]bool{}
	for _, class := range []string{jobs.StoryAutoReply, jobs.FeedAutoEngagement, jobs.RecentProfilePostScan, jobs.SyncAvatar, jobs.RefreshProfiles} {
		for _, a := range accts {
			j := accountJob(r, class, a.ID)
			if err := r.Perform(j); err != nil {
				t.Fatalf("%s: %v", class, err)
			}
			calls, _ := r.DB.JobCalls(ctx, j.ID)
			if len(calls) != 1 || calls[0].Status != 200 || calls[0].AccountID != a.ID || !strings.HasSuffix(calls[0].Endpoint, class) {
				t.Fatalf("%s calls %+v", class, calls)
			}
			acts, _ := r.DB.AccountActions(ctx, j.ID)
			for _, x := range acts {
				acted[x.Action] = true
			}
		}
	}
	for _, want := range []string{"story_reply", "engagement", "download"} {
		if !acted[want] {
			t.Errorf("no %s action recorded (%v)", want, acted)
		}
	}
	ps, _, _ := r.DB.FindProfiles(ctx, data.ProfileFilter{AccountID: accts[0].ID, Limit: 100})
	refreshed, avatars := 0, 0
	for _, p := range ps {
		if !p.LastRefreshedAt.IsZero() {
			refreshed++
		}
		if p.AvatarURL != "" {
			avatars++
		}
	}
	if refreshed == 0 || avatars == 0 {
		t.Errorf("profiles of account 1: %d refreshed, %d with avatars", refreshed, avatars)
	}
	// A disabled account, or one whose switch is off, is left alone.
	accts[1].Disabled, accts[2].StoryAutoReply = true, false
	r.DB.UpdateAccount(ctx, accts[1])
	r.DB.UpdateAccount(ctx, accts[2])
	before := len(sb.Calls())
	for _, a := range accts[1:3] {
		if err := r.Perform(accountJob(r, jobs.StoryAutoReply, a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if len(sb.Calls()) != before {
		t.Error("a job called out for a disabled account or one whose switch is off")
	}
}

// TestConnectorFailures: failures keep their kind; a Retry-After answer
// snoozes the job (up to a bound); without a connector the job is
// discarded with one error that names the setting.
func TestConnectorFailures(t *testing.T) {
	t.Parallel()
	faulty := startSandbox(t, sandbox.Options{Seed: 3, FaultRate: 1}, nil)
	r := jobs.NewRig(t, t.TempDir(), bridgeTo(t, faulty.URL))
	accts := r.AddAccounts(40, "x")
	kinds := map[fault.Kind]int{}
	snoozes := 0
	for _, a := range accts {
		j := accountJob(r, jobs.SyncAvatar, a.ID)
		err := r.Perform(j)
		var ce *jobs.CallError
		if !errors.As(err, &ce) {
			t.Fatalf("account %d: %v", a.ID, err)
		}
		kinds[ce.Kind]++
		if ce.RetryAfter > 0 {
			if !strings.Contains(err.Error(), "429") || !isSnooze(err) {
				t.Fatalf("a Retry-After answer was not a snooze: %v", err)
			}
			snoozes++
			// A job keeps snoozing only so long.
			for range 5 {
				r.Perform(j)
			}
			if err := r.Perform(j); isSnooze(err) {
				t.Fatalf("snoozed past the bound: %v", err)
			}
		}
	}
	if kinds[fault.Authentication] == 0 || kinds[fault.Runtime] == 0 || kinds[fault.Transient] == 0 || snoozes == 0 {
		t.Fatalf("kinds %v, snoozes %d", kinds, snoozes)
	}

	bare := jobs.NewRig(t, t.TempDir())
	a := bare.AddAccounts(1, "n")[0]
	err := bare.Perform(accountJob(bare, jobs.StoryAutoReply, a.ID))
	if !errors.Is(err, jobs.ErrNotConfigured) || !isKilled(err) || !strings.Contains(err.Error(), "CONVEYOR_CONNECTOR_URL") {
		t.Fatalf("without a connector: %v", err)
	}
}

// TestPurgeExpiredMedia deletes the files and rows past the retention.
func TestPurgeExpiredMedia(t *testing.T) {
	t.Parallel()
	clk := cron.NewFakeClock(jobs.RigStart)
	sb := startSandbox(t, sandbox.Options{Seed: 8, Now: clk.Now}, nil)
	r := jobs.NewRigClock(t, t.TempDir(), clk, bridgeTo(t, sb.URL))
	acct := r.AddAccounts(1, "m")[0]
	ctx := context.Background()
	if err := r.Perform(accountJob(r, jobs.RecentProfilePostScan, acct.ID)); err != nil {
		t.Fatal(err)
	}
	// A second scan an hour short of the retention stores other posts'
	// media; three hours later only the first scan's has expired.
	r.Clock.Advance(r.Cat.Settings().MediaRetention - time.Hour)
	if err := r.Perform(accountJob(r, jobs.RecentProfilePostScan, acct.ID)); err != nil {
		t.Fatal(err)
	}
	r.Clock.Advance(3 * time.Hour)
	files := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(r.Dir, "media"), func(_ string, d os.DirEntry, _ error) error {
			if d != nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	old := files()
	if old == 0 {
		t.Fatal("no media stored")
	}
	if err := r.Perform(r.Enqueue(lanes.JobRequest{Class: jobs.PurgeMedia})); err != nil {
		t.Fatal(err)
	}
	left, _ := r.DB.ExpiredMedia(ctx, r.Clock.Now().Add(time.Hour), 100)
	if files() != len(left) || files() >= old {
		t.Fatalf("after the purge %d files and %d rows (from %d files)", files(), len(left), old)
	}
	for _, m := range left {
		if m.StoredAt.Before(r.Clock.Now().Add(-r.Cat.Settings().MediaRetention)) {
			t.Errorf("an expired row is left: %+v", m)
		}
	}
}

// TestArgsRefusedAtEnqueue: the catalog's classes declare their args.
func TestArgsRefusedAtEnqueue(t *testing.T) {
	t.Parallel()
	r := jobs.NewRig(t, t.TempDir())
	for _, c := range []struct {
		class, args, field string
	}{
		{jobs.StoryAutoReply, `{}`, "args.account_id"},
		{jobs.StoryAutoReply, `{"account_id":"7"}`, "args.account_id"},
		{jobs.StoryAutoReply, `{"account_id":7,"extra":1}`, "args.extra"},
		{jobs.CaptureHomeFeed, `{"account_id":7,"delay_seconds":-1}`, "args.delay_seconds"},
		{jobs.AnalyzePost, `{"post_id":0}`, "args.post_id"},
		{jobs.EnqueueAvatarSync, `{"tick":"yesterday"}`, "args.tick"},
		{jobs.PurgeMedia, `{"days":3}`, "args.days"},
	} {
		_, err := r.Reg.NewJob(lanes.DefaultTopology(), lanes.JobRequest{Class: c.class, Args: json.RawMessage(c.args)})
		var ve *queue.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field || !strings.Contains(ve.Reason, c.class) {
			t.Errorf("%s %s: %v, want a refusal of %s", c.class, c.args, err, c.field)
		}
	}
}

// hasType reports whether err's chain holds an error of sample's type
// (lanes keeps its control-flow error types to itself).
func hasType(err error, sample error) bool {
	return errors.As(err, reflect.New(reflect.TypeOf(sample)).Interface())
}

func isSnooze(err error) bool { return hasType(err, lanes.Snooze(0)) }
func isKilled(err error) bool { return hasType(err, lanes.Kill(errors.New(""))) }
