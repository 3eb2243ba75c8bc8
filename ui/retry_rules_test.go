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

// TestJobRetryRefusesAuthenticationFailure: POST /api/v1/jobs/{id}/retry
// applies the failure pipeline's refusal rules. Before, it revived a dead
// job whose lane killed it for an authentication failure — which the
// failures retry refuses.
func TestJobRetryRefusesAuthenticationFailure(t *testing.T) {
	t.Parallel()
	t.Run("no failure recorded", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, rigOpts{pool: true})
		id := r.enqueue(`{"class":"FailJob","args":{"kind":"authentication","message":"401 from instagram"},"max_attempts":5}`)
		r.waitState(id, queue.StateDead)
		rp := r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", id), "")
		ref := into[refusedJSON](t, rp, http.StatusConflict)
		if ref.Reason != "not_retryable" || ref.Field != "id" || ref.Error == "" {
			t.Errorf("refusal %s", rp.body)
		}
		if j, _ := r.store.Get(id); j.State != queue.StateDead {
			t.Errorf("the refused job is %s", j.State)
		}
		// A job that ran out of attempts is retried as before.
		out := r.enqueue(`{"class":"FailJob","args":{"message":"503"},"max_attempts":1}`)
		r.waitState(out, queue.StateDead)
		into[actionJSON](t, r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", out), ""), http.StatusOK)
	})
	t.Run("failure recorded", func(t *testing.T) {
		t.Parallel()
		r := newFailureRig(t)
		ctx := t.Context()
		res, err := r.store.Enqueue(ctx, queue.NewJob{Class: "FailJob", Queue: "default", Args: json.RawMessage(`{}`), MaxAttempts: 5})
		if err != nil {
			t.Fatal(err)
		}
		// Kill it as a lane does for an authentication failure, and
		// record the failure as the capture does.
		c, err := r.store.Consume(queue.ConsumerConfig{Name: "t", Queues: []string{"default"}, Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		j := <-c.Claims()
		if err := j.Begin(ctx, 0); err != nil {
			t.Fatal(err)
		}
		now := r.srv.now()
		if err := j.Finish(queue.Kill(queue.AttemptError{Attempt: 1, Class: "AuthError", Message: "401", At: now})); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		r.insert(&data.Failure{JobID: res.ID, Class: "FailJob", Queue: "default", Kind: fault.Authentication,
			Retryable: false, Attempt: 1, OccurredAt: now, ErrorClass: "AuthError", ErrorMessage: "401", Fingerprint: "f1"})
		rp := r.call("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", res.ID), "")
		if ref := into[refusedJSON](t, rp, http.StatusConflict); ref.Reason != "authentication" {
			t.Errorf("refusal %s", rp.body)
		}
		if j, _ := r.store.Get(res.ID); j.State != queue.StateDead {
			t.Errorf("the refused job is %s", j.State)
		}
	})
}
