package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"conveyor/lanes"
	"conveyor/queue"
)

func TestGetJob(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	id := r.enqueue(`{"class":"NoopJob","queue":"sync","args":{"html":"<script>alert(1)</script>"},"unique_key":"u","context":{"account_id":"9"}}`)
	rp := r.call("GET", fmt.Sprintf("/api/v1/jobs/%d", id), "")
	j := into[map[string]any](t, rp, http.StatusOK)
	for _, k := range []string{"id", "class", "queue", "lane", "state", "attempt", "max_attempts", "args", "run_at",
		"created_at", "started_at", "finished_at", "lease_until", "unique_key", "context", "orphans", "errors", "timeline"} {
		if _, ok := j[k]; !ok {
			t.Errorf("job JSON lacks %q: %s", k, rp.body)
		}
	}
	if j["id"] != float64(id) || j["class"] != "NoopJob" || j["queue"] != "sync" || j["lane"] != "default" ||
		j["state"] != "ready" || j["started_at"] != nil || j["unique_key"] != "u" {
		t.Errorf("job %s", rp.body)
	}
	if strings.Contains(string(rp.body), "<script>") {
		t.Errorf("job data is not escaped: %s", rp.body)
	}
	if args := j["args"].(map[string]any); args["html"] != "<script>alert(1)</script>" {
		t.Errorf("args do not round-trip: %v", args)
	}
	wantError(t, r.call("GET", "/api/v1/jobs/999999", ""), http.StatusNotFound, "id")
	wantError(t, r.call("GET", "/api/v1/jobs/abc", ""), http.StatusBadRequest, "id")
	wantError(t, r.call("GET", "/api/v1/jobs/-1", ""), http.StatusBadRequest, "id")
}

func TestListJobs(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	var ids []uint64
	for range 5 {
		ids = append(ids, r.enqueue(`{"class":"NoopJob"}`))
	}
	for range 2 {
		ids = append(ids, r.enqueue(`{"class":"SleepJob","queue":"sync","args":{"ms":1}}`))
	}
	r.enqueue(`{"class":"NoopJob","in_seconds":600}`)

	// Walk every ready job, two at a time, by cursor.
	var seen []uint64
	path := "/api/v1/jobs?state=ready&size=2"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("cursor never ends")
		}
		l := into[listJSON](t, r.call("GET", path, ""), http.StatusOK)
		if l.Total == nil || *l.Total != 7 {
			t.Fatalf("total %v, want 7", l.Total)
		}
		for _, j := range l.Jobs {
			seen = append(seen, j.ID)
			if j.Timeline != nil {
				t.Errorf("list item carries a timeline")
			}
		}
		if l.Next == nil {
			break
		}
		path = "/api/v1/jobs?state=ready&size=2&cursor=" + *l.Next
	}
	if len(seen) != 7 {
		t.Errorf("walked %v, want the 7 ready jobs %v", seen, ids)
	}

	l := into[listJSON](t, r.call("GET", "/api/v1/jobs?state=ready&queue=sync", ""), http.StatusOK)
	if len(l.Jobs) != 2 || l.Total == nil || *l.Total != 2 || l.Next != nil || l.Jobs[0].Lane != "default" {
		t.Errorf("queue filter: %+v", l)
	}
	rp := r.call("GET", "/api/v1/jobs?state=ready&class=SleepJob", "")
	l = into[listJSON](t, rp, http.StatusOK)
	if len(l.Jobs) != 2 || l.Total != nil || !strings.Contains(string(rp.body), `"total":null`) {
		t.Errorf("class filter: %s", rp.body)
	}
	l = into[listJSON](t, r.call("GET", "/api/v1/jobs?state=scheduled&page=1", ""), http.StatusOK)
	if len(l.Jobs) != 1 || *l.Total != 1 || l.Jobs[0].State != "scheduled" {
		t.Errorf("scheduled: %+v", l)
	}
	rp = r.call("GET", "/api/v1/jobs?state=dead", "")
	if l = into[listJSON](t, rp, http.StatusOK); len(l.Jobs) != 0 || !strings.Contains(string(rp.body), `"jobs":[]`) {
		t.Errorf("empty list: %s", rp.body)
	}

	for _, c := range []struct {
		query  string
		status int
		field  string
	}{
		{"", 422, "state"},
		{"state=", 422, "state"},
		{"state=failed", 422, "state"},
		{"state=ready&size=0", 422, "size"},
		{"state=ready&size=1001", 422, "size"},
		{"state=ready&size=ten", 422, "size"},
		{"state=ready&page=2", 422, "page"},
		{"state=ready&cursor=not-hex", 400, "cursor"},
	} {
		wantError(t, r.call("GET", "/api/v1/jobs?"+c.query, ""), c.status, c.field)
	}
}

// TestJobActions covers retry and discard on jobs that need no workers.
func TestJobActions(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	scheduled := r.enqueue(`{"class":"NoopJob","in_seconds":3600}`)
	ready := r.enqueue(`{"class":"NoopJob"}`)

	got := into[actionJSON](t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", scheduled), ""), http.StatusOK)
	if got.ID != scheduled || got.State != "ready" {
		t.Errorf("retry reply %+v", got)
	}
	if j, _ := r.store.Get(scheduled); j.State != queue.StateReady {
		t.Errorf("retried job is %s", j.State)
	}
	e := wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", ready), ""), http.StatusConflict, "id")
	if !strings.Contains(e.Error, "ready") {
		t.Errorf("message does not say the state: %q", e.Error)
	}

	rp := r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/discard", ready), "")
	if d := into[actionJSON](t, rp, http.StatusOK); d.ID != ready || !d.Discarded || !strings.Contains(string(rp.body), `"discarded":true`) {
		t.Errorf("discard reply %s", rp.body)
	}
	if _, err := r.store.Get(ready); err != queue.ErrNotFound {
		t.Errorf("discarded job: %v", err)
	}
	wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/discard", ready), ""), http.StatusNotFound, "id")
	wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", ready), ""), http.StatusNotFound, "id")
	wantError(t, r.call("POST", "/api/v1/jobs/x/retry", ""), http.StatusBadRequest, "id")
	wantError(t, r.call("POST", "/api/v1/jobs/x/discard", ""), http.StatusBadRequest, "id")
}

// TestJobActionsWithWorkers runs the lanes: a running job cannot be retried or
// discarded, a done one cannot be retried, a dead one can, and the detail's
// timeline tells the story.
func TestJobActionsWithWorkers(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{pool: true})

	sleeping := r.enqueue(`{"class":"SleepJob","args":{"ms":3600000}}`)
	r.waitFor(sleeping, "begun", func(j *queue.Job) bool { return j.State == queue.StateRunning && !j.LeaseUntil.IsZero() })
	wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/discard", sleeping), ""), http.StatusConflict, "id")
	wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", sleeping), ""), http.StatusConflict, "id")
	run := into[jobJSON](t, r.call("GET", fmt.Sprintf("/api/v1/jobs/%d", sleeping), ""), http.StatusOK)
	if run.State != "running" || run.Attempt != 1 || time.Time(run.LeaseUntil).IsZero() {
		t.Errorf("running job %+v", run)
	}
	if last := run.Timeline[len(run.Timeline)-1]; last.Event != eventStarted || !strings.HasPrefix(last.Detail, "running for ") {
		t.Errorf("running job's timeline ends with %+v", last)
	}

	done := r.enqueue(`{"class":"NoopJob"}`)
	r.waitState(done, queue.StateDone)
	wantError(t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", done), ""), http.StatusConflict, "id")

	failing := r.enqueue(`{"class":"FailJob","args":{"message":"503 from bridge"},"max_attempts":1}`)
	r.waitState(failing, queue.StateDead)
	dead := into[jobJSON](t, r.call("GET", fmt.Sprintf("/api/v1/jobs/%d", failing), ""), http.StatusOK)
	var events []string
	for _, e := range dead.Timeline {
		events = append(events, e.Event)
	}
	if got := strings.Join(events, " → "); got != "enqueued → started → failed → dead" {
		t.Errorf("dead job's timeline: %s", got)
	}
	if len(dead.Errors) != 1 || dead.Errors[0].Message != "503 from bridge" || dead.Timeline[3].Detail != "out of attempts (1 of 1)" {
		t.Errorf("dead job %+v", dead)
	}
	into[actionJSON](t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", failing), ""), http.StatusOK)
	again := r.waitFor(failing, "dead after its extra attempt", func(j *queue.Job) bool { return j.State == queue.StateDead && j.Attempt == 2 })
	if len(again.Errors) != 2 {
		t.Errorf("errors after the retry: %+v", again.Errors)
	}
	into[actionJSON](t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/discard", failing), ""), http.StatusOK)
}

// TestListShowsLanes checks that the topology decides the lane shown for each
// listed job, and that a queue no lane serves shows none.
func TestListShowsLanes(t *testing.T) {
	t.Parallel()
	ai := lanes.Class{Name: "AnalyzeJob", Queue: "ai_visual_queue", Args: lanes.FreeForm,
		Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })}
	r := newRig(t, rigOpts{classes: []lanes.Class{ai}})
	r.enqueue(`{"class":"AnalyzeJob","args":{"media_id":1}}`)
	// A job the store holds in a queue no lane serves (enqueued by older code).
	if _, err := r.store.Enqueue(context.Background(), queue.NewJob{Class: "OldJob", Queue: "retired", Args: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	l := into[listJSON](t, r.call("GET", "/api/v1/jobs?state=ready", ""), http.StatusOK)
	lanesOf := map[string]string{}
	for _, j := range l.Jobs {
		lanesOf[j.Queue] = j.Lane
	}
	if lanesOf["ai_visual_queue"] != "ai_visual_queue" || lanesOf["retired"] != "" || len(lanesOf) != 2 {
		t.Errorf("lanes %v", lanesOf)
	}
}
