package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"conveyor/data"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// TestBulkRetryAppliesTheRules retries a filtered set of dead jobs through
// POST /api/v1/jobs/bulk, in requests of two jobs, and checks each job
// against the failure pipeline's rules: a retryable failure and a job that
// ran out of attempts with no failure recorded are made ready (the failure
// records the retry); an authentication failure, a failure already being
// retried and a job its lane killed are refused, by reason, and stay dead.
// Then the ready ones are discarded in bulk.
func TestBulkRetryAppliesTheRules(t *testing.T) {
	t.Parallel()
	r := newFailureRig(t)
	ctx := t.Context()
	type dead struct {
		name    string
		kill    bool          // the lane killed it (not retryable)
		failure *data.Failure // recorded failure, nil for none
		want    string        // "" done, else the refusal reason
	}
	cases := []*dead{
		{name: "transient", failure: &data.Failure{Kind: fault.Transient, Retryable: true}},
		{name: "authentication", kill: true, failure: &data.Failure{Kind: fault.Authentication}, want: "authentication"},
		{name: "no failure recorded"},
		{name: "killed, no failure recorded", kill: true, want: "not_retryable"},
		{name: "retry queued already", failure: &data.Failure{Kind: fault.Transient, Retryable: true,
			Retry: data.RetryState{Status: data.RetryQueued, Attempts: 1, JobID: 99}}, want: "already_retried"},
	}
	ids := map[uint64]*dead{}
	c, err := r.store.Consume(queue.ConsumerConfig{Name: "t", Queues: []string{"default"}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range cases {
		attempts := 1 // dies of running out of attempts
		if d.kill {
			attempts = 5 // a lane kills it on its first attempt
		}
		res, err := r.store.Enqueue(ctx, queue.NewJob{Class: "FailJob", Queue: "default", Args: json.RawMessage(`{}`), MaxAttempts: attempts})
		if err != nil {
			t.Fatal(err)
		}
		ids[res.ID] = d
		j := <-c.Claims()
		if err := j.Begin(ctx, 0); err != nil {
			t.Fatal(err)
		}
		now := r.srv.now()
		e := queue.AttemptError{Attempt: 1, Class: "HTTPError", Message: d.name, At: now}
		out := queue.Fail(e, now)
		if d.kill {
			out = queue.Kill(e)
		}
		if err := j.Finish(out); err != nil {
			t.Fatal(err)
		}
		if f := d.failure; f != nil {
			f.JobID, f.Class, f.Attempt, f.OccurredAt = res.ID, "FailJob", 1, now
			f.ErrorClass, f.ErrorMessage, f.Fingerprint = "HTTPError", d.name, "fp-"+d.name
			r.insert(f)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.counts()[queue.StateDead]; n != int64(len(cases)) {
		t.Fatalf("%d dead jobs, want %d", n, len(cases))
	}

	bulk := func(action, state string) bulkJSON {
		t.Helper()
		total := bulkJSON{Reasons: map[string]int{}}
		cursor, requests := "", 0
		for {
			body := fmt.Sprintf(`{"action":%q,"state":%q,"queue":"default","class":"FailJob","cursor":%q,"limit":2}`, action, state, cursor)
			out := into[bulkJSON](t, r.call("POST", "/api/v1/jobs/bulk", body), http.StatusOK)
			requests++
			total.Examined += out.Examined
			total.Done += out.Done
			total.Refused += out.Refused
			total.Skipped += out.Skipped
			for k, v := range out.Reasons {
				total.Reasons[k] += v
			}
			if !out.More {
				break
			}
			if out.Examined > 2 || requests > 2*len(cases) {
				t.Fatalf("request %d examined %d jobs (limit 2)", requests, out.Examined)
			}
			cursor = *out.Next
		}
		return total
	}
	got := bulk("retry", "dead")
	wantReasons := map[string]int{}
	wantDone := 0
	for _, d := range cases {
		if d.want == "" {
			wantDone++
		} else {
			wantReasons[d.want]++
		}
	}
	if got.Examined != len(cases) || got.Done != wantDone || got.Refused != len(cases)-wantDone || got.Skipped != 0 {
		t.Errorf("retry: %+v, want %d examined, %d done", got, len(cases), wantDone)
	}
	for k, v := range wantReasons {
		if got.Reasons[k] != v {
			t.Errorf("retry: reasons %v, want %v", got.Reasons, wantReasons)
			break
		}
	}
	for id, d := range ids {
		j, err := r.store.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		want := queue.StateReady
		if d.want != "" {
			want = queue.StateDead
		}
		if j.State != want {
			t.Errorf("%s: job %d is %s, want %s", d.name, id, j.State, want)
		}
		if d.failure == nil {
			continue
		}
		f, err := r.db.FailureByID(ctx, d.failure.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch d.want {
		case "":
			if f.Retry.Status != data.RetryQueued || f.Retry.JobID != id || f.Retry.Attempts != 1 {
				t.Errorf("%s: the failure's retry state %+v, want queued as job %d", d.name, f.Retry, id)
			}
		case "authentication":
			if f.Retry.Status != data.RetryRefused || f.Retry.Reason == "" {
				t.Errorf("%s: the failure's retry state %+v, want refused with a reason", d.name, f.Retry)
			}
		default:
			if f.Retry != d.failure.Retry {
				t.Errorf("%s: the failure's retry state %+v changed from %+v", d.name, f.Retry, d.failure.Retry)
			}
		}
	}

	// A second bulk retry finds the retried ones ready: nothing to do.
	if again := bulk("retry", "dead"); again.Done != 0 || again.Examined != len(cases)-wantDone {
		t.Errorf("retry again: %+v", again)
	}
	if got := bulk("discard", "ready"); got.Done != wantDone || got.Examined != wantDone {
		t.Errorf("discard: %+v, want %d done", got, wantDone)
	}
	if n := r.counts()[queue.StateReady]; n != 0 {
		t.Errorf("%d jobs ready after the discard", n)
	}
}
