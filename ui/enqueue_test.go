package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"conveyor/lanes"
	"conveyor/queue"
)

// syncClass is a class with its own queue and attempts, to see defaults apply.
var syncClass = lanes.Class{Name: "SyncAccountJob", Queue: "sync", MaxAttempts: 5, Args: lanes.FreeForm,
	Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })}

// strandedClass goes to a queue no lane serves.
var strandedClass = lanes.Class{Name: "StrandedJob", Queue: "nowhere", Args: lanes.NoArgs,
	Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{classes: []lanes.Class{syncClass}})
	start := time.Now()
	for _, c := range []struct {
		name, body string
		state      queue.State
		check      func(t *testing.T, j *queue.Job)
	}{
		{"class only goes to the class's queue", `{"class":"NoopJob"}`, queue.StateReady, func(t *testing.T, j *queue.Job) {
			if j.Queue != "default" || j.MaxAttempts != queue.DefaultMaxAttempts || j.Args != nil {
				t.Errorf("job %+v", j)
			}
		}},
		{"class defaults", `{"class":"SyncAccountJob","args":{"account_id":7}}`, queue.StateReady, func(t *testing.T, j *queue.Job) {
			if j.Queue != "sync" || j.MaxAttempts != 5 || string(j.Args) != `{"account_id":7}` {
				t.Errorf("job %+v", j)
			}
		}},
		{"every field", `{"class":"SleepJob","queue":"maintenance","args":{"ms":1},"max_attempts":3,
			"unique_key":"k-1","context":{"account_id":"42"}}`, queue.StateReady, func(t *testing.T, j *queue.Job) {
			if j.Queue != "maintenance" || j.MaxAttempts != 3 || j.UniqueKey != "k-1" || j.Context["account_id"] != "42" {
				t.Errorf("job %+v", j)
			}
		}},
		{"run_at in the future", `{"class":"NoopJob","run_at":"2199-01-02T03:04:05.5+02:00"}`, queue.StateScheduled, func(t *testing.T, j *queue.Job) {
			if want := time.Date(2199, 1, 2, 1, 4, 5, 5e8, time.UTC); !j.RunAt.Equal(want) {
				t.Errorf("run_at %v, want %v", j.RunAt, want)
			}
		}},
		{"run_at in the past runs now", `{"class":"NoopJob","run_at":"2001-01-01T00:00:00Z"}`, queue.StateReady, nil},
		{"in_seconds with a fraction", `{"class":"NoopJob","in_seconds":3600.25}`, queue.StateScheduled, func(t *testing.T, j *queue.Job) {
			if d := j.RunAt.Sub(start); d < 3600*time.Second || d > 3600*time.Second+time.Hour {
				t.Errorf("run_at %v is not about an hour after %v", j.RunAt, start)
			}
		}},
		{"in_seconds zero", `{"class":"NoopJob","in_seconds":0}`, queue.StateReady, nil},
		{"args null", `{"class":"NoopJob","args":null,"run_at":null}`, queue.StateReady, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := into[enqueuedJSON](t, r.call("POST", "/api/v1/jobs", c.body), http.StatusCreated)
			if got.State != c.state.String() || got.Duplicate {
				t.Fatalf("reply %+v, want state %s", got, c.state)
			}
			j, err := r.store.Get(got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != c.state {
				t.Errorf("stored state %s", j.State)
			}
			if c.check != nil {
				c.check(t, j)
			}
		})
	}
	t.Run("unique key held", func(t *testing.T) {
		first := into[enqueuedJSON](t, r.call("POST", "/api/v1/jobs", `{"class":"NoopJob","unique_key":"once"}`), http.StatusCreated)
		before := r.counts()
		rp := r.call("POST", "/api/v1/jobs", `{"class":"NoopJob","unique_key":"once","args":[1]}`)
		dup := into[enqueuedJSON](t, rp, http.StatusOK)
		if dup.ID != first.ID || !dup.Duplicate || dup.State != "ready" {
			t.Errorf("duplicate reply %+v (first %+v)", dup, first)
		}
		if !strings.Contains(string(rp.body), `"duplicate":true`) {
			t.Errorf("body %s", rp.body)
		}
		if after := r.counts(); !maps.Equal(before, after) {
			t.Errorf("a duplicate changed the counts: %v → %v", before, after)
		}
	})
}

// TestEnqueueErrors covers every way a single enqueue can be refused: the
// status, the field named, and that nothing was written.
func TestEnqueueErrors(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{
		classes: []lanes.Class{strandedClass},
		store:   queue.Options{MaxArgsBytes: 64},
		cfg:     func(c *Config) { c.MaxBodyBytes = 2048 },
	})
	manyContext := map[string]string{}
	for i := range 33 {
		manyContext[fmt.Sprintf("k%d", i)] = "v"
	}
	ctxJSON, _ := json.Marshal(manyContext)
	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"empty body", ``, 400, ""},
		{"cut short", `{"class":"NoopJob"`, 400, ""},
		{"syntax", `{"class":NoopJob}`, 400, ""},
		{"trailing data", `{"class":"NoopJob"} {"class":"NoopJob"}`, 400, ""},
		{"trailing garbage", `{"class":"NoopJob"} x`, 400, ""},
		{"not an object", `["NoopJob"]`, 400, ""},
		{"class of the wrong type", `{"class":1}`, 400, "class"},
		{"max_attempts a fraction", `{"class":"NoopJob","max_attempts":2.5}`, 400, "max_attempts"},
		{"run_at not a string", `{"class":"NoopJob","run_at":12}`, 400, "run_at"},
		{"context values are strings", `{"class":"NoopJob","context":{"a":1}}`, 400, "context"},
		{"in_seconds out of float range", `{"class":"NoopJob","in_seconds":1e999}`, 400, "in_seconds"},
		{"unknown field", `{"class":"NoopJob","klass":"x"}`, 400, "klass"},
		// Keys are matched case-sensitively: CLASS used to win over class
		// and run a SleepJob.
		{"a key differing in case", `{"class":"NoopJob","CLASS":"SleepJob","ARGS":{"ms":1}}`, 400, "CLASS"},
		{"a key in another case", `{"Class":"NoopJob"}`, 400, "Class"},
		{"a key given twice", `{"class":"NoopJob","class":"SleepJob"}`, 400, "class"},
		{"a context key given twice", `{"class":"NoopJob","context":{"a":"1","a":"2"}}`, 400, "context.a"},
		{"unique_for is not part of the contract", `{"class":"NoopJob","unique_for":5}`, 400, "unique_for"},
		{"oversized", `{"class":"NoopJob","args":"` + strings.Repeat("x", 4096) + `"}`, 413, ""},
		{"no class", `{}`, 422, "class"},
		{"unknown class", `{"class":"NoSuchJob"}`, 422, "class"},
		{"class typo in case", `{"class":"noopjob"}`, 422, "class"},
		{"unknown queue", `{"class":"NoopJob","queue":"defualt"}`, 422, "queue"},
		{"class queue served by no lane", `{"class":"StrandedJob"}`, 422, "queue"},
		{"bad queue name", `{"class":"NoopJob","queue":"a b"}`, 422, "queue"},
		{"bad time", `{"class":"NoopJob","run_at":"tomorrow"}`, 422, "run_at"},
		{"time without zone", `{"class":"NoopJob","run_at":"2030-01-01T00:00:00"}`, 422, "run_at"},
		{"empty time", `{"class":"NoopJob","run_at":""}`, 422, "run_at"},
		{"zero time", `{"class":"NoopJob","run_at":"0001-01-01T00:00:00Z"}`, 422, "run_at"},
		{"before 1970", `{"class":"NoopJob","run_at":"1969-12-31T23:59:59Z"}`, 422, "run_at"},
		{"past the store's clock range", `{"class":"NoopJob","run_at":"2999-01-01T00:00:00Z"}`, 422, "run_at"},
		{"both run_at and in_seconds", `{"class":"NoopJob","run_at":"2030-01-01T00:00:00Z","in_seconds":5}`, 422, "run_at"},
		{"negative in_seconds", `{"class":"NoopJob","in_seconds":-1}`, 422, "in_seconds"},
		{"in_seconds too far", `{"class":"NoopJob","in_seconds":1e12}`, 422, "in_seconds"},
		{"max_attempts zero", `{"class":"NoopJob","max_attempts":0}`, 422, "max_attempts"},
		{"max_attempts too many", `{"class":"NoopJob","max_attempts":1001}`, 422, "max_attempts"},
		{"args over the store's limit", `{"class":"NoopJob","args":"` + strings.Repeat("y", 100) + `"}`, 422, "args"},
		{"unique_key too long", `{"class":"NoopJob","unique_key":"` + strings.Repeat("u", 600) + `"}`, 422, "unique_key"},
		{"context too big", `{"class":"NoopJob","context":` + string(ctxJSON) + `}`, 422, "context"},
		{"an arg the class does not take", `{"class":"SleepJob","args":{"ms":15,"n":3}}`, 422, "args.n"},
		{"an arg of the wrong type", `{"class":"SleepJob","args":{"ms":"15"}}`, 422, "args.ms"},
		{"a required arg missing", `{"class":"SleepJob","args":{}}`, 422, "args.ms"},
		{"no args for a class that needs them", `{"class":"SleepJob"}`, 422, "args.ms"},
		{"an arg out of range", `{"class":"SleepJob","args":{"ms":-1}}`, 422, "args.ms"},
		{"args not an object", `{"class":"SleepJob","args":[15]}`, 422, "args"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := r.counts()
			e := wantError(t, r.call("POST", "/api/v1/jobs", c.body), c.status, c.field)
			if strings.Contains(e.Error, "main.") || strings.Contains(e.Error, "ui.") || strings.Contains(e.Error, "Go ") {
				t.Errorf("message names Go internals: %q", e.Error)
			}
			if after := r.counts(); !maps.Equal(before, after) {
				t.Errorf("counts changed: %v → %v", before, after)
			}
		})
	}
	if n := len(r.store.Queues()); n != 0 {
		t.Errorf("refused enqueues created %d queues", n)
	}
	e := wantError(t, r.call("POST", "/api/v1/jobs", `{"class":"noopjob"}`), 422, "class")
	if !strings.Contains(e.Error, `did you mean "NoopJob"`) {
		t.Errorf("no suggestion: %q", e.Error)
	}
	// The request: accepted before, it went dead on its first
	// attempt. Now the answer names the class and the field.
	e = wantError(t, r.call("POST", "/api/v1/jobs", `{"class":"SleepJob","args":{"ms":15,"n":3}}`), 422, "args.n")
	if !strings.Contains(e.Error, "SleepJob") || !strings.Contains(e.Error, "unknown arg") {
		t.Errorf("message %q does not name the class and what is wrong", e.Error)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{classes: []lanes.Class{syncClass}})
	got := into[batchJSON](t, r.call("POST", "/api/v1/jobs/batch", `{"jobs":[
		{"class":"NoopJob"},
		{"class":"SyncAccountJob","args":{"account_id":1},"unique_key":"acct-1"},
		{"class":"SleepJob","args":{"ms":5},"in_seconds":60}
	]}`), http.StatusCreated)
	if len(got.IDs) != 3 || got.Duplicates != nil {
		t.Fatalf("reply %+v", got)
	}
	for i, want := range []queue.State{queue.StateReady, queue.StateReady, queue.StateScheduled} {
		j, err := r.store.Get(got.IDs[i])
		if err != nil || j.State != want {
			t.Errorf("job %d: %v %v, want %s", i, j, err, want)
		}
	}
	rp := r.call("POST", "/api/v1/jobs/batch", `{"jobs":[{"class":"NoopJob"},{"class":"SyncAccountJob","unique_key":"acct-1"}]}`)
	again := into[batchJSON](t, rp, http.StatusCreated)
	if len(again.IDs) != 2 || again.IDs[1] != got.IDs[1] || len(again.Duplicates) != 1 || again.Duplicates[0] != 1 {
		t.Errorf("reply %s", rp.body)
	}
	allDup := into[batchJSON](t, r.call("POST", "/api/v1/jobs/batch", `{"jobs":[{"class":"SyncAccountJob","unique_key":"acct-1"}]}`), http.StatusOK)
	if len(allDup.IDs) != 1 || allDup.IDs[0] != got.IDs[1] || len(allDup.Duplicates) != 1 {
		t.Errorf("all-duplicate reply %+v", allDup)
	}
}

// TestBatchAllOrNothing: one bad job refuses the batch, names the job by index
// and leaves the store as it was.
func TestBatchAllOrNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{cfg: func(c *Config) { c.MaxBatchBytes = 1 << 20 }})
	r.enqueue(`{"class":"NoopJob"}`)
	good := `{"class":"NoopJob"},{"class":"SleepJob","args":{"ms":1}}`
	tooMany := `{"jobs":[` + strings.TrimSuffix(strings.Repeat(`{},`, MaxBatchJobs+1), ",") + `]}`
	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"unknown class", `{"jobs":[` + good + `,{"class":"NopJob"}]}`, 422, "jobs[2].class"},
		{"unknown queue", `{"jobs":[` + good + `,{"class":"NoopJob","queue":"x"}]}`, 422, "jobs[2].queue"},
		{"bad time", `{"jobs":[` + good + `,{"class":"NoopJob","run_at":"soon"}]}`, 422, "jobs[2].run_at"},
		{"store validation", `{"jobs":[` + good + `,{"class":"NoopJob","unique_key":"` + strings.Repeat("k", 600) + `"}]}`, 422, "jobs[2].unique_key"},
		{"bad args", `{"jobs":[` + good + `,{"class":"SleepJob","args":{"ms":1,"n":3}}]}`, 422, "jobs[2].args.n"},
		{"wrong type", `{"jobs":[` + good + `,{"class":["NoopJob"]}]}`, 400, "jobs[2].class"},
		{"unknown field", `{"jobs":[` + good + `,{"class":"NoopJob","prio":1}]}`, 400, "jobs[2].prio"},
		{"a key differing in case", `{"jobs":[` + good + `,{"class":"NoopJob","Class":"SleepJob"}]}`, 400, "jobs[2].Class"},
		{"jobs in another case", `{"Jobs":[` + good + `]}`, 400, "Jobs"},
		{"null job", `{"jobs":[` + good + `,null]}`, 422, "jobs[2].class"},
		{"job not an object", `{"jobs":[` + good + `,"NoopJob"]}`, 400, "jobs[2]"},
		{"jobs not an array", `{"jobs":{"class":"NoopJob"}}`, 400, "jobs"},
		{"unknown top field", `{"jobs":[` + good + `],"atomic":true}`, 400, "atomic"},
		{"no jobs", `{"jobs":[]}`, 422, "jobs"},
		{"jobs missing", `{}`, 422, "jobs"},
		{"too many jobs", tooMany, 422, "jobs"},
		{"trailing data", `{"jobs":[` + good + `]}]`, 400, ""},
		{"oversized", `{"jobs":[{"class":"NoopJob","args":"` + strings.Repeat("z", 1<<20) + `"}]}`, 413, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := r.counts()
			wantError(t, r.call("POST", "/api/v1/jobs/batch", c.body), c.status, c.field)
			if after := r.counts(); !maps.Equal(before, after) {
				t.Errorf("counts changed: %v → %v", before, after)
			}
		})
	}
}
