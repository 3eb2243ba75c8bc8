package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"conveyor/data"
	"conveyor/queue"
)

// xss are payloads that would run if any page put job data into markup.
var xss = []string{`<script>window.__xss=1</script>`, `"><img src=x onerror=window.__xss=1>`, `'><svg onload=window.__xss=1>`}

func TestPagesEscapeJobData(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	ctx := t.Context()
	args, _ := json.Marshal(map[string]string{"a": xss[0], "b": xss[1], "c": xss[2]})
	res, err := r.store.Enqueue(ctx, queue.NewJob{Class: "FailJob", Queue: "default", Args: args, MaxAttempts: 1,
		Context: map[string]string{"note": xss[1]}, UniqueKey: xss[2]})
	if err != nil {
		t.Fatal(err)
	}
	r.insert(&data.Failure{JobID: res.ID, Class: "FailJob", Queue: "default", Retryable: true, Attempt: 1, OccurredAt: r.srv.now(),
		ErrorClass: "Boom" + xss[0], ErrorMessage: xss[1] + xss[0], Fingerprint: "fp-" + xss[1], Args: args})
	if _, _, err := r.db.UpsertIssue(ctx, data.IssueEvent{Fingerprint: "fp-" + xss[1], Source: data.SourceJobFailure, Kind: "runtime",
		Title: "Boom " + xss[0], Class: "FailJob", Queue: "default", At: r.srv.now()}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/admin/background_jobs", "/admin/background_jobs/failures", fmt.Sprintf("/admin/jobs/%d", res.ID),
		"/admin/jobs?state=ready", "/admin/background_jobs?panel=issues", "/admin/background_jobs/failures?panel=groups"} {
		rp := r.call("GET", path, "")
		if rp.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rp.status, rp.body)
		}
		body := string(rp.body)
		for _, p := range xss {
			if strings.Contains(body, p) {
				t.Errorf("%s carries %q unescaped", path, p)
			}
		}
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<svg onload") || strings.Contains(body, "<script>window") {
			t.Errorf("%s carries markup from job data", path)
		}
	}
	page := string(r.call("GET", fmt.Sprintf("/admin/jobs/%d", res.ID), "").body)
	if !strings.Contains(page, "&lt;script&gt;window.__xss=1&lt;/script&gt;") {
		t.Errorf("the job page does not show the args as text")
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	ctx := t.Context()
	args := json.RawMessage(`{"user":"ann","Password":"hunter2","nested":{"api_token":"tok-123","list":[{"client_secret":"s3"}]},"n":12345678901234567890}`)
	res, err := r.store.Enqueue(ctx, queue.NewJob{Class: "FailJob", Queue: "default", Args: args,
		Context: map[string]string{"session_cookie": "c00k1e", "account_id": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	r.insert(&data.Failure{ID: 0, JobID: res.ID, Class: "FailJob", Queue: "default", Retryable: true, Attempt: 1, OccurredAt: r.srv.now(),
		ErrorClass: "E", ErrorMessage: "m", Fingerprint: "f", Args: args})
	secrets := []string{"hunter2", "tok-123", "s3\"", "c00k1e"}
	for _, path := range []string{fmt.Sprintf("/api/v1/jobs/%d", res.ID), "/api/v1/jobs?state=ready", "/api/v1/failures/1",
		fmt.Sprintf("/admin/jobs/%d", res.ID), "/api/v1/dashboard"} {
		body := string(r.call("GET", path, "").body)
		for _, sec := range secrets {
			if strings.Contains(body, sec) {
				t.Errorf("%s shows %q", path, sec)
			}
		}
	}
	var j jobJSON
	if err := json.Unmarshal(r.call("GET", fmt.Sprintf("/api/v1/jobs/%d", res.ID), "").body, &j); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j.Args), `"user":"ann"`) || !strings.Contains(string(j.Args), `12345678901234567890`) ||
		!strings.Contains(string(j.Args), `"Password":"[redacted]"`) || j.Context["account_id"] != "7" || j.Context["session_cookie"] != Redacted {
		t.Errorf("redacted job: args %s context %v", j.Args, j.Context)
	}
	// The store keeps the real values: a retry runs with them.
	if stored, _ := r.store.Get(res.ID); !strings.Contains(string(stored.Args), "hunter2") {
		t.Errorf("the store lost the args: %s", stored.Args)
	}
	// Redaction by configuration: none.
	none := newRig(t, rigOpts{cfg: func(c *Config) { c.Redact = []string{} }})
	id := none.enqueue(`{"class":"NoopJob","args":{"password":"visible"}}`)
	if body := string(none.call("GET", fmt.Sprintf("/api/v1/jobs/%d", id), "").body); !strings.Contains(body, "visible") {
		t.Errorf("an empty redact list still redacts: %s", body)
	}
}

func TestRedactor(t *testing.T) {
	t.Parallel()
	rd := newRedactor(DefaultRedact)
	for _, c := range []struct{ in, want string }{
		{`null`, `null`},
		{`[1,2]`, `[1,2]`},
		{`{"a": 1}`, `{"a": 1}`},
		{`{"token":1}`, `{"token":"[redacted]"}`},
		{`[{"MySecretKey":{"x":1}}]`, `[{"MySecretKey":"[redacted]"}]`},
		{`{"a":1.50,"password":"x"}`, `{"a":1.50,"password":"[redacted]"}`},
		{`{"broken":`, `{"broken":`},
	} {
		if got := string(rd.json(json.RawMessage(c.in))); got != c.want {
			t.Errorf("redact %s = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestPanelFragments(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{pool: true})
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/admin/background_jobs?panel=queues", `data-panel="queues"`, 200},
		{"/admin/background_jobs?panel=lanes", `data-panel="lanes"`, 200},
		{"/admin/background_jobs?panel=banner", `data-panel="banner"`, 200},
		{"/admin/background_jobs?panel=quiet", `data-panel="quiet"`, 200},
		{"/admin/background_jobs?panel=nope", ``, 400},
		{"/admin/jobs?panel=jobs&state=dead", `data-panel="jobs"`, 200},
		{"/admin/background_jobs/failures?panel=groups", `data-panel="groups"`, 200},
		{"/admin/accounts?panel=profiles", `data-panel="profiles"`, 200},
	} {
		rp := r.call("GET", c.path, "")
		if rp.status != c.status || !strings.Contains(string(rp.body), c.want) {
			t.Errorf("%s: %d %s", c.path, rp.status, rp.body)
			continue
		}
		if c.status == 200 && strings.Contains(string(rp.body), "<html") {
			t.Errorf("%s: a fragment carries the whole page", c.path)
		}
	}
	if rp := r.call("GET", "/admin/jobs?state=sideways", ""); rp.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown state: %d", rp.status)
	}
	if rp := r.call("GET", "/admin/jobs/999999", ""); rp.status != http.StatusNotFound || !strings.Contains(string(rp.body), "No job #999999") {
		t.Errorf("unknown job page: %d", rp.status)
	}
}

func TestStaticFiles(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	for _, name := range []string{"app.css", "live.js", "vendor/tabulator.min.js", "vendor/uPlot.iife.min.js", "vendor/tabulator.LICENSE", "vendor/uPlot.LICENSE"} {
		f := r.srv.pages.static[name]
		rp := r.send("GET", "/static/"+name+"?v="+f.hash, "", "")
		if rp.status != http.StatusOK || len(rp.body) != len(f.body) || !strings.Contains(rp.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d, %d bytes, %q", name, rp.status, len(rp.body), rp.header.Get("Cache-Control"))
		}
	}
	if rp := r.send("GET", "/static/../server.go", "", ""); rp.status != http.StatusNotFound && rp.status != http.StatusUnauthorized {
		t.Errorf("a path out of the static files: %d", rp.status)
	}
	if rp := r.send("GET", "/static/nope.js", "", ""); rp.status != http.StatusNotFound {
		t.Errorf("a missing file: %d", rp.status)
	}
}

// TestPageLinksCarryTheirQuery: links built with the templates' query
// helper keep their "=" and "&" — html/template query-escapes a plain
// string after "?", which turned /admin/jobs?state=ready&queue=sync into
// /admin/jobs?queue%3dsync%26state%3dready, a link that filters nothing.
func TestPageLinksCarryTheirQuery(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{pool: true})
	for _, c := range []struct{ path, want string }{
		{"/admin/background_jobs?panel=queues", `href="/admin/jobs?queue=default&amp;state=ready"`},
	} {
		rp := r.call("GET", c.path, "")
		if rp.status != http.StatusOK || !strings.Contains(string(rp.body), c.want) {
			t.Errorf("%s: %d, want %s in\n%s", c.path, rp.status, c.want, rp.body)
		}
	}
	if rp := r.call("GET", "/admin/accounts?profiles_page=0", ""); rp.status != http.StatusBadRequest {
		t.Errorf("profiles_page=0: %d", rp.status)
	}
}
