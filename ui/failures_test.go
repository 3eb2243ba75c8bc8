package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/ops/failures"
	"conveyor/ops/fault"
)

// failureRig is a server with the failure pipeline's parts over a real
// SQLite database beside the rig's store.
type failureRig struct {
	*rig
	db      *data.DB
	tracker *failures.Tracker
}

func newFailureRig(t *testing.T, cfgs ...func(*Config)) *failureRig {
	t.Helper()
	db := openTestDB(t)
	tracker, err := failures.NewTracker(failures.TrackerOptions{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tracker.Close)
	r := newRig(t, rigOpts{cfg: func(c *Config) {
		rt, err := failures.NewRetrier(failures.RetrierOptions{DB: db, Store: c.Store, Registry: c.Registry, Topology: c.Topology})
		if err != nil {
			t.Fatal(err)
		}
		c.FailuresConfig = FailuresConfig{FailuresDB: db, Retrier: rt, IssueTracker: tracker, RetryAllLimit: 3}
		for _, f := range cfgs {
			f(c)
		}
	}})
	return &failureRig{rig: r, db: db, tracker: tracker}
}

func (r *failureRig) insert(fs ...*data.Failure) {
	r.t.Helper()
	for _, f := range fs {
		if f.Kind == "" {
			f.Kind = fault.Transient
		}
		if f.Queue == "" {
			f.Queue = "default"
		}
	}
	if err := r.db.InsertFailures(r.t.Context(), fs); err != nil {
		r.t.Fatal(err)
	}
}

// goldenFailures are failures as the store returns them, for the goldens.
var goldenFailures = []*data.Failure{
	{ID: 41, JobID: 1207, Class: "ProfileRefreshJob", Queue: "profiles", Kind: fault.Transient, Retryable: true,
		ErrorClass: "bridge.StatusError", ErrorMessage: "503 from bridge: <html>Service Unavailable</html> " + strings.Repeat("x", 400),
		Args: json.RawMessage(`{"profile_id":12,"note":"<b>hi</b>"}`), Backtrace: "*fmt.wrapError: fetch: 503\n*bridge.StatusError: 503",
		AccountID: 7, ProfileID: 12, Attempt: 3, OccurredAt: t0.Add(1340 * time.Millisecond), Fingerprint: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Retry: data.RetryState{Status: data.RetryQueued, Attempts: 1, LastRetriedAt: t0.Add(time.Hour), JobID: 1207}},
	{ID: 42, JobID: 1300, Class: "AvatarDownloadJob", Queue: "avatars", Kind: fault.Authentication,
		ErrorClass: "Error", ErrorMessage: "session expired", PipelineID: 5, Step: "download", Attempt: 1, Recovered: true,
		OccurredAt: t0, Fingerprint: "aa", Retry: data.RetryState{Status: data.RetryRefused, Reason: "authentication failures are never retried"},
		Args: json.RawMessage(`{"truncated_by_conveyor":true,"bytes":70000,"prefix":"{\"blob\":\"aaaa"}`)},
}

func TestFailureViewGolden(t *testing.T) {
	t.Parallel()
	golden(t, "failures_list_item", failureView(goldenFailures[0], false))
	golden(t, "failures_detail", failureView(goldenFailures[0], true))
	golden(t, "failures_detail_refused", failureView(goldenFailures[1], true))
	for _, f := range goldenFailures {
		for _, detail := range []bool{false, true} {
			if strings.Contains(string(mustJSON(t, failureView(f, detail))), "<") {
				t.Error("the view's JSON holds an unescaped <")
			}
		}
	}
	golden(t, "failures_issue", issueView(&data.Issue{ID: 3, Fingerprint: "0f1e", Source: data.SourceJobFailure, Kind: "transient",
		Title: "bridge.StatusError in ProfileRefreshJob: 503 from bridge", Class: "ProfileRefreshJob", Queue: "profiles",
		Occurrences: 17, FirstSeen: t0, LastSeen: t0.Add(time.Hour), LastContext: json.RawMessage(`{"failure_id":41}`),
		Status: data.IssueResolved, ResolvedAt: t0.Add(2 * time.Hour), ResolvedBy: data.ResolvedByOperator, ReopenedCount: 1}))
	golden(t, "failures_issue_open", issueView(&data.Issue{ID: 4, Fingerprint: "9a", Source: data.SourceQueueHealth, Kind: "latency",
		Title: "Queue sync is degraded", Queue: "sync", Occurrences: 1, FirstSeen: t0, LastSeen: t0, Status: data.IssueOpen}))
}

func TestListFailuresAPI(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	base := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 7 {
		r.insert(&data.Failure{JobID: uint64(100 + i), Class: []string{"SyncJob", "MailJob"}[i%2], Queue: "sync",
			ErrorClass: "Error", ErrorMessage: fmt.Sprintf("upstream %d refused", i), Retryable: true,
			OccurredAt: base.Add(time.Duration(i) * time.Second), Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	page := into[failurePageJSON](t, r.call("GET", "/api/v1/failures?size=3&page=2&filter[0][field]=class&filter[0][value]=SyncJob", ""), http.StatusOK)
	if page.Total != 4 || page.LastPage != 2 || len(page.Data) != 1 || page.Data[0].JobID != 100 {
		t.Errorf("page %+v", page)
	}
	page = into[failurePageJSON](t, r.call("GET", "/api/v1/failures?sort[0][field]=id&sort[0][dir]=asc&q=upstream+5", ""), http.StatusOK)
	if page.Total != 1 || page.Data[0].JobID != 105 || page.Data[0].Args != nil || page.Data[0].Backtrace != nil {
		t.Errorf("search %+v", page)
	}
	page = into[failurePageJSON](t, r.call("GET", "/api/v1/failures?q=%22n%22:3", ""), http.StatusOK)
	if page.Total != 1 || page.Data[0].JobID != 103 {
		t.Errorf("search in args %+v", page)
	}
	// A value is a value, never SQL.
	inj := url.Values{"filter[0][field]": {"class"}, "filter[0][value]": {"x' OR '1'='1"}}
	page = into[failurePageJSON](t, r.call("GET", "/api/v1/failures?"+inj.Encode(), ""), http.StatusOK)
	if page.Total != 0 || len(page.Data) != 0 || page.LastPage != 1 {
		t.Errorf("injection %+v", page)
	}
	wantError(t, r.call("GET", "/api/v1/failures?filter[0][field]=password&filter[0][value]=x", ""), http.StatusBadRequest, "filter[0][field]")
	wantError(t, r.call("GET", "/api/v1/failures?order=id", ""), http.StatusBadRequest, "order")

	detail := into[failureJSON](t, r.call("GET", "/api/v1/failures/1", ""), http.StatusOK)
	if detail.ID != 1 || string(detail.Args) != `{"n":0}` || detail.Backtrace == nil || detail.ArgsTruncated == nil || *detail.ArgsTruncated {
		t.Errorf("detail %+v", detail)
	}
	wantError(t, r.call("GET", "/api/v1/failures/999", ""), http.StatusNotFound, "id")
	wantError(t, r.call("GET", "/api/v1/failures/abc", ""), http.StatusBadRequest, "id")
}

func TestRetryFailureAPI(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	now := time.Now()
	r.insert(
		&data.Failure{JobID: 9001, Class: "NoopJob", Retryable: true, ErrorMessage: "down", OccurredAt: now},
		&data.Failure{JobID: 9002, Class: "NoopJob", Kind: fault.Authentication, ErrorMessage: "down", OccurredAt: now},
	)
	ok := into[retriedJSON](t, r.call("POST", "/api/v1/failures/1/retry", ""), http.StatusOK)
	if ok.FailureID != 1 || ok.Status != "queued" || ok.JobID == 0 || ok.Revived || ok.Attempts != 1 {
		t.Errorf("retry %+v", ok)
	}
	if j, err := r.store.Get(ok.JobID); err != nil || j.Class != "NoopJob" || j.Context[failures.CtxRetryOf] != "1" {
		t.Errorf("retry job %+v %v", j, err)
	}
	for _, c := range []struct {
		id     int
		reason failures.RefusalReason
	}{{1, failures.RefusedAlreadyRetried}, {2, failures.RefusedAuthentication}} {
		rp := r.call("POST", fmt.Sprintf("/api/v1/failures/%d/retry", c.id), "")
		ref := into[refusedJSON](t, rp, http.StatusConflict)
		if ref.Reason != string(c.reason) || ref.Field != "id" || !strings.HasPrefix(ref.Error, "retry refused: ") {
			t.Errorf("failure %d: %+v", c.id, ref)
		}
	}
	wantError(t, r.call("POST", "/api/v1/failures/77/retry", ""), http.StatusNotFound, "id")
	wantError(t, r.call("POST", "/api/v1/failures/x/retry", ""), http.StatusBadRequest, "id")
}

func TestRetryMatchingAPI(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	now := time.Now()
	for i := range 4 {
		r.insert(&data.Failure{JobID: uint64(7000 + i), Class: "NoopJob", Retryable: true, ErrorMessage: "api down", OccurredAt: now})
	}
	r.insert(&data.Failure{JobID: 7100, Class: "NoopJob", Kind: fault.Authentication, ErrorMessage: "api down", OccurredAt: now})
	r.insert(&data.Failure{JobID: 7101, Class: "SleepJob", Retryable: true, ErrorMessage: "api down", OccurredAt: now})

	filter := "filter[0][field]=class&filter[0][value]=NoopJob&q=api&page=1&size=10&sort[0][field]=id"
	res := into[retryAllJSON](t, r.call("POST", "/api/v1/failures/retry?"+filter, ""), http.StatusOK)
	if res.Examined != 3 || res.Queued != 3 || !res.More || res.Next != 3 || res.Until != 6 {
		t.Errorf("first request %+v", res)
	}
	// Continue, with the parameters in a form body this time.
	req, _ := http.NewRequest("POST", r.ts.URL+"/api/v1/failures/retry", strings.NewReader(filter+"&after_id=3&until_id=6"))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res = into[retryAllJSON](t, r.do(req), http.StatusOK)
	if res.Examined != 2 || res.Queued != 1 || res.Refused != 1 || res.Reasons["authentication"] != 1 || res.More || res.Until != 6 {
		t.Errorf("second request %+v", res)
	}
	wantError(t, r.call("POST", "/api/v1/failures/retry?after_id=-4", ""), http.StatusBadRequest, "after_id")
	// Going on needs the bound of the walk, or it would take in the
	// failures of its own retries.
	wantError(t, r.call("POST", "/api/v1/failures/retry?after_id=3", ""), http.StatusBadRequest, "until_id")
	wantError(t, r.call("POST", "/api/v1/failures/retry?after_id=3&until_id=x", ""), http.StatusBadRequest, "until_id")
	wantError(t, r.call("POST", "/api/v1/failures/retry?filter[0][field]=nope&filter[0][value]=1", ""), http.StatusBadRequest, "filter[0][field]")
}

func TestFailuresNotConfigured(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/failures"}, {"GET", "/api/v1/failures/1"}, {"POST", "/api/v1/failures/1/retry"},
		{"POST", "/api/v1/failures/retry"}, {"GET", "/api/v1/issues"}, {"POST", "/api/v1/issues/1/resolve"},
	} {
		wantError(t, r.call(c.method, c.path, ""), http.StatusServiceUnavailable, "")
	}
}

func TestFailureContractRoutes(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	have := map[string]bool{}
	for _, rt := range r.srv.Routes() {
		have[rt.Method+" "+rt.Path] = true
	}
	for _, want := range []string{"GET /api/v1/failures", "GET /api/v1/failures/:id", "POST /api/v1/failures/:id/retry",
		"POST /api/v1/failures/retry", "GET /api/v1/issues", "POST /api/v1/issues/:id/resolve"} {
		if !have[want] {
			t.Errorf("route table lacks %s", want)
		}
	}
}

// TestListFailuresBounded: a list query is bounded by QueryTimeout (a 503
// that says what to do), and a request its client gave up on is logged as
// cancelled, never as a server error.
func TestListFailuresBounded(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	r := newFailureRig(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r.insert(&data.Failure{JobID: 1, Class: "NoopJob", ErrorMessage: "down"})

	// The client is gone before the query runs.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/failures?sort[0][field]=class&sort[1][field]=queue", nil)
	req.Host = r.host
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	r.srv.ServeHTTP(rec, req)
	if rec.Code < 400 {
		t.Errorf("a cancelled request answered %d", rec.Code)
	}
	if out := logs.String(); strings.Contains(out, "level=ERROR") || !strings.Contains(out, "cancelled") {
		t.Errorf("a cancelled request was logged as:\n%s", out)
	}

	slow := newFailureRig(t, func(c *Config) { c.FailuresConfig.QueryTimeout = time.Nanosecond })
	e := wantError(t, slow.call("GET", "/api/v1/failures?sort[0][field]=class", ""), http.StatusServiceUnavailable, "")
	if !strings.Contains(e.Error, "narrow the filter") {
		t.Errorf("timed-out query: %+v", e)
	}
}

// TestRetryMatchingBodies: the filter of POST /api/v1/failures/retry comes in
// the query string, a form or a JSON body; a JSON body was ignored (and
// everything retried), so any body the endpoint cannot read is refused
// with 415 before anything is retried.
func TestRetryMatchingBodies(t *testing.T) {
	t.Parallel()
	post := func(r *failureRig, ctype, body string) reply {
		req, _ := http.NewRequest("POST", r.ts.URL+"/api/v1/failures/retry", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		return r.do(req)
	}
	setup := func(t *testing.T) *failureRig {
		r := newFailureRig(t, func(c *Config) { c.FailuresConfig.RetryAllLimit = 100 })
		now := time.Now()
		for i := range 3 {
			r.insert(&data.Failure{JobID: uint64(7000 + i), Class: "NoopJob", Retryable: true, ErrorMessage: "api down", OccurredAt: now})
		}
		r.insert(&data.Failure{JobID: 7101, Class: "SleepJob", Retryable: true, ErrorMessage: "api down", OccurredAt: now, Attempt: 2,
			Args: json.RawMessage(`{"ms":1}`)})
		return r
	}
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		res := into[retryAllJSON](t, post(r, "application/json",
			`{"filter":[{"field":"class","type":"=","value":"SleepJob"},{"field":"attempt","type":"in","value":[2,3]}],"q":"down","page":1,"size":10}`), http.StatusOK)
		if res.Examined != 1 || res.Queued != 1 || res.More {
			t.Errorf("JSON filter on SleepJob: %+v, want only its one failure", res)
		}
		res = into[retryAllJSON](t, post(r, "application/json; charset=utf-8", `{"filter":[{"field":"class","value":"NoopJob"}],"after_id":1,"until_id":4}`), http.StatusOK)
		if res.Examined != 2 || res.Queued != 2 || res.Until != 4 {
			t.Errorf("JSON continuation: %+v", res)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		for _, c := range []struct{ ctype, body, field string }{
			{"application/json", `{"filter":[{"field":"class","value":"SleepJob"}],"Filter":[]}`, "Filter"},
			{"application/json", `{"filter":{"field":"class"}}`, "filter"},
			{"application/json", `{"filter":[{"field":"class","value":{"x":1}}]}`, "filter[0][value]"},
			{"application/json", `{"filter":[{"field":"class","value":"SleepJob"}]} {}`, ""},
			{"application/json", `{"after_id":2}`, "until_id"},
		} {
			wantError(t, post(r, c.ctype, c.body), http.StatusBadRequest, c.field)
		}
		for _, c := range []struct{ ctype, body string }{
			{"text/plain", "filter[0][field]=class&filter[0][value]=SleepJob"},
			{"", "filter[0][field]=class&filter[0][value]=SleepJob"},
			{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\ndown\r\n--x--\r\n"},
			{"application/xml", "<filter/>"},
		} {
			wantError(t, post(r, c.ctype, c.body), http.StatusUnsupportedMediaType, "Content-Type")
		}
		// Nothing was retried by any of them.
		fs, _, err := r.db.FindFailures(t.Context(), data.FailureFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Retry.Status != data.RetryNone {
				t.Errorf("failure %d was retried by a refused request: %+v", f.ID, f.Retry)
			}
		}
	})
}
