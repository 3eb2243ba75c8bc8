package data

import (
	"errors"
	"slices"
	"testing"
	"time"

	"conveyor/ops/fault"
)

// settleRig inserts failures by (job, attempt) and reads their retry state.
type settleRig struct {
	t  *testing.T
	db *DB
}

func (r settleRig) fail(job uint64, attempt int, rs RetryState) *Failure {
	r.t.Helper()
	f := &Failure{JobID: job, Class: "SyncJob", Queue: "sync", Kind: fault.Transient, Retryable: true,
		Attempt: attempt, ErrorMessage: "boom", Retry: rs}
	if err := r.db.InsertFailures(r.t.Context(), []*Failure{f}); err != nil {
		r.t.Fatal(err)
	}
	return f
}

func (r settleRig) state(id int64) RetryState {
	r.t.Helper()
	f, err := r.db.FailureByID(r.t.Context(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return f.Retry
}

func (r settleRig) settle(want int64, os ...JobOutcome) {
	r.t.Helper()
	n, err := r.db.SettleFailures(r.t.Context(), os)
	if err != nil {
		r.t.Fatal(err)
	}
	if n != want {
		r.t.Errorf("settle %+v changed %d failures, want %d", os, n, want)
	}
}

func wantStatus(t *testing.T, got RetryState, status RetryStatus, attempts int, jobID uint64, reason string) {
	t.Helper()
	if got.Status != status || got.Attempts != attempts || got.JobID != jobID || got.Reason != reason {
		t.Errorf("retry state %+v, want status %s attempts %d job %d reason %q", got, status, attempts, jobID, reason)
	}
}

func TestSettleFailuresAlongAJobsAttempts(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	r := settleRig{t, db}
	// Attempt 1 failed and was retried once already (the queue's own retry
	// is the same job).
	a := r.fail(10, 1, RetryState{Status: RetryQueued, Attempts: 2, JobID: 10})
	// Attempt 2 fails: a's retry failed, b carries the count on.
	b := r.fail(10, 2, RetryState{})
	r.settle(2, JobOutcome{JobID: 10, Attempt: 2})
	wantStatus(t, r.state(a.ID), RetrySuperseded, 2, 10, "attempt 2 of job 10 failed too")
	wantStatus(t, r.state(b.ID), RetryNone, 2, 0, "")

	// Attempt 3 succeeds: b is superseded by the success.
	r.settle(1, JobOutcome{JobID: 10, Attempt: 3, Succeeded: true})
	wantStatus(t, r.state(b.ID), RetrySuperseded, 2, 0, "job 10 succeeded on attempt 3")
	// Again: nothing more changes.
	r.settle(0, JobOutcome{JobID: 10, Attempt: 3, Succeeded: true}, JobOutcome{JobID: 10, Attempt: 2})
}

func TestSettleFailuresRetriedInPlaceSucceeds(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	r := settleRig{t, db}
	// Job 11 died at attempt 3; a retry revived it (same job id).
	dead := r.fail(11, 3, RetryState{Status: RetryQueued, Attempts: 1, JobID: 11})
	refused := r.fail(11, 1, RetryState{Status: RetryRefused, Reason: "no"})
	other := r.fail(12, 1, RetryState{})
	r.settle(1, JobOutcome{JobID: 11, Attempt: 4, Succeeded: true})
	wantStatus(t, r.state(dead.ID), RetrySucceeded, 1, 11, "")
	wantStatus(t, r.state(refused.ID), RetryRefused, 0, 0, "no")
	wantStatus(t, r.state(other.ID), RetryNone, 0, 0, "")
}

func TestSettleFailuresNewRetryJob(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	r := settleRig{t, db}
	// Failure f of a job that is gone was retried by a new job, 30.
	f := r.fail(20, 25, RetryState{Status: RetryQueued, Attempts: 1, JobID: 30})
	r.settle(1, JobOutcome{JobID: 30, Attempt: 1, Succeeded: true, RetryOf: f.ID})
	wantStatus(t, r.state(f.ID), RetrySucceeded, 1, 30, "")

	// Failure g was retried by job 31, which failed: g is superseded by the
	// new failure h, which inherits g's retry count.
	g := r.fail(21, 25, RetryState{Status: RetryQueued, Attempts: 2, JobID: 31})
	h := r.fail(31, 1, RetryState{})
	r.settle(2, JobOutcome{JobID: 31, Attempt: 1, RetryOf: g.ID})
	wantStatus(t, r.state(g.ID), RetrySuperseded, 2, 31, "its retry, job 31, failed too")
	wantStatus(t, r.state(h.ID), RetryNone, 2, 0, "")

	// A retry the outcome arrives for before the retry named its job.
	k := r.fail(22, 25, RetryState{Status: RetryQueued, Attempts: 1})
	r.settle(1, JobOutcome{JobID: 32, Attempt: 1, Succeeded: true, RetryOf: k.ID})
	wantStatus(t, r.state(k.ID), RetrySucceeded, 1, 32, "")
	if err := db.SetFailureRetryJob(t.Context(), k.ID, 32); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, r.state(k.ID), RetrySucceeded, 1, 32, "")
}

func TestSettleFailuresValidates(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	for _, o := range []JobOutcome{{JobID: 1}, {JobID: 1, Attempt: 1, RetryOf: -1}} {
		if _, err := db.SettleFailures(t.Context(), []JobOutcome{o}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", o, err)
		}
	}
	if n, err := db.SettleFailures(t.Context(), nil); n != 0 || err != nil {
		t.Errorf("empty: %d %v", n, err)
	}
}

func TestLaterFailureAndRetryJob(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	r := settleRig{t, db}
	a := r.fail(40, 1, RetryState{})
	if id, err := db.LaterFailure(t.Context(), 40, 1); id != 0 || err != nil {
		t.Errorf("no later failure: %d %v", id, err)
	}
	c := r.fail(40, 3, RetryState{})
	r.fail(40, 2, RetryState{})
	if id, err := db.LaterFailure(t.Context(), 40, 1); err != nil || id != c.ID+1 {
		t.Errorf("later failure of attempt 1: %d %v, want the attempt-2 failure %d", id, err, c.ID+1)
	}
	if id, _ := db.LaterFailure(t.Context(), 40, 3); id != 0 {
		t.Errorf("later than the last attempt: %d", id)
	}
	if err := db.SetFailureRetryJob(t.Context(), a.ID, 99); err != nil {
		t.Fatal(err)
	}
	if got := r.state(a.ID); got.JobID != 99 || got.Status != RetryNone {
		t.Errorf("retry job not set alone: %+v", got)
	}
	if err := db.SetFailureRetryJob(t.Context(), 12345, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing failure: %v", err)
	}
}

func TestFailuresByIDs(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	r := settleRig{t, db}
	a := r.fail(60, 1, RetryState{})
	b := r.fail(61, 2, RetryState{Status: RetryRefused, Reason: "no"})
	got, err := db.FailuresByIDs(t.Context(), []int64{b.ID, 9999, a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[a.ID] == nil || got[b.ID] == nil || got[9999] != nil {
		t.Fatalf("failures by id: %v, want %d and %d only", got, a.ID, b.ID)
	}
	if f := got[b.ID]; f.JobID != 61 || f.Attempt != 2 || f.Retry.Status != RetryRefused || f.Retry.Reason != "no" || f.ErrorMessage != "boom" {
		t.Errorf("failure %d read back as %+v", b.ID, f)
	}
	if got, err := db.FailuresByIDs(t.Context(), nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v %v", got, err)
	}
	var fe *FieldError
	if _, err := db.FailuresByIDs(t.Context(), make([]int64, maxLatestJobs+1)); !errors.As(err, &fe) || fe.Field != "ids" {
		t.Errorf("too many ids: %v, want a FieldError on ids", err)
	}
}

func TestUpdateFailureRetryIf(t *testing.T) {
	t.Parallel()
	db, c := setup(t)
	r := settleRig{t, db}
	f := r.fail(50, 1, RetryState{})
	at := c.Add(time.Minute)
	queued := RetryState{Status: RetryQueued, Attempts: 1, LastRetriedAt: at, JobID: 50}
	ok, err := db.UpdateFailureRetryIf(t.Context(), f.ID, []RetryStatus{RetryNone, RetryRefused}, queued)
	if !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	// A second claim from none loses.
	ok, err = db.UpdateFailureRetryIf(t.Context(), f.ID, []RetryStatus{RetryNone}, queued)
	if ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
	got := r.state(f.ID)
	if !got.LastRetriedAt.Equal(at) {
		t.Errorf("last retried at %v, want %v", got.LastRetriedAt, at)
	}
	wantStatus(t, got, RetryQueued, 1, 50, "")
	if _, err := db.UpdateFailureRetryIf(t.Context(), 999, []RetryStatus{RetryNone}, queued); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	for _, bad := range []struct {
		from []RetryStatus
		rs   RetryState
	}{
		{nil, queued},
		{[]RetryStatus{"maybe"}, queued},
		{[]RetryStatus{RetryNone}, RetryState{Status: "later"}},
		{[]RetryStatus{RetryNone}, RetryState{Status: RetryNone, Attempts: -1}},
	} {
		if _, err := db.UpdateFailureRetryIf(t.Context(), f.ID, bad.from, bad.rs); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// TestUpdateFailuresRetryIf: the updates of one call are made in one
// transaction, each only from its own statuses; a missing failure or a
// status that changed is reported, not an error; an invalid update fails
// the whole call before anything is written.
func TestUpdateFailuresRetryIf(t *testing.T) {
	t.Parallel()
	db, c := setup(t)
	r := settleRig{t, db}
	at := c.Add(time.Minute)
	fresh := r.fail(60, 1, RetryState{})
	refused := r.fail(61, 1, RetryState{Status: RetryRefused, Reason: "no lane"})
	queuedAlready := r.fail(62, 1, RetryState{Status: RetryQueued, Attempts: 1, JobID: 62})
	claim := func(id int64, job uint64) RetryUpdate {
		return RetryUpdate{ID: id, From: []RetryStatus{RetryNone, RetryRefused},
			State: RetryState{Status: RetryQueued, Attempts: 1, LastRetriedAt: at, JobID: job}}
	}
	ups := []RetryUpdate{claim(fresh.ID, 60), claim(refused.ID, 61), claim(queuedAlready.ID, 99), claim(12345, 1)}
	done, err := db.UpdateFailuresRetryIf(t.Context(), ups)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(done, want) {
		t.Errorf("done %v, want %v", done, want)
	}
	wantStatus(t, r.state(fresh.ID), RetryQueued, 1, 60, "")
	wantStatus(t, r.state(refused.ID), RetryQueued, 1, 61, "")
	wantStatus(t, r.state(queuedAlready.ID), RetryQueued, 1, 62, "")
	if got := r.state(fresh.ID); !got.LastRetriedAt.Equal(at) {
		t.Errorf("last retried at %v, want %v", got.LastRetriedAt, at)
	}
	// One invalid update: nothing is written.
	other := r.fail(63, 1, RetryState{})
	bad := claim(other.ID, 63)
	bad.From = nil
	if _, err := db.UpdateFailuresRetryIf(t.Context(), []RetryUpdate{claim(other.ID, 63), bad}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an invalid update: %v, want ErrInvalid", err)
	}
	wantStatus(t, r.state(other.ID), RetryNone, 0, 0, "")
	if done, err := db.UpdateFailuresRetryIf(t.Context(), nil); err != nil || len(done) != 0 {
		t.Errorf("no updates: %v %v", done, err)
	}
}
