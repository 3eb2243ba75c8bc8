package data

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestIssueLifecycle(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	ev := IssueEvent{Fingerprint: "job:ProfileRefreshJob:HTTP::TooManyRequests", Source: SourceJobFailure, Kind: "transient",
		Title: "ProfileRefreshJob: 429 Too Many Requests", Class: "ProfileRefreshJob", Queue: "profiles",
		Context: json.RawMessage(`{"job_id":1}`)}

	is, res, err := db.UpsertIssue(ctx, ev)
	if err != nil || res != IssueCreated {
		t.Fatalf("first upsert = %v %v", res, err)
	}
	t0 := clk.Now()
	if is.Occurrences != 1 || !is.FirstSeen.Equal(t0) || !is.LastSeen.Equal(t0) || is.Status != IssueOpen || string(is.LastContext) != `{"job_id":1}` {
		t.Fatalf("created issue = %+v", is)
	}

	clk.Add(time.Minute)
	ev.Context, ev.Count = json.RawMessage(`{"job_id":2}`), 5
	is, res, err = db.UpsertIssue(ctx, ev)
	if err != nil || res != IssueUpdated || is.Occurrences != 6 || !is.LastSeen.Equal(clk.Now()) || !is.FirstSeen.Equal(t0) || string(is.LastContext) != `{"job_id":2}` {
		t.Fatalf("update = %v %v %+v", res, err, is)
	}

	// An occurrence from the past counts but moves nothing back.
	old := ev
	old.At, old.Count, old.Context, old.Title = t0.Add(-time.Hour), 1, json.RawMessage(`{"job_id":0}`), "old title"
	is, _, err = db.UpsertIssue(ctx, old)
	if err != nil || is.Occurrences != 7 || !is.LastSeen.Equal(clk.Now()) || !is.FirstSeen.Equal(t0.Add(-time.Hour)) ||
		string(is.LastContext) != `{"job_id":2}` || is.Title != ev.Title {
		t.Fatalf("late occurrence = %+v, %v", is, err)
	}

	clk.Add(time.Minute)
	if err := db.ResolveIssue(ctx, is.ID, ResolvedByOperator); err != nil {
		t.Fatal(err)
	}
	if err := db.ResolveIssue(ctx, is.ID, ResolvedByAuto); err != nil {
		t.Fatalf("resolving again = %v", err)
	}
	got, err := db.IssueByID(ctx, is.ID)
	if err != nil || got.Status != IssueResolved || got.ResolvedBy != ResolvedByOperator || !got.ResolvedAt.Equal(clk.Now()) {
		t.Fatalf("resolved = %+v, %v", got, err)
	}

	// A regression reopens it.
	clk.Add(time.Minute)
	ev.Count = 0
	is, res, err = db.UpsertIssue(ctx, ev)
	if err != nil || res != IssueReopened || is.Status != IssueOpen || is.ReopenedCount != 1 || is.Occurrences != 8 ||
		!is.ResolvedAt.IsZero() || is.ResolvedBy != "" {
		t.Fatalf("reopen = %v %v %+v", res, err, is)
	}

	ok, err := db.ResolveIssueByFingerprint(ctx, ev.Fingerprint, ResolvedByAuto)
	if err != nil || !ok {
		t.Fatalf("resolve by fingerprint = %v %v", ok, err)
	}
	ok, err = db.ResolveIssueByFingerprint(ctx, ev.Fingerprint, ResolvedByAuto)
	if err != nil || ok {
		t.Fatalf("resolve by fingerprint again = %v %v, want false", ok, err)
	}
	ok, err = db.ResolveIssueByFingerprint(ctx, "never-seen", ResolvedByAuto)
	if err != nil || ok {
		t.Fatalf("resolve unknown fingerprint = %v %v", ok, err)
	}
	if err := db.ResolveIssue(ctx, 999, ResolvedByOperator); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolve missing = %v", err)
	}
	if _, err := db.IssueByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("IssueByID(missing) = %v", err)
	}
}

func TestUpsertIssueValidation(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	good := IssueEvent{Fingerprint: "fp", Source: SourceAIOutage, Title: "AI down"}
	for _, tc := range []struct {
		mutate func(*IssueEvent)
		field  string
	}{
		{func(e *IssueEvent) { e.Fingerprint = "" }, "IssueEvent.Fingerprint"},
		{func(e *IssueEvent) { e.Source = "cosmos" }, "IssueEvent.Source"},
		{func(e *IssueEvent) { e.Title = " " }, "IssueEvent.Title"},
		{func(e *IssueEvent) { e.Context = json.RawMessage("{") }, "IssueEvent.Context"},
		{func(e *IssueEvent) { e.Count = -1 }, "IssueEvent.Count"},
	} {
		ev := good
		tc.mutate(&ev)
		_, _, err := db.UpsertIssue(t.Context(), ev)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("UpsertIssue = %v, want FieldError %s", err, tc.field)
		}
	}
	if err := db.ResolveIssue(t.Context(), 1, "robot"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ResolveIssue(robot) = %v", err)
	}
}

func TestFindIssues(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	sources := []IssueSource{SourceJobFailure, SourceQueueHealth, SourceAIOutage, SourceScheduler}
	var ids []int64
	for i := range 12 {
		clk.Add(time.Second)
		is, _, err := db.UpsertIssue(ctx, IssueEvent{Fingerprint: string(rune('a' + i)), Source: sources[i%4], Title: "t"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, is.ID)
	}
	for _, id := range ids[:5] {
		if err := db.ResolveIssue(ctx, id, ResolvedByAuto); err != nil {
			t.Fatal(err)
		}
	}
	all, total, err := db.FindIssues(ctx, IssueFilter{})
	if err != nil || total != 12 || len(all) != 12 || all[0].ID != ids[11] || all[11].ID != ids[0] {
		t.Fatalf("all issues: %d %v, first %d", total, err, all[0].ID)
	}
	open, total, err := db.FindIssues(ctx, IssueFilter{Status: IssueOpen, Limit: 3})
	if err != nil || total != 7 || len(open) != 3 || open[0].ID != ids[11] {
		t.Fatalf("open page: %d %d %v", total, len(open), err)
	}
	ai, total, err := db.FindIssues(ctx, IssueFilter{Source: SourceAIOutage, Status: IssueResolved})
	if err != nil || total != 1 || ai[0].ID != ids[2] {
		t.Fatalf("resolved AI outages: %d %v", total, err)
	}
	page, _, _ := db.FindIssues(ctx, IssueFilter{Offset: 10, Limit: 5})
	if len(page) != 2 {
		t.Fatalf("last page has %d", len(page))
	}
	for _, f := range []IssueFilter{{Status: "closed"}, {Source: "x"}, {Limit: 5000}, {Offset: -1}} {
		_, _, err := db.FindIssues(ctx, f)
		var fe *FilterError
		if !errors.As(err, &fe) {
			t.Errorf("FindIssues(%+v) = %v, want FilterError", f, err)
		}
	}
}
