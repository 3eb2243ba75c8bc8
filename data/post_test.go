package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAccountSwitchesAndFanOut(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	ctx := t.Context()
	// 12 accounts: every third disabled, follow-graph sync on the even ones.
	var ids []int64
	for i := range 12 {
		a := &Account{Username: fmt.Sprintf("u%02d", i), Disabled: i%3 == 0, FollowGraphSync: i%2 == 0, AvatarSync: true}
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	var got []int64
	for after := int64(0); ; {
		batch, err := db.AccountsForFanOut(ctx, SwitchFollowGraphSync, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, a := range batch {
			got = append(got, a.ID)
		}
		after = batch[len(batch)-1].ID
	}
	want := []int64{ids[2], ids[4], ids[8], ids[10]} // even, not a multiple of 3
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fan-out saw %v, want %v", got, want)
	}
	if _, err := db.AccountsForFanOut(ctx, Switch("enabled; DROP TABLE accounts"), 0, 10); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown switch = %v", err)
	}
	a, err := db.AccountByUsername(ctx, "u03")
	if err != nil || !a.Disabled || !a.AvatarSync || a.FollowGraphSync {
		t.Fatalf("u03 = %+v, %v", a, err)
	}
	a.Disabled, a.ProfileRefresh = false, true
	if err := db.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if b, _ := db.AccountByID(ctx, a.ID); b.Disabled || !b.ProfileRefresh {
		t.Fatalf("after update %+v", b)
	}
	if _, err := db.AccountByUsername(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown username = %v", err)
	}
	b, _ := db.AccountByUsername(ctx, "u04")
	b.Username = "u03"
	if err := db.UpdateAccount(ctx, b); !errors.Is(err, ErrConflict) {
		t.Fatalf("rename onto a taken username = %v", err)
	}
	if err := db.CreateAccount(ctx, &Account{Username: "u05"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("create a taken username = %v", err)
	}
	if n, err := db.CountAccounts(ctx); err != nil || n != 12 {
		t.Fatalf("count = %d, %v", n, err)
	}
	bulk := []*Account{{Username: "b1", AvatarSync: true}, {Username: "b2", Disabled: true}}
	if err := db.CreateAccounts(ctx, bulk); err != nil || bulk[0].ID == 0 || bulk[1].ID != bulk[0].ID+1 {
		t.Fatalf("bulk create: %+v, %v", bulk, err)
	}
	if got, _ := db.AccountByUsername(ctx, "b2"); !got.Disabled {
		t.Fatalf("bulk-created %+v", got)
	}
	if err := db.CreateAccounts(ctx, []*Account{{Username: "b3"}, {Username: "b1"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("bulk create with a taken name = %v", err)
	}
	if _, err := db.AccountByUsername(ctx, "b3"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused bulk create left a row")
	}
}

func TestPostsDedupAndMedia(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	acct := &Account{Username: "poster"}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	page := func(ids ...string) []*Post {
		var ps []*Post
		for _, id := range ids {
			ps = append(ps, &Post{AccountID: acct.ID, PostID: id, Author: "a_" + id, Caption: "caption " + id})
		}
		return ps
	}
	first, n, err := db.StorePosts(ctx, page("p1", "p2"))
	if err != nil || n != 2 || first[0].ID == 0 || first[1].ID == 0 {
		t.Fatalf("first page: %v new, %+v, %v", n, first, err)
	}
	clk.Add(time.Minute)
	second, n, err := db.StorePosts(ctx, page("p2", "p3"))
	if err != nil || n != 1 {
		t.Fatalf("second page: %d new, %v", n, err)
	}
	if second[0].ID != first[1].ID || !second[0].CapturedAt.Equal(first[1].CapturedAt) || second[1].ID == first[1].ID {
		t.Fatalf("second page %+v %+v: p2 must be the stored row", second[0], second[1])
	}
	if err := db.SetPostAnalysis(ctx, first[0].ID, json.RawMessage(`{"labels":["cat"]}`), clk.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPostAnalysis(ctx, 9999, json.RawMessage(`{}`), clk.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("analysis of a missing post = %v", err)
	}
	if err := db.SetPostAnalysis(ctx, first[0].ID, json.RawMessage(`{`), clk.Now()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad analysis = %v", err)
	}
	p, err := db.PostByID(ctx, first[0].ID)
	if err != nil || string(p.Analysis) != `{"labels":["cat"]}` || !p.AnalyzedAt.Equal(clk.Now()) {
		t.Fatalf("post %+v, %v", p, err)
	}
	if total, analyzed, err := db.CountPosts(ctx, acct.ID); err != nil || total != 3 || analyzed != 1 {
		t.Fatalf("count = %d/%d, %v", total, analyzed, err)
	}

	old := &Media{PostID: first[0].ID, Path: "1/p1.jpg", Bytes: 10}
	if err := db.AddPostMedia(ctx, old); err != nil {
		t.Fatal(err)
	}
	clk.Add(48 * time.Hour)
	fresh := &Media{PostID: second[1].ID, Path: "1/p3.jpg", Bytes: 20}
	if err := db.AddPostMedia(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	again := &Media{PostID: first[0].ID, Path: "1/p1.jpg", Bytes: 11}
	if err := db.AddPostMedia(ctx, again); err != nil || again.ID != old.ID || !again.StoredAt.Equal(old.StoredAt) {
		t.Fatalf("the same path again: %+v, %v", again, err)
	}
	exp, err := db.ExpiredMedia(ctx, clk.Now().Add(-24*time.Hour), 10)
	if err != nil || len(exp) != 1 || exp[0].ID != old.ID || exp[0].Bytes != 11 {
		t.Fatalf("expired = %+v, %v", exp, err)
	}
	if n, err := db.DeleteMedia(ctx, []int64{old.ID, old.ID}); err != nil || n != 1 {
		t.Fatalf("delete = %d, %v", n, err)
	}
	if exp, _ := db.ExpiredMedia(ctx, clk.Now().Add(time.Hour), 10); len(exp) != 1 || exp[0].ID != fresh.ID {
		t.Fatalf("left %+v", exp)
	}
	if _, _, err := db.StorePosts(ctx, []*Post{{AccountID: acct.ID}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("post without id = %v", err)
	}
}

func TestJobRecordsCappedAndTrimmed(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	var calls []JobCall
	for i := range MaxCallsPerJob + 7 {
		calls = append(calls, JobCall{JobID: 5, AccountID: 1, Endpoint: fmt.Sprintf("call %d", i), Status: 200, Latency: 30 * time.Millisecond})
	}
	calls = append(calls, JobCall{JobID: 6, Endpoint: "other", Status: 503, Error: strings.Repeat("é", 2000)})
	if err := db.RecordJobCalls(ctx, calls); err != nil {
		t.Fatal(err)
	}
	got, err := db.JobCalls(ctx, 5)
	if err != nil || len(got) != MaxCallsPerJob || got[0].Endpoint != "call 7" || got[len(got)-1].Endpoint != fmt.Sprintf("call %d", MaxCallsPerJob+6) {
		t.Fatalf("job 5 keeps %d calls (%v … %v), %v", len(got), got[0].Endpoint, got[len(got)-1].Endpoint, err)
	}
	if got[0].Latency != 30*time.Millisecond || got[0].AccountID != 1 || got[0].Status != 200 {
		t.Errorf("call %+v", got[0])
	}
	other, _ := db.JobCalls(ctx, 6)
	if len(other) != 1 || len(other[0].Error) > maxRecordText || !strings.HasPrefix(other[0].Error, "é") {
		t.Fatalf("job 6: %+v", other)
	}
	clk.Add(time.Hour)
	if err := db.RecordAccountActions(ctx, []AccountAction{{JobID: 5, AccountID: 1, Action: "story_reply", Target: "s1", Detail: "thanks!"}}); err != nil {
		t.Fatal(err)
	}
	if acts, err := db.AccountActions(ctx, 5); err != nil || len(acts) != 1 || acts[0].Target != "s1" || !acts[0].At.Equal(clk.Now()) {
		t.Fatalf("actions %+v, %v", acts, err)
	}
	if err := db.RecordAccountActions(ctx, []AccountAction{{JobID: 5, Action: "x"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("action without account = %v", err)
	}
	n, err := db.TrimJobRecords(ctx, clk.Now().Add(-time.Minute))
	if err != nil || n != MaxCallsPerJob+1 {
		t.Fatalf("trim = %d, %v", n, err)
	}
	if left, _ := db.AccountActions(ctx, 5); len(left) != 1 {
		t.Fatalf("trim took the newer action: %+v", left)
	}
}

// TestPostPipelineStorage: a post keeps its media type, a post has one
// media file per frame, and the first analysis stored per post,
// capability and frame is the one kept.
func TestPostPipelineStorage(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	acct := &Account{Username: "pipe"}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	ps, _, err := db.StorePosts(ctx, []*Post{
		{AccountID: acct.ID, PostID: "img"},
		{AccountID: acct.ID, PostID: "vid", MediaType: MediaVideo},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []MediaType{MediaImage, MediaVideo} {
		if ps[i].MediaType != want {
			t.Errorf("returned post %d is %q, want %q", i, ps[i].MediaType, want)
		}
		if p, _ := db.PostByID(ctx, ps[i].ID); p.MediaType != want {
			t.Errorf("stored post %d is %q, want %q", i, p.MediaType, want)
		}
	}
	if _, _, err := db.StorePosts(ctx, []*Post{{AccountID: acct.ID, PostID: "x", MediaType: "carousel"}}); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "posts[0].MediaType") {
		t.Fatalf("an unknown media type = %v", err)
	}

	vid := ps[1].ID
	for frame := range 3 {
		if err := db.AddPostMedia(ctx, &Media{PostID: vid, Frame: frame, Path: fmt.Sprintf("1/%d-f%d.jpg", vid, frame)}); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := db.PostMedia(ctx, vid, 2); err != nil || m.Frame != 2 || m.Path != fmt.Sprintf("1/%d-f2.jpg", vid) {
		t.Fatalf("frame 2 = %+v, %v", m, err)
	}
	if _, err := db.PostMedia(ctx, vid, 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a frame never stored = %v", err)
	}
	if err := db.AddPostMedia(ctx, &Media{PostID: vid, Frame: 1, Path: "elsewhere.jpg"}); err == nil {
		t.Fatal("a second file for the same frame was recorded")
	}
	if err := db.AddPostMedia(ctx, &Media{PostID: vid, Frame: -1, Path: "neg.jpg"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a negative frame = %v", err)
	}

	first := &PostAnalysis{PostID: vid, Capability: "visual", Frame: 1, JobID: 7, Result: json.RawMessage(`{"labels":["sea"]}`)}
	got, created, err := db.SavePostAnalysis(ctx, first)
	if err != nil || !created || got.JobID != 7 || !got.AnalyzedAt.Equal(clk.Now()) || string(got.Result) != `{"labels":["sea"]}` {
		t.Fatalf("first save = %+v, %v, %v", got, created, err)
	}
	clk.Add(time.Minute)
	got, created, err = db.SavePostAnalysis(ctx, &PostAnalysis{PostID: vid, Capability: "visual", Frame: 1, JobID: 8, Result: json.RawMessage(`{}`)})
	if err != nil || created || got.JobID != 7 || string(got.Result) != `{"labels":["sea"]}` {
		t.Fatalf("a second save must keep the first: %+v, %v, %v", got, created, err)
	}
	for _, a := range []*PostAnalysis{
		{PostID: vid, Capability: "visual", Frame: 2, JobID: 9, Result: json.RawMessage(`{}`)},
		{PostID: vid, Capability: "video", JobID: 3, Result: json.RawMessage(`{"duration_ms":9000}`)},
	} {
		if _, created, err := db.SavePostAnalysis(ctx, a); err != nil || !created {
			t.Fatalf("save %+v: %v %v", a, created, err)
		}
	}
	if _, _, err := db.SavePostAnalysis(ctx, &PostAnalysis{PostID: 9999, Capability: "visual", Result: json.RawMessage(`{}`)}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the analysis of a missing post = %v", err)
	}
	for _, bad := range []*PostAnalysis{
		{PostID: vid, Capability: "", Result: json.RawMessage(`{}`)},
		{PostID: vid, Capability: "ocr", Frame: -1, Result: json.RawMessage(`{}`)},
		{PostID: vid, Capability: "ocr", Result: json.RawMessage(`{`)},
	} {
		if _, _, err := db.SavePostAnalysis(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("save %+v = %v, want ErrInvalid", bad, err)
		}
	}
	if a, err := db.PostAnalysisOf(ctx, vid, "video", 0); err != nil || string(a.Result) != `{"duration_ms":9000}` {
		t.Fatalf("video analysis = %+v, %v", a, err)
	}
	if _, err := db.PostAnalysisOf(ctx, vid, "ocr", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an analysis never made = %v", err)
	}
	all, err := db.PostAnalyses(ctx, vid)
	if err != nil || len(all) != 3 || all[0].Capability != "video" || all[1].Frame != 1 || all[2].Frame != 2 {
		t.Fatalf("analyses = %+v, %v", all, err)
	}
	if n, err := db.CountPostAnalyses(ctx); err != nil || n["visual"] != 2 || n["video"] != 1 || len(n) != 2 {
		t.Fatalf("counts = %v, %v", n, err)
	}
	// Deleting the post deletes its results.
	if _, err := db.w.ExecContext(ctx, `DELETE FROM posts WHERE id = ?`, vid); err != nil {
		t.Fatal(err)
	}
	if all, _ := db.PostAnalyses(ctx, vid); len(all) != 0 {
		t.Fatalf("results outlive their post: %+v", all)
	}
}
