package failures

import (
	"fmt"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

func TestAutoRetry(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	old := r.clock.Now()
	// 12 failures of one fingerprint whose jobs are gone.
	for i := range 12 {
		r.insert(&data.Failure{JobID: uint64(1000 + i), Retryable: true, ErrorMessage: "api down", OccurredAt: old})
	}
	waiting := r.jobIn(lanes.NoopJob, "default", queue.StateRetry)
	r.insert(
		&data.Failure{JobID: waiting.ID, Attempt: 1, Retryable: true, ErrorMessage: "waiting", OccurredAt: old},
		&data.Failure{JobID: 2000, Retryable: true, ErrorMessage: "tired", OccurredAt: old, Retry: data.RetryState{Attempts: 3}},
		&data.Failure{JobID: 2001, Kind: fault.Authentication, ErrorMessage: "auth", OccurredAt: old},
		&data.Failure{JobID: 2002, Retryable: true, ErrorMessage: "other", OccurredAt: old},
	)
	r.clock.Add(time.Hour)
	r.insert(&data.Failure{JobID: 2003, Retryable: true, ErrorMessage: "fresh"}) // not cooled down

	res, err := r.retrier.AutoRetry(ctx, AutoRetryOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 10 of the 12 alike, and "other"; "waiting" is the queue's, "tired" is
	// at its limit; the authentication failure and the fresh one are not
	// even looked at.
	if res.Queued != 11 || res.Skipped != 2 || res.Refused != 2 || res.Reasons[RefusedJobPending] != 1 ||
		res.Reasons[RefusedRetryLimit] != 1 || res.Examined != 15 || res.More {
		t.Errorf("run %+v", res)
	}
	if rs := r.failure(14).Retry; rs.Status != data.RetryNone {
		t.Errorf("retry limit recorded: %+v", rs)
	}

	// A small batch stops with more to do.
	res, err = r.retrier.AutoRetry(ctx, AutoRetryOptions{BatchSize: 1}, 0)
	if err != nil || res.Queued != 1 || !res.More {
		t.Errorf("small batch %+v %v", res, err)
	}
	if err := (AutoRetryOptions{CoolDown: -1}).Validate(); err == nil {
		t.Error("negative cool-down accepted")
	}
}

func TestAutoRetryClass(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	for i := range 3 {
		r.insert(&data.Failure{JobID: uint64(3000 + i), Retryable: true, ErrorMessage: fmt.Sprintf("e%d", i), OccurredAt: r.clock.Now()})
	}
	r.clock.Add(time.Hour)
	cls, err := r.retrier.AutoRetryClass(AutoRetryOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cls.Name != RetryFailedJob || cls.Queue != "maintenance" {
		t.Errorf("class %+v", cls)
	}
	run := func(args string) error {
		return cls.Handler.Perform(ctx, &queue.Job{ID: 1, Class: RetryFailedJob, Queue: "maintenance", Args: rawJSON(args)})
	}
	if err := run(`null`); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		n, _, err := r.db.CountFailures(ctx, data.FailureFilter{Conds: []data.Cond{{Field: data.FieldRetryStatus, Op: data.OpEq, Value: "queued"}}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := queued(); n != 2 {
		t.Fatalf("first run queued %d", n)
	}
	// The next run goes on where the first stopped.
	if err := run(`{}`); err != nil || queued() != 3 {
		t.Fatalf("second run: %v, %d queued", err, queued())
	}
	if err := run(`{"after_id": 0}`); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"after_id": -1}`, `{"after": 1}`, `"x"`} {
		err := run(bad)
		if err == nil || RetryableError(err) && lanes.ErrorClass(err) == "" {
			t.Errorf("args %s: %v", bad, err)
		}
	}
}

// FuzzAutoRetryArgs: the automatic retry job's args parser never panics,
// and what it accepts has no negative start.
func FuzzAutoRetryArgs(f *testing.F) {
	for _, seed := range []string{``, `null`, `[]`, `{}`, `{"after_id": 5}`, `{"after_id": -1}`, `{"after": 1}`,
		`{"after_id": 1} {}`, `"x"`, `{"after_id": 1e30}`, `[1]`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		args, err := parseAutoRetryArgs(raw)
		if err == nil && args.AfterID != nil && *args.AfterID < 0 {
			t.Fatalf("%q: accepted after_id %d", raw, *args.AfterID)
		}
	})
}
