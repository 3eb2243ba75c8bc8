package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/jobs"
	"conveyor/jobs/sandbox"
	"conveyor/lanes"
	"conveyor/queue"
)

// sandboxServer serves a sandbox over HTTP on loopback, its clock at the
// rigs' start, and records every call's args; wrap (optional) sits in
// front of it.
type sandboxServer struct {
	*sandbox.Sandbox
	URL string

	mu    sync.Mutex
	calls []jobs.CallArgs
}

func startSandbox(t *testing.T, opts sandbox.Options, wrap func(http.Handler) http.Handler) *sandboxServer {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return jobs.RigStart }
	}
	s := &sandboxServer{Sandbox: sandbox.New(opts)}
	var h http.Handler = s.Handler()
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req jobs.Request
		body, _ := readBody(r)
		if json.Unmarshal(body, &req) == nil {
			var a jobs.CallArgs
			json.Unmarshal(req.Args, &a)
			s.mu.Lock()
			s.calls = append(s.calls, a)
			s.mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/"
	return s
}

// Calls returns the args of every call so far.
func (s *sandboxServer) Calls() []jobs.CallArgs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func bridgeTo(t *testing.T, url string) func(*jobs.Options) {
	t.Helper()
	b, err := jobs.NewBridge(jobs.BridgeOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *jobs.Options) { o.Connector = b }
}

// listOf is the sandbox's whole follow list (as of the rigs' start).
func listOf(t *testing.T, s *sandbox.Sandbox, user, list string) []string {
	t.Helper()
	var out []string
	for cursor := ""; ; {
		b, _ := json.Marshal(jobs.CallArgs{Username: user, List: list, Cursor: cursor})
		res, err := s.Call(context.Background(), jobs.Request{Class: jobs.SyncFollowGraph, Args: b})
		if err != nil {
			t.Fatal(err)
		}
		var p jobs.FollowPage
		json.Unmarshal(res, &p)
		for _, pr := range p.Profiles {
			out = append(out, pr.Username)
		}
		if !p.HasMore {
			return out
		}
		cursor = p.NextCursor
	}
}

// flagged returns the usernames of acct's profiles with the list's flag.
func flagged(t *testing.T, db *data.DB, acct int64, kind string) []string {
	t.Helper()
	yes := true
	f := data.ProfileFilter{AccountID: acct, Sort: data.ProfilesByUsername, Limit: 1000}
	if kind == data.CursorFollowing {
		f.Following = &yes
	} else {
		f.FollowedBy = &yes
	}
	ps, _, err := db.FindProfiles(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Username)
	}
	return out
}

// readBody reads a request's body and leaves it readable again.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, err
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// staleProfiles gives acct a followed and a following profile that the
// sandbox's lists do not hold.
func staleProfiles(t *testing.T, db *data.DB, acct int64) {
	t.Helper()
	err := db.UpsertProfiles(context.Background(), []*data.Profile{
		{AccountID: acct, Username: "stale_following", Following: true},
		{AccountID: acct, Username: "stale_follower", FollowedBy: true},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// followJob enqueues a SyncFollowGraphJob a minute later than the last
// (the rig's clock stands still otherwise).
func followJob(r *jobs.Rig, acct int64) *queue.Job {
	r.Clock.Advance(time.Minute)
	b, _ := json.Marshal(jobs.AccountArgs{AccountID: acct})
	return r.Enqueue(lanes.JobRequest{Class: jobs.SyncFollowGraph, Args: b})
}

// TestFollowGraphFullSnapshotClears: a pass from the start cursor reads
// both lists to their end, sets every flag it saw, and clears the flags it
// did not see.
func TestFollowGraphFullSnapshotClears(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{Seed: 11}, nil)
	r := jobs.NewRig(t, t.TempDir(), bridgeTo(t, sb.URL))
	acct := r.AddAccounts(1, "f")[0]
	staleProfiles(t, r.DB, acct.ID)
	if err := r.Perform(followJob(r, acct.ID)); err != nil {
		t.Fatal(err)
	}
	for kind, list := range map[string]string{data.CursorFollowing: "following", data.CursorFollowers: "followers"} {
		want := sorted(listOf(t, sb.Sandbox, acct.Username, list))
		if got := flagged(t, r.DB, acct.ID, kind); !slices.Equal(got, want) {
			t.Errorf("%s flags: %d profiles, want the sandbox's %d (stale ones cleared)", kind, len(got), len(want))
		}
		c, err := r.DB.Cursor(context.Background(), acct.ID, kind)
		if err != nil || c.Cursor != "" || c.StartedFromStart {
			t.Errorf("%s cursor after a full pass: %+v, %v (reset for the next pass)", kind, c, err)
		}
	}
}

// TestFollowGraphPartialRunClearsNothing: a pass that resumed from a
// stored cursor without having started at the start reads to the end and
// clears nothing; the pass after it starts from the start and clears.
func TestFollowGraphPartialRunClearsNothing(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{Seed: 11}, nil)
	r := jobs.NewRig(t, t.TempDir(), bridgeTo(t, sb.URL))
	acct := r.AddAccounts(1, "f")[0]
	staleProfiles(t, r.DB, acct.ID)
	ctx := context.Background()
	for _, kind := range []string{data.CursorFollowing, data.CursorFollowers} {
		if err := r.DB.SetCursor(ctx, data.SyncCursor{AccountID: acct.ID, Kind: kind, Cursor: "25"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Perform(followJob(r, acct.ID)); err != nil {
		t.Fatal(err)
	}
	if calls := sb.Calls(); calls[0].Cursor != "25" {
		t.Fatalf("the run began at cursor %q, not the stored one", calls[0].Cursor)
	}
	for _, kind := range []string{data.CursorFollowing, data.CursorFollowers} {
		if got := flagged(t, r.DB, acct.ID, kind); !slices.Contains(got, "stale_following") && !slices.Contains(got, "stale_follower") {
			t.Fatalf("a partial run cleared the %s flag of a stale profile: %v", kind, got)
		}
	}
	// The next pass is full.
	if err := r.Perform(followJob(r, acct.ID)); err != nil {
		t.Fatal(err)
	}
	for kind, stale := range map[string]string{data.CursorFollowing: "stale_following", data.CursorFollowers: "stale_follower"} {
		if got := flagged(t, r.DB, acct.ID, kind); slices.Contains(got, stale) {
			t.Errorf("the full pass after the partial one left %s flagged", stale)
		}
	}
}

// TestFollowGraphCursorsAcrossRuns: with a budget of one page per run, each
// run reads one page of each list and the next run continues from the
// saved cursor; flags are cleared only when the pass that began at the
// start reaches the end.
func TestFollowGraphCursorsAcrossRuns(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t, sandbox.Options{Seed: 11}, nil)
	r := jobs.NewRig(t, t.TempDir(), bridgeTo(t, sb.URL), func(o *jobs.Options) {
		o.Settings = jobs.DefaultSettings()
		o.Settings.FollowPagesPerRun = 1
	})
	acct := r.AddAccounts(1, "f")[0]
	staleProfiles(t, r.DB, acct.ID)
	want := sorted(listOf(t, sb.Sandbox, acct.Username, "following"))
	for run := 1; run <= 10; run++ {
		if err := r.Perform(followJob(r, acct.ID)); err != nil {
			t.Fatal(err)
		}
		got := flagged(t, r.DB, acct.ID, data.CursorFollowing)
		if slices.Equal(got, want) {
			if run < 2 {
				t.Fatalf("done after %d run", run)
			}
			return
		}
		if !slices.Contains(got, "stale_following") {
			t.Fatalf("run %d cleared the stale flag before the pass reached the end", run)
		}
	}
	t.Fatal("the pass never completed")
}
