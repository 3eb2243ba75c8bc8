package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"conveyor/data"
	"conveyor/ops/failures"
)

func TestIssuesAPI(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	ctx := t.Context()
	for _, p := range []failures.Problem{
		{Source: data.SourceQueueHealth, Subject: "sync", Kind: "latency", Title: "Queue sync is slow", Queue: "sync"},
		{Source: data.SourceAIOutage, Subject: "local_ai", Kind: "down", Title: "Local AI is down"},
	} {
		if _, _, err := r.tracker.Raise(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	page := into[issuePageJSON](t, r.call("GET", "/api/v1/issues", ""), http.StatusOK)
	if page.Total != 2 || len(page.Data) != 2 || page.LastPage != 1 {
		t.Fatalf("issues %+v", page)
	}
	page = into[issuePageJSON](t, r.call("GET", "/api/v1/issues?source=queue_health&status=open&size=1", ""), http.StatusOK)
	if page.Total != 1 || page.Data[0].Queue != "sync" {
		t.Fatalf("filtered issues %+v", page)
	}
	id := page.Data[0].ID
	res := into[issueJSON](t, r.call("POST", fmt.Sprintf("/api/v1/issues/%d/resolve", id), ""), http.StatusOK)
	if res.Status != "resolved" || res.ResolvedBy == nil || *res.ResolvedBy != "operator" {
		t.Errorf("resolved %+v", res)
	}
	page = into[issuePageJSON](t, r.call("GET", "/api/v1/issues?status=resolved", ""), http.StatusOK)
	if page.Total != 1 || page.Data[0].ID != id {
		t.Errorf("resolved issues %+v", page)
	}
	wantError(t, r.call("GET", "/api/v1/issues?status=closed", ""), http.StatusBadRequest, "status")
	wantError(t, r.call("GET", "/api/v1/issues?source=x", ""), http.StatusBadRequest, "source")
	wantError(t, r.call("GET", "/api/v1/issues?sort=id", ""), http.StatusBadRequest, "sort")
	wantError(t, r.call("POST", "/api/v1/issues/999/resolve", ""), http.StatusNotFound, "id")
}

// FuzzParseIssueQuery: the issues list's parameters never panic the parser,
// and what it accepts is a valid page.
func FuzzParseIssueQuery(f *testing.F) {
	for _, seed := range []string{"", "status=open", "source=queue_health&page=2&size=10", "status=closed", "size=0",
		"page=1000000&size=1000", "sort=id", "status=open&status=resolved"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		is, err := parseIssueQuery(q)
		if err != nil {
			if status, _, _ := classify(err); status != http.StatusBadRequest {
				t.Fatalf("%q: %v maps to %d", raw, err, status)
			}
			return
		}
		if is.Limit < 1 || is.Limit > 1000 || is.Offset < 0 || (is.Status != "" && is.Status != data.IssueOpen && is.Status != data.IssueResolved) ||
			(is.Source != "" && !is.Source.Valid()) {
			t.Fatalf("%q: accepted %+v", raw, is)
		}
	})
}
