package failures

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// jobIn puts a new job of class on queue q in state st, driving the store's
// consumer API by hand (no lanes), and returns it.
func (r *failRig) jobIn(class, q string, st queue.State) *queue.Job {
	r.t.Helper()
	ctx := r.t.Context()
	nj := queue.NewJob{Class: class, Queue: q, MaxAttempts: 3}
	if st == queue.StateScheduled {
		nj.RunAt = r.clock.Now().Add(time.Hour)
	}
	id := r.enqueue(nj)
	if st == queue.StateReady || st == queue.StateScheduled {
		return r.job(id)
	}
	c, err := r.store.Consume(queue.ConsumerConfig{Name: "test", Queues: []string{q}, Concurrency: 1, MaxPrefetch: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	var j *queue.Claim
	select {
	case j = <-c.Claims():
	case <-ctx.Done():
		r.t.Fatal("no job claimed")
	}
	if j.ID != id {
		r.t.Fatalf("claimed job %d, want %d", j.ID, id)
	}
	if err := j.Begin(ctx, 0); err != nil {
		r.t.Fatal(err)
	}
	ae := queue.AttemptError{Class: "Error", Message: "failed", At: r.clock.Now()}
	switch st {
	case queue.StateDone:
		err = j.Finish(queue.Ack())
	case queue.StateDead:
		err = j.Finish(queue.Kill(ae))
	case queue.StateRetry:
		err = j.Finish(queue.Fail(ae, r.clock.Now().Add(time.Hour)))
	}
	if err != nil {
		r.t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		r.t.Fatal(err)
	}
	if err := r.store.Flush(ctx); err != nil {
		r.t.Fatal(err)
	}
	got := r.job(id)
	if got.State != st {
		r.t.Fatalf("job %d is %s, want %s", id, got.State, st)
	}
	return got
}

// refusalPipelines makes a finished pipeline (done) and a running one whose
// step "fetch" has finished and "store" has not.
func (r *failRig) refusalPipelines() (done, running *data.Pipeline) {
	r.t.Helper()
	ctx := r.t.Context()
	done = &data.Pipeline{Kind: "sync", Status: data.StatusSucceeded}
	running = &data.Pipeline{Kind: "sync"}
	if err := r.db.CreatePipeline(ctx, done, "fetch"); err != nil {
		r.t.Fatal(err)
	}
	if err := r.db.CreatePipeline(ctx, running, "fetch", "store"); err != nil {
		r.t.Fatal(err)
	}
	if err := r.db.SetStepStatus(ctx, running.ID, "fetch", data.StatusSucceeded, 0); err != nil {
		r.t.Fatal(err)
	}
	return done, running
}

// TestRetryRefusals checks every refusal reason and whether it is recorded
// in the failure's retry state.
func TestRetryRefusals(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	done, running := r.refusalPipelines()
	gone := func() uint64 { return 900_000 + uint64(r.clock.Now().UnixNano()%1000) }
	dead := r.jobIn(lanes.NoopJob, "default", queue.StateDead)
	// Two failed attempts of one job: the first is superseded.
	r.insert(&data.Failure{JobID: dead.ID, Attempt: 2, Retryable: true, ErrorMessage: "later"})

	auto := retryMode{auto: true, maxRetries: 3}
	cases := []struct {
		name     string
		f        data.Failure
		job      queue.State // 0: JobID as given
		mode     retryMode
		want     RefusalReason
		recorded data.RetryStatus // "" when the state must not change
	}{
		{"authentication", data.Failure{Kind: fault.Authentication, JobID: gone()}, 0, retryMode{}, RefusedAuthentication, data.RetryRefused},
		{"not retryable", data.Failure{Kind: fault.Runtime, JobID: gone()}, 0, retryMode{}, RefusedNotRetryable, data.RetryRefused},
		{"already retried", data.Failure{Retryable: true, JobID: gone(), Retry: data.RetryState{Status: data.RetryQueued, JobID: 5}}, 0, retryMode{}, RefusedAlreadyRetried, ""},
		{"already succeeded", data.Failure{Retryable: true, JobID: gone(), Retry: data.RetryState{Status: data.RetrySucceeded, JobID: 5}}, 0, retryMode{}, RefusedAlreadySucceeded, ""},
		{"superseded before", data.Failure{Retryable: true, JobID: gone(), Retry: data.RetryState{Status: data.RetrySuperseded, Reason: "x"}}, 0, retryMode{}, RefusedSuperseded, ""},
		{"refused before (automatic)", data.Failure{Retryable: true, JobID: gone(), Retry: data.RetryState{Status: data.RetryRefused, Reason: "x"}}, 0, auto, RefusedNotRetryable, ""},
		{"retry limit (automatic)", data.Failure{Retryable: true, JobID: gone(), Retry: data.RetryState{Attempts: 3}}, 0, auto, RefusedRetryLimit, ""},
		{"class unregistered", data.Failure{Retryable: true, Class: "RetiredJob", JobID: gone()}, 0, retryMode{}, RefusedClassUnregistered, data.RetryRefused},
		{"queue unserved", data.Failure{Retryable: true, Queue: "nowhere", JobID: gone()}, 0, retryMode{}, RefusedQueueUnserved, data.RetryRefused},
		{"pipeline finished", data.Failure{Retryable: true, PipelineID: done.ID, JobID: gone()}, 0, retryMode{}, RefusedPipelineTerminal, data.RetryRefused},
		{"pipeline gone", data.Failure{Retryable: true, PipelineID: 4242, JobID: gone()}, 0, retryMode{}, RefusedPipelineTerminal, data.RetryRefused},
		{"step finished", data.Failure{Retryable: true, PipelineID: running.ID, Step: "fetch", JobID: gone()}, 0, retryMode{}, RefusedStepTerminal, data.RetryRefused},
		{"step gone", data.Failure{Retryable: true, PipelineID: running.ID, Step: "publish", JobID: gone()}, 0, retryMode{}, RefusedStepTerminal, data.RetryRefused},
		{"later attempt failed", data.Failure{Retryable: true, JobID: dead.ID, Attempt: 1}, 0, retryMode{}, RefusedSuperseded, data.RetrySuperseded},
		{"job succeeded", data.Failure{Retryable: true, Attempt: 1}, queue.StateDone, retryMode{}, RefusedJobSucceeded, data.RetrySuperseded},
		{"job ready", data.Failure{Retryable: true, Queue: "profiles"}, queue.StateReady, retryMode{}, RefusedJobPending, ""},
		{"job running", data.Failure{Retryable: true, Attempt: 1, Queue: "messages"}, queue.StateRunning, retryMode{}, RefusedJobPending, ""},
		{"job retrying (automatic)", data.Failure{Retryable: true, Attempt: 1}, queue.StateRetry, auto, RefusedJobPending, ""},
		{"job scheduled (automatic)", data.Failure{Retryable: true}, queue.StateScheduled, auto, RefusedJobPending, ""},
		{"args truncated", data.Failure{Retryable: true, JobID: gone(), Args: capArgs(rawJSON(`{"a":"0123456789"}`), 8)}, 0, retryMode{}, RefusedArgsTruncated, data.RetryRefused},
	}
	seen := map[RefusalReason]bool{}
	for i, c := range cases {
		r.clock.Add(time.Millisecond) // distinct gone job ids
		f := c.f
		if f.Queue == "" {
			f.Queue = "default"
		}
		if c.job != 0 {
			f.JobID = r.jobIn(lanes.NoopJob, f.Queue, c.job).ID
		}
		f.ErrorMessage = fmt.Sprintf("case %d", i)
		r.insert(&f)
		before := r.failure(f.ID).Retry
		_, err := r.retrier.retry(ctx, f.ID, c.mode)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != c.want || !errors.Is(err, ErrRetryRefused) || re.FailureID != f.ID || re.Detail == "" {
			t.Errorf("%s: %v, want a refusal %s", c.name, err, c.want)
			continue
		}
		seen[re.Reason] = true
		after := r.failure(f.ID).Retry
		switch {
		case c.recorded == "" && after != before:
			t.Errorf("%s: retry state changed from %+v to %+v", c.name, before, after)
		case c.recorded != "" && (after.Status != c.recorded || after.Reason != re.Detail || after.Attempts != before.Attempts):
			t.Errorf("%s: retry state %+v, want %s with the refusal's detail %q", c.name, after, c.recorded, re.Detail)
		}
	}
	for _, reason := range RefusalReasons() {
		if !seen[reason] {
			t.Errorf("refusal reason %s is not tested", reason)
		}
	}
}

func TestRetryRevivesOrEnqueues(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{classes: []lanes.Class{{Name: "SyncJob", Queue: "sync", Args: lanes.FreeForm, MaxAttempts: 7,
		Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })}}})
	ctx := t.Context()
	sub, cancel := r.bus.Subscribe()
	defer cancel()

	// A dead job is made ready again, keeping its id.
	dead := r.jobIn("SyncJob", "sync", queue.StateDead)
	f := &data.Failure{Class: "SyncJob", Queue: "sync", JobID: dead.ID, Attempt: 1, Retryable: true}
	r.insert(f)
	res, err := r.retrier.Retry(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res != (RetryResult{FailureID: f.ID, JobID: dead.ID, Revived: true, Attempts: 1}) {
		t.Errorf("result %+v", res)
	}
	if st := r.job(dead.ID).State; st != queue.StateReady {
		t.Errorf("revived job is %s", st)
	}
	if rs := r.failure(f.ID).Retry; rs.Status != data.RetryQueued || rs.JobID != dead.ID || rs.Attempts != 1 || !rs.LastRetriedAt.Equal(r.clock.Now()) {
		t.Errorf("retry state %+v", rs)
	}
	if got := r.topics(sub); !(events.Notification{Topics: got}).Has(events.TopicFailures) {
		t.Errorf("published %v", got)
	}

	// A job waiting for the queue's retry is made ready now by hand.
	waiting := r.jobIn("SyncJob", "profiles", queue.StateRetry)
	w := &data.Failure{Class: "SyncJob", Queue: "profiles", JobID: waiting.ID, Attempt: 1, Retryable: true}
	r.insert(w)
	if res, err := r.retrier.Retry(ctx, w.ID); err != nil || !res.Revived || r.job(waiting.ID).State != queue.StateReady {
		t.Errorf("retrying job: %+v %v", res, err)
	}

	// A job the queue no longer holds is enqueued again with its context.
	g := &data.Failure{Class: "SyncJob", Queue: "sync", JobID: 777_777, Attempt: 25, Retryable: true, Args: rawJSON(`{"page":3}`),
		AccountID: 4, ProfileID: 9, Retry: data.RetryState{Status: data.RetryRefused, Attempts: 2, Reason: "earlier"}}
	r.insert(g)
	res, err = r.retrier.Retry(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Revived || res.JobID == 0 || res.Attempts != 3 {
		t.Errorf("result %+v", res)
	}
	nj := r.job(res.JobID)
	wantCtx := map[string]string{CtxRetryOf: strconv.FormatInt(g.ID, 10), queue.CtxAccountID: "4", queue.CtxProfileID: "9"}
	if nj.Class != "SyncJob" || nj.Queue != "sync" || string(nj.Args) != `{"page":3}` || nj.MaxAttempts != 7 || fmt.Sprint(nj.Context) != fmt.Sprint(wantCtx) {
		t.Errorf("new job %+v", nj)
	}
	if rs := r.failure(g.ID).Retry; rs.Status != data.RetryQueued || rs.JobID != res.JobID || rs.Attempts != 3 || rs.Reason != "" {
		t.Errorf("retry state %+v", rs)
	}
	if _, err := r.retrier.Retry(ctx, 123456); !errors.Is(err, data.ErrNotFound) {
		t.Errorf("missing failure: %v", err)
	}
}

// TestRetryRefusedThenFixed: a refusal for a reason that can go away is
// checked again by a manual retry.
func TestRetryRefusedThenFixed(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	f := &data.Failure{Class: "LateJob", Queue: "sync", JobID: 55, Retryable: true}
	r.insert(f)
	if _, err := r.retrier.Retry(t.Context(), f.ID); !errors.Is(err, ErrRetryRefused) {
		t.Fatalf("unregistered class: %v", err)
	}
	r.reg.MustRegister(lanes.Class{Name: "LateJob", Queue: "sync", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })})
	if res, err := r.retrier.Retry(t.Context(), f.ID); err != nil || res.JobID == 0 {
		t.Fatalf("after registering: %+v %v", res, err)
	}
}

// TestRetryConcurrentClaims: many retries of one failure at once make
// exactly one retry.
func TestRetryConcurrentClaims(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	f := &data.Failure{JobID: 31337, Retryable: true}
	r.insert(f)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := r.retrier.Retry(t.Context(), f.ID)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrRetryRefused):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 7 {
		t.Errorf("%d retries and %d refusals, want 1 and 7", ok.Load(), refused.Load())
	}
	if n := r.store.Counts()[queue.StateReady]; n != 1 {
		t.Errorf("%d jobs enqueued, want 1", n)
	}
}

// TestRetryLoopThroughTheLanes: a job dies while its dependency is broken;
// once fixed, a retry of its failure runs it again, and its success marks
// the failure succeeded. A retry that fails again supersedes the failure
// with a new one that carries the retry count on.
func TestRetryLoopThroughTheLanes(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	r := newFailRig(t, failRigOpts{realClock: true, pool: true, classes: []lanes.Class{{Name: "DepJob", Queue: "sync", Args: lanes.FreeForm, MaxAttempts: 1,
		Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			if broken.Load() {
				return httpStatus(502)
			}
			return nil
		})}}})
	id := r.enqueue(queue.NewJob{Class: "DepJob", Queue: "sync", MaxAttempts: 1})
	r.waitJob(id, queue.StateDead)
	r.settle()
	f := r.failures()[0]

	// Retried while still broken: dies again; the first failure is
	// superseded by the second, which inherits the retry count.
	if _, err := r.retrier.Retry(t.Context(), f.ID); err != nil {
		t.Fatal(err)
	}
	r.waitJob(id, queue.StateDead)
	r.settle()
	fs := r.failures()
	if len(fs) != 2 {
		t.Fatalf("%d failures", len(fs))
	}
	if fs[0].Retry.Status != data.RetrySuperseded || fs[1].Retry.Status != data.RetryNone || fs[1].Retry.Attempts != 1 || fs[1].Attempt != 2 {
		t.Errorf("after a failed retry: %+v / %+v", fs[0].Retry, fs[1])
	}
	if _, err := r.retrier.Retry(t.Context(), fs[0].ID); !errors.Is(err, ErrRetryRefused) {
		t.Errorf("retry of the superseded failure: %v", err)
	}

	// Fixed: the retry succeeds.
	broken.Store(false)
	res, err := r.retrier.Retry(t.Context(), fs[1].ID)
	if err != nil || res.Attempts != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	r.waitJob(id, queue.StateDone)
	r.settle()
	if rs := r.failure(fs[1].ID).Retry; rs.Status != data.RetrySucceeded || rs.JobID != id || rs.Attempts != 2 {
		t.Errorf("after a successful retry: %+v", rs)
	}
}

// TestRetryNewJobOutcome: the new job of a gone job's retry settles the
// failure when it ends.
func TestRetryNewJobOutcome(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{realClock: true, pool: true})
	f := &data.Failure{Class: lanes.NoopJob, Queue: "default", JobID: 888_888, Retryable: true, OccurredAt: time.Now()}
	r.insert(f)
	res, err := r.retrier.Retry(t.Context(), f.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.waitJob(res.JobID, queue.StateDone)
	r.settle()
	if rs := r.failure(f.ID).Retry; rs.Status != data.RetrySucceeded || rs.JobID != res.JobID {
		t.Errorf("retry state %+v", rs)
	}
}

func TestRetryMatching(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	for i := range 5 {
		r.insert(&data.Failure{JobID: uint64(500 + i), Retryable: true, ErrorMessage: "db down"})
	}
	r.insert(&data.Failure{JobID: 600, Kind: fault.Authentication, ErrorMessage: "db down"})
	r.insert(&data.Failure{JobID: 601, Retryable: true, ErrorMessage: "other"})
	ff := data.FailureFilter{Q: "db down"}
	res, err := r.retrier.RetryMatching(t.Context(), ff, 0, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Examined != 4 || res.Queued != 4 || !res.More || res.Next != 4 {
		t.Errorf("first batch %+v", res)
	}
	res, err = r.retrier.RetryMatching(t.Context(), ff, res.Next, res.Until, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Examined != 2 || res.Queued != 1 || res.Refused != 1 || res.Reasons[RefusedAuthentication] != 1 || res.More {
		t.Errorf("second batch %+v", res)
	}
	// Again: everything is retried or refused already.
	res, _ = r.retrier.RetryMatching(t.Context(), ff, 0, 0, 0)
	if res.Queued != 0 || res.Reasons[RefusedAlreadyRetried] != 5 || res.Reasons[RefusedAuthentication] != 1 {
		t.Errorf("third pass %+v", res)
	}
	if _, err := r.retrier.RetryMatching(t.Context(), data.FailureFilter{Conds: []data.Cond{{Field: "nope", Op: data.OpEq, Value: 1}}}, 0, 0, 0); !errors.Is(err, data.ErrInvalid) {
		t.Errorf("bad filter: %v", err)
	}
}

// TestRetryAllIsNoStorm is the retry storm: 21 jobs of FailJob
// (max_attempts 1) died; "retry all", followed by a client that posts again
// while the answer says more (as the dashboard does), retried the retries'
// own new failures again and again (1,000 queued, one job at attempt 50).
// A retry-all walk covers the failures there were when it began: each
// failure and each job is retried once.
func TestRetryAllIsNoStorm(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{realClock: true, pool: true})
	const jobs = 21
	var ids []uint64
	for range jobs {
		ids = append(ids, r.enqueue(queue.NewJob{Class: lanes.FailJob, Queue: "default", MaxAttempts: 1,
			Args: rawJSON(`{"kind":"transient","message":"upstream 503"}`)}))
	}
	// allDead waits until every job is dead and its failures are written.
	allDead := func() {
		for _, id := range ids {
			r.waitJob(id, queue.StateDead)
		}
		r.settle()
	}
	allDead()
	var queued, examined, requests int
	var next, until int64
	for {
		requests++
		if requests > 3*jobs {
			t.Fatalf("still more after %d requests: %d queued, %d examined", requests, queued, examined)
		}
		res, err := r.retrier.RetryMatching(t.Context(), data.FailureFilter{}, next, until, 4)
		if err != nil {
			t.Fatal(err)
		}
		queued, examined = queued+res.Queued, examined+res.Examined
		next, until = res.Next, res.Until
		// The retried jobs fail again before the client goes on.
		allDead()
		if !res.More {
			break
		}
	}
	if queued != jobs || examined != jobs {
		t.Errorf("retry-all queued %d of %d examined; want each of the %d failures once", queued, examined, jobs)
	}
	for _, id := range ids {
		if j := r.job(id); j.Attempt != 2 {
			t.Errorf("job %d is at attempt %d, want 2 (one retry)", id, j.Attempt)
		}
	}
	if n := len(r.failures()); n != 2*jobs {
		t.Errorf("%d failures, want %d (each job failed, was retried once and failed again)", n, 2*jobs)
	}
}

// TestRetryMatchingRetriesAJobOnce: two open failures of one attempt of a
// job (an attempt run again after a crash) make one retry per request.
func TestRetryMatchingRetriesAJobOnce(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	r.insert(&data.Failure{JobID: 700, Attempt: 1, Retryable: true, ErrorMessage: "db down"},
		&data.Failure{JobID: 700, Attempt: 1, Retryable: true, ErrorMessage: "db down"},
		&data.Failure{JobID: 701, Attempt: 1, Retryable: true, ErrorMessage: "db down"})
	res, err := r.retrier.RetryMatching(t.Context(), data.FailureFilter{}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Queued != 2 || res.Reasons[RefusedAlreadyRetried] != 1 || res.Until != 3 || res.More {
		t.Errorf("retry-all %+v, want jobs 700 and 701 retried once each", res)
	}
	if n := r.store.Counts()[queue.StateReady]; n != 2 {
		t.Errorf("%d jobs enqueued, want 2", n)
	}
}

// TestRetryMatchingAppliesRetrysRules: a retry of all matching failures,
// which decides a chunk at once, refuses and records exactly what Retry
// does one failure at a time, for failures whose job the queue holds (the
// batched path) and whose job is gone (Retry's path).
func TestRetryMatchingAppliesRetrysRules(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	done, running := r.refusalPipelines()
	// The failure's job: dead (""), none in the queue (gone), or in a state.
	const gone = "gone"
	states := map[string]queue.State{"done": queue.StateDone, "ready": queue.StateReady, "retry": queue.StateRetry, "scheduled": queue.StateScheduled}
	cases := []struct {
		name string
		f    data.Failure
		job  string
		// want is the refusal, "" a retry; recorded the retry state's
		// status after it ("" unchanged).
		want     RefusalReason
		recorded data.RetryStatus
	}{
		{"authentication", data.Failure{Kind: fault.Authentication}, "", RefusedAuthentication, data.RetryRefused},
		{"authentication, job gone", data.Failure{Kind: fault.Authentication}, gone, RefusedAuthentication, data.RetryRefused},
		{"not retryable", data.Failure{Kind: fault.Runtime}, "", RefusedNotRetryable, data.RetryRefused},
		{"already retried", data.Failure{Retryable: true, Retry: data.RetryState{Status: data.RetryQueued, JobID: 5}}, "", RefusedAlreadyRetried, ""},
		{"already succeeded", data.Failure{Retryable: true, Retry: data.RetryState{Status: data.RetrySucceeded, JobID: 5}}, "", RefusedAlreadySucceeded, ""},
		{"superseded before", data.Failure{Retryable: true, Retry: data.RetryState{Status: data.RetrySuperseded, Reason: "x"}}, "", RefusedSuperseded, ""},
		{"class unregistered", data.Failure{Retryable: true, Class: "RetiredJob"}, gone, RefusedClassUnregistered, data.RetryRefused},
		{"queue unserved", data.Failure{Retryable: true, Queue: "nowhere"}, gone, RefusedQueueUnserved, data.RetryRefused},
		{"pipeline finished", data.Failure{Retryable: true, PipelineID: done.ID}, "", RefusedPipelineTerminal, data.RetryRefused},
		{"pipeline gone", data.Failure{Retryable: true, PipelineID: 4242}, "", RefusedPipelineTerminal, data.RetryRefused},
		{"step finished", data.Failure{Retryable: true, PipelineID: running.ID, Step: "fetch"}, "", RefusedStepTerminal, data.RetryRefused},
		{"step gone", data.Failure{Retryable: true, PipelineID: running.ID, Step: "publish"}, "", RefusedStepTerminal, data.RetryRefused},
		{"job succeeded", data.Failure{Retryable: true, Attempt: 1}, "done", RefusedJobSucceeded, data.RetrySuperseded},
		{"job ready", data.Failure{Retryable: true, Queue: "profiles"}, "ready", RefusedJobPending, ""},
		{"args truncated, job gone", data.Failure{Retryable: true, Args: capArgs(rawJSON(`{"a":"0123456789"}`), 8)}, gone, RefusedArgsTruncated, data.RetryRefused},
		{"dead job revived", data.Failure{Retryable: true, Attempt: 1}, "", "", data.RetryQueued},
		{"retrying job made ready", data.Failure{Retryable: true, Attempt: 1}, "retry", "", data.RetryQueued},
		{"scheduled job made ready", data.Failure{Retryable: true}, "scheduled", "", data.RetryQueued},
		{"refused before, retried by hand", data.Failure{Retryable: true, Attempt: 1, Retry: data.RetryState{Status: data.RetryRefused, Reason: "x"}}, "", "", data.RetryQueued},
		{"job gone, enqueued again", data.Failure{Retryable: true, Args: rawJSON(`{"page":1}`)}, gone, "", data.RetryQueued},
	}
	ids := make([]int64, len(cases))
	jobs := make([]uint64, len(cases))
	wantReasons := map[RefusalReason]int{}
	for i, c := range cases {
		f := c.f
		if f.Queue == "" {
			f.Queue = "default"
		}
		switch c.job {
		case gone:
			f.JobID = 800_000 + uint64(i)
		case "":
			f.JobID = r.jobIn(lanes.NoopJob, f.Queue, queue.StateDead).ID
		default:
			f.JobID = r.jobIn(lanes.NoopJob, f.Queue, states[c.job]).ID
		}
		f.ErrorMessage = fmt.Sprintf("case %d", i)
		r.insert(&f)
		ids[i], jobs[i] = f.ID, f.JobID
		if c.want != "" {
			wantReasons[c.want]++
		}
	}
	// A dead job with two failed attempts: the first is superseded by the
	// second, which is retried; and a dead job with two failures of one
	// attempt (run again after a crash): one retry, one refusal.
	twice := r.jobIn(lanes.NoopJob, "default", queue.StateDead)
	first := &data.Failure{JobID: twice.ID, Attempt: 1, Retryable: true, ErrorMessage: "attempt 1"}
	second := &data.Failure{JobID: twice.ID, Attempt: 2, Retryable: true, ErrorMessage: "attempt 2"}
	crashed := r.jobIn(lanes.NoopJob, "default", queue.StateDead)
	dupA := &data.Failure{JobID: crashed.ID, Attempt: 1, Retryable: true, ErrorMessage: "crash a"}
	dupB := &data.Failure{JobID: crashed.ID, Attempt: 1, Retryable: true, ErrorMessage: "crash b"}
	r.insert(first, second, dupA, dupB)
	wantReasons[RefusedSuperseded]++
	wantReasons[RefusedAlreadyRetried]++

	before := map[int64]data.RetryState{}
	for _, f := range r.failures() {
		before[f.ID] = f.Retry
	}
	res, err := r.retrier.RetryMatching(ctx, data.FailureFilter{}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantQueued := 0
	for _, c := range cases {
		if c.want == "" {
			wantQueued++
		}
	}
	wantQueued += 2 // second, and one of dupA and dupB
	if res.Queued != wantQueued || res.Errors != 0 || res.More || res.Examined != len(cases)+4 {
		t.Errorf("retry all %+v, want %d queued of %d, no errors", res, wantQueued, len(cases)+4)
	}
	for reason, n := range wantReasons {
		if res.Reasons[reason] != n {
			t.Errorf("%d refused as %s, want %d (all: %v)", res.Reasons[reason], reason, n, res.Reasons)
		}
	}
	for i, c := range cases {
		after := r.failure(ids[i]).Retry
		switch {
		case c.recorded == "" && after != before[ids[i]]:
			t.Errorf("%s: retry state changed from %+v to %+v", c.name, before[ids[i]], after)
		case c.recorded == data.RetryQueued:
			if after.Status != data.RetryQueued || after.Attempts != before[ids[i]].Attempts+1 || after.JobID == 0 {
				t.Errorf("%s: retry state %+v, want queued with a job", c.name, after)
			} else if st := r.job(after.JobID).State; st != queue.StateReady {
				t.Errorf("%s: its retry's job %d is %s, want ready", c.name, after.JobID, st)
			}
		case c.recorded != "" && (after.Status != c.recorded || after.Reason == "" || after.Attempts != before[ids[i]].Attempts):
			t.Errorf("%s: retry state %+v, want %s with the refusal's detail", c.name, after, c.recorded)
		}
	}
	if got := r.failure(first.ID).Retry; got.Status != data.RetrySuperseded || got.Reason != fmt.Sprintf("a later attempt of job %d failed too: retry failure %d instead", twice.ID, second.ID) {
		t.Errorf("attempt 1 of job %d: %+v, want superseded by failure %d", twice.ID, got, second.ID)
	}
	if got := r.failure(second.ID).Retry; got.Status != data.RetryQueued || got.JobID != twice.ID {
		t.Errorf("attempt 2 of job %d: %+v, want queued", twice.ID, got)
	}
	a, b := r.failure(dupA.ID).Retry, r.failure(dupB.ID).Retry
	if (a.Status == data.RetryQueued) == (b.Status == data.RetryQueued) {
		t.Errorf("two failures of one attempt of job %d: %+v and %+v, want exactly one queued", crashed.ID, a, b)
	}
	for _, id := range []uint64{twice.ID, crashed.ID} {
		if st := r.job(id).State; st != queue.StateReady {
			t.Errorf("job %d is %s, want ready", id, st)
		}
	}
}
