package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestEnqueueReadyAndGet(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.enqueue(NewJob{Class: "NoopJob", Queue: "default", Args: rawJSON(`{"a":1}`),
		Context: map[string]string{CtxAccountID: "42"}})
	if r.Duplicate || r.State != StateReady || r.ID == 0 {
		t.Fatalf("result %+v", r)
	}
	j := e.wantState(r.ID, StateReady)
	if j.Class != "NoopJob" || j.Queue != "default" || string(j.Args) != `{"a":1}` || j.Attempt != 0 ||
		j.MaxAttempts != DefaultMaxAttempts || !j.CreatedAt.Equal(e.clock.Now()) || j.Context[CtxAccountID] != "42" {
		t.Fatalf("job %+v", j)
	}
	q, ok := e.s.Queue("default")
	if !ok || q.Size != 1 || q.Counts[StateReady] != 1 {
		t.Fatalf("queue %+v", q)
	}
	e.clock.Advance(3 * time.Second)
	if q, _ := e.s.Queue("default"); q.Latency != 3*time.Second {
		t.Fatalf("latency %v, want 3s", q.Latency)
	}
	if _, err := e.s.Get(r.ID + 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
}

func TestScheduledJobIsPromotedWhenDue(t *testing.T) {
	t.Parallel()
	e := setup(t)
	runAt := e.clock.Now().Add(time.Minute)
	r := e.enqueue(NewJob{RunAt: runAt})
	if r.State != StateScheduled {
		t.Fatalf("state %s", r.State)
	}
	if !e.s.NextDue().Equal(runAt) {
		t.Fatalf("next due %v, want %v", e.s.NextDue(), runAt)
	}
	e.advance(59 * time.Second)
	e.wantState(r.ID, StateScheduled)
	e.advance(time.Second)
	j := e.wantState(r.ID, StateReady)
	if !j.RunAt.Equal(runAt) {
		t.Fatalf("ready since %v, want its run_at %v", j.RunAt, runAt)
	}
	if !e.s.NextDue().IsZero() {
		t.Fatalf("next due %v after promotion", e.s.NextDue())
	}
}

func TestClaimBeginAck(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.enqueue(NewJob{})
	c := e.consumer("default")
	j := claim(t, c)
	if j.ID != r.ID || j.State != StateRunning || j.Attempt != 1 || !j.LeaseUntil.IsZero() {
		t.Fatalf("claimed %+v", j)
	}
	e.flush()
	e.wantState(r.ID, StateRunning)
	begun := e.clock.Now()
	if err := j.Begin(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The lease counts from the begin, for the attempt's own length.
	if got := e.get(r.ID); !got.StartedAt.Equal(begun) || !got.LeaseUntil.Equal(begun.Add(time.Minute)) || got.Stuck {
		t.Fatalf("begun job %+v", got)
	}
	e.clock.Advance(2 * time.Minute)
	if got := e.get(r.ID); !got.Stuck {
		t.Fatalf("job past its lease is not stuck: %+v", got)
	}
	if ids := e.s.Stuck(); len(ids) != 1 || ids[0] != r.ID {
		t.Fatalf("stuck jobs %v", ids)
	}
	if err := j.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	e.flush()
	got := e.wantState(r.ID, StateDone)
	if got.Attempt != 1 || !got.FinishedAt.Equal(e.clock.Now()) || got.StartedAt.IsZero() {
		t.Fatalf("done job %+v", got)
	}
	stats, err := e.s.Stats(e.clock.Now().Add(-time.Hour))
	if err != nil || len(stats) != 1 || stats[0].Processed != 1 || stats[0].Failed != 0 {
		t.Fatalf("stats %+v %v", stats, err)
	}
}

func TestFailRetriesThenDies(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.enqueue(NewJob{MaxAttempts: 3})
	c := e.consumer("default")
	for attempt := 1; attempt <= 3; attempt++ {
		j := claim(t, c)
		if j.Attempt != attempt {
			t.Fatalf("attempt %d, want %d", j.Attempt, attempt)
		}
		if err := j.Begin(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		retryAt := e.clock.Now().Add(10 * time.Second)
		if err := j.Finish(Fail(AttemptError{Class: "Boom", Message: fmt.Sprintf("boom %d", attempt), Backtrace: "stack"}, retryAt)); err != nil {
			t.Fatal(err)
		}
		e.flush()
		if attempt < 3 {
			got := e.wantState(r.ID, StateRetry)
			if !got.RunAt.Equal(retryAt) || len(got.Errors) != attempt || got.Errors[attempt-1].Message != fmt.Sprintf("boom %d", attempt) ||
				got.Errors[attempt-1].Attempt != attempt {
				t.Fatalf("after attempt %d: %+v", attempt, got)
			}
			e.advance(10 * time.Second)
		}
	}
	got := e.wantState(r.ID, StateDead)
	if got.Attempt != 3 || len(got.Errors) != 3 || got.FinishedAt.IsZero() {
		t.Fatalf("dead job %+v", got)
	}
	stats, _ := e.s.Stats(time.Time{})
	var p, f int64
	for _, m := range stats {
		p, f = p+m.Processed, f+m.Failed
	}
	if p != 3 || f != 3 {
		t.Fatalf("processed %d failed %d", p, f)
	}
}

func TestErrorsKeepTheLastTen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.enqueue(NewJob{MaxAttempts: 50})
	c := e.consumer("default")
	for i := 1; i <= 12; i++ {
		j := take(t, c)
		j.Finish(Fail(AttemptError{Message: fmt.Sprint(i)}, e.clock.Now()))
		e.advance(0)
	}
	c.Close(context.Background())
	e.flush()
	j := e.get(r.ID)
	if len(j.Errors) != MaxErrors || j.Errors[0].Message != "3" || j.Errors[9].Message != "12" {
		t.Fatalf("errors %+v", j.Errors)
	}
}

func TestKillSnoozeRelease(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.consumer("default")

	killed := e.enqueue(NewJob{UniqueKey: "k"})
	j := take(t, c)
	j.Finish(Kill(AttemptError{Message: "discarded by handler"}))
	e.flush()
	if got := e.wantState(killed.ID, StateDead); got.Errors[0].Message != "discarded by handler" {
		t.Fatalf("killed %+v", got)
	}
	// The key was released with the kill.
	if r := e.enqueue(NewJob{UniqueKey: "k"}); r.Duplicate {
		t.Fatal("unique key still held after kill")
	}
	j = take(t, c)
	j.Finish(Ack())

	snoozed := e.enqueue(NewJob{})
	j = take(t, c)
	j.Finish(Snooze(e.clock.Now().Add(time.Minute)))
	e.flush()
	if got := e.wantState(snoozed.ID, StateScheduled); got.Attempt != 0 {
		t.Fatalf("snooze spent an attempt: %+v", got)
	}
	e.advance(time.Minute)
	j = take(t, c)
	if j.ID != snoozed.ID || j.Attempt != 1 {
		t.Fatalf("after snooze %+v", j)
	}
	j.Finish(Release())
	// The consumer has room, so the released job is claimed again at once: with
	// the same attempt number, since the release spent none.
	j = take(t, c)
	if j.ID != snoozed.ID || j.Attempt != 1 {
		t.Fatalf("after release %+v", j)
	}
	j.Finish(Ack())
	e.flush()
}

func TestUniqueKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	first := e.enqueue(NewJob{UniqueKey: "sync:42"})
	dup := e.enqueue(NewJob{UniqueKey: "sync:42"})
	if !dup.Duplicate || dup.ID != first.ID || dup.State != StateReady {
		t.Fatalf("duplicate %+v, first %+v", dup, first)
	}
	// Two in one batch: the second is a duplicate of the first.
	rs, err := e.s.EnqueueMany(context.Background(), []NewJob{
		{Class: "NoopJob", Queue: "default", UniqueKey: "b"},
		{Class: "NoopJob", Queue: "default", UniqueKey: "b"},
	})
	if err != nil || rs[0].Duplicate || !rs[1].Duplicate || rs[1].ID != rs[0].ID {
		t.Fatalf("batch %+v %v", rs, err)
	}
	c := e.consumer("default")
	for range 2 {
		take(t, c).Finish(Ack())
	}
	e.flush()
	if r := e.enqueue(NewJob{UniqueKey: "sync:42"}); r.Duplicate {
		t.Fatal("key held after the job finished")
	}

	// UniqueFor holds the key past the job's end, then lets it go.
	held := e.enqueue(NewJob{UniqueKey: "cron:tick", UniqueFor: time.Hour})
	for {
		j := take(t, c)
		j.Finish(Ack())
		if j.ID == held.ID {
			break
		}
	}
	e.flush()
	if r := e.enqueue(NewJob{UniqueKey: "cron:tick"}); !r.Duplicate || r.ID != held.ID || r.State != StateDone {
		t.Fatalf("within the window: %+v", r)
	}
	e.clock.Advance(time.Hour)
	res, err := e.s.Trim(context.Background())
	if err != nil || res.UniqueKeys != 1 {
		t.Fatalf("trim %+v %v", res, err)
	}
	if r := e.enqueue(NewJob{UniqueKey: "cron:tick"}); r.Duplicate {
		t.Fatal("key held after its window")
	}
}

// TestFinishAppliesToTheJobAsClaimed: a handler or middleware may edit its copy
// of the job (its key, args, even its id); the store releases the key it holds
// and finishes the job it handed out, and the prefetch byte count returns to
// zero.
func TestFinishAppliesToTheJobAsClaimed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	held := e.enqueue(NewJob{UniqueKey: "held", Args: rawJSON(`{"n":1}`)})
	other := e.enqueue(NewJob{Queue: "other"})
	c := e.consumer("default")
	j := claim(t, c)
	if err := j.Begin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	j.UniqueKey = "edited"
	j.Args = rawJSON(`{"n":"` + strings.Repeat("x", 4096) + `"}`)
	j.ID = other.ID
	if err := j.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	e.flush()
	e.wantState(held.ID, StateDone)
	e.wantState(other.ID, StateReady)
	if n := c.inflightBytes.Load(); n != 0 {
		t.Fatalf("prefetch bytes after the ack: %d, want 0", n)
	}
	if r := e.enqueue(NewJob{UniqueKey: "held", Queue: "other"}); r.Duplicate {
		t.Fatalf("the key of a done job is still held: %+v", r)
	}
}

func TestRetentionKeepsAHeldUniqueKey(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.DoneLimit = 1 })
	c := e.consumer("default")
	held := e.enqueue(NewJob{UniqueKey: "tick", UniqueFor: time.Hour})
	take(t, c).Finish(Ack())
	e.enqueue(NewJob{})
	take(t, c).Finish(Ack())
	e.flush() // the second ack's commit trims the first done job
	if _, err := e.s.Get(held.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the held job's record should be trimmed: %v", err)
	}
	if r := e.enqueue(NewJob{UniqueKey: "tick"}); !r.Duplicate || r.ID != held.ID || r.State != StateDone {
		t.Fatalf("the key was released by retention inside its window: %+v", r)
	}
	e.clock.Advance(time.Hour)
	if res, _ := e.s.Trim(context.Background()); res.UniqueKeys != 1 {
		t.Fatalf("expired key not trimmed: %+v", res)
	}
	if r := e.enqueue(NewJob{UniqueKey: "tick"}); r.Duplicate {
		t.Fatalf("key held after its window: %+v", r)
	}
}

func TestUniqueForExpiredKeyIsTakenOverWithoutTrim(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.consumer("default")
	r := e.enqueue(NewJob{UniqueKey: "k", UniqueFor: time.Minute})
	take(t, c).Finish(Ack())
	e.flush()
	e.clock.Advance(2 * time.Minute)
	if r2 := e.enqueue(NewJob{UniqueKey: "k"}); r2.Duplicate || r2.ID == r.ID {
		t.Fatalf("expired key not taken over: %+v", r2)
	}
}

// TestEnqueueKeepsNoCallerMemory: a caller whose ctx ends before the commit
// gets its call back and may reuse its buffers; the job is written as it was
// handed over.
func TestEnqueueKeepsNoCallerMemory(t *testing.T) {
	t.Parallel()
	e := setup(t)
	hold, held := make(chan struct{}), make(chan struct{})
	go e.s.admin(context.Background(), func(*txn) error { // holds the writer
		close(held)
		<-hold
		return nil
	})
	<-held
	args := []byte(`{"n":1}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.s.Enqueue(ctx, NewJob{Class: "C", Queue: "default", Args: args}); !errors.Is(err, context.Canceled) {
		t.Fatalf("enqueue with an ended ctx: %v", err)
	}
	copy(args, `{"n":2}`)
	close(hold)
	e.flush()
	page, err := e.s.List(ListFilter{State: StateReady})
	if err != nil || len(page.Jobs) != 1 {
		t.Fatalf("list: %+v %v", page, err)
	}
	if got := string(page.Jobs[0].Args); got != `{"n":1}` {
		t.Fatalf("stored args %s, want what was handed over", got)
	}
}

// TestTrimFreesEveryExpiredKey: one retention pass frees every expired key,
// however many (it used to free 10,000 a pass, so a faster rate grew the file
// for ever).
func TestTrimFreesEveryExpiredKey(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.NoSync = true })
	ctx := context.Background()
	const n = 10_050
	batch := make([]NewJob, 0, 1000)
	for i := range n {
		batch = append(batch, NewJob{Class: "C", Queue: "default", UniqueKey: fmt.Sprintf("k%d", i), UniqueFor: time.Minute})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := e.s.EnqueueMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	c := e.s.mustConsume(t, ConsumerConfig{Name: "c", Queues: []string{"default"}, Concurrency: 1000})
	for range n {
		if err := take(t, c).Finish(Ack()); err != nil {
			t.Fatal(err)
		}
	}
	e.flush()
	e.clock.Advance(2 * time.Minute)
	res, err := e.s.Trim(ctx)
	if err != nil || res.UniqueKeys != n {
		t.Fatalf("trim freed %d keys (%v), want %d", res.UniqueKeys, err, n)
	}
}

func TestBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.s.EnqueueMany(context.Background(), []NewJob{
		{Class: "NoopJob", Queue: "default"},
		{Class: "NoopJob", Queue: "default", Args: rawJSON(`{"broken":`)},
	})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "args" || ve.Index != 1 {
		t.Fatalf("err %v", err)
	}
	if c := e.s.Counts(); c[StateReady] != 0 {
		t.Fatalf("half-written batch: %v", c)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.MaxArgsBytes = 16 })
	cases := []struct {
		name  string
		job   NewJob
		field string
	}{
		{"no class", NewJob{Queue: "q"}, "class"},
		{"space in class", NewJob{Class: "A B", Queue: "q"}, "class"},
		{"no queue", NewJob{Class: "A"}, "queue"},
		{"bad queue", NewJob{Class: "A", Queue: "a/b"}, "queue"},
		{"bad json", NewJob{Class: "A", Queue: "q", Args: rawJSON(`{`)}, "args"},
		{"too big", NewJob{Class: "A", Queue: "q", Args: rawJSON(`"` + strings.Repeat("x", 20) + `"`)}, "args"},
		{"negative attempts", NewJob{Class: "A", Queue: "q", MaxAttempts: -1}, "max_attempts"},
		{"unique_for alone", NewJob{Class: "A", Queue: "q", UniqueFor: time.Second}, "unique_for"},
		{"year 1", NewJob{Class: "A", Queue: "q", RunAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Hour)}, "run_at"},
		{"year 2999", NewJob{Class: "A", Queue: "q", RunAt: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)}, "run_at"},
		{"context key", NewJob{Class: "A", Queue: "q", Context: map[string]string{"": "x"}}, "context"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.Enqueue(context.Background(), tc.job)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("err %v, want a validation error on %q", err, tc.field)
			}
		})
	}
}

func TestPauseIsPersistedAndSkipsClaims(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if err := e.s.Pause(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if q, _ := e.s.Queue("default"); !q.Paused {
		t.Fatal("pause lost on restart")
	}
	e.enqueue(NewJob{})
	c := e.consumer("default")
	noJob(t, e, c)
	if err := e.s.Resume(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	take(t, c).Finish(Ack())
	e.flush()
}

func TestGateHoldsJobs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.consumer("ai")
	c.SetOpen(false)
	e.enqueue(NewJob{Queue: "ai"})
	noJob(t, e, c)
	c.SetOpen(true)
	take(t, c).Finish(Ack())
	e.flush()
}

func TestClearRetryNowDiscard(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	for range 5 {
		e.enqueue(NewJob{Queue: "q", UniqueKey: fmt.Sprint(time.Now().UnixNano())})
	}
	sched := e.enqueue(NewJob{Queue: "q", RunAt: e.clock.Now().Add(time.Hour)})
	n, err := e.s.Clear(ctx, "q")
	if err != nil || n != 5 {
		t.Fatalf("clear %d %v", n, err)
	}
	if n, _ := e.s.Clear(ctx, "nope"); n != 0 {
		t.Fatalf("clear of unknown queue removed %d", n)
	}
	if err := e.s.RetryNow(ctx, sched.ID); err != nil {
		t.Fatal(err)
	}
	e.wantState(sched.ID, StateReady)
	if err := e.s.RetryNow(ctx, sched.ID); !errors.Is(err, ErrWrongState) {
		t.Fatalf("retry of a ready job: %v", err)
	}
	c := e.consumer("q")
	j := take(t, c)
	if err := e.s.Discard(ctx, j.ID); !errors.Is(err, ErrRunning) {
		t.Fatalf("discard running: %v", err)
	}
	j.Finish(Kill(AttemptError{Message: "x"}))
	e.flush()
	if err := e.s.RetryNow(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j = take(t, c)
	j.Finish(Kill(AttemptError{Message: "again"}))
	e.flush()
	if err := e.s.Discard(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Get(j.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("discarded job still there: %v", err)
	}
	if err := e.s.Discard(ctx, j.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second discard: %v", err)
	}
}

func TestRescueOrphans(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.MaxOrphans = 3 })
	ctx := context.Background()
	started := e.enqueue(NewJob{Queue: "a"})
	waiting := e.enqueue(NewJob{Queue: "b"})
	returned := e.enqueue(NewJob{Queue: "c"})

	// A job whose handler runs when the process dies is an orphan with a
	// strike, and a suspect; a job that was claimed but never begun, or whose
	// handler had returned (its ack not yet committed), goes back untouched.
	for strike := 1; strike <= 3; strike++ {
		ca, _ := e.s.Consume(ConsumerConfig{Name: "a", Queues: []string{"a"}, Concurrency: 1})
		cb, _ := e.s.Consume(ConsumerConfig{Name: "b", Queues: []string{"b"}, Concurrency: 1})
		cc, _ := e.s.Consume(ConsumerConfig{Name: "c", Queues: []string{"c"}, Concurrency: 1})
		ja := claim(t, ca)
		if ja.suspect != (strike > 1) {
			t.Fatalf("strike %d: job claimed with suspect %v", strike, ja.suspect)
		}
		claim(t, cb)
		jc := claim(t, cc)
		if err := ja.Begin(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if strike > 1 {
			// A suspect runs alone: the other job waits for it to end.
			begun := make(chan error, 1)
			go func() { begun <- jc.Begin(ctx, 0) }()
			waitWaiters(t, e.s, 1)
			e.crash(nil)
			if err := <-begun; err == nil {
				t.Fatal("a job began while a suspect ran")
			}
		} else {
			if err := jc.Begin(ctx, 0); err != nil {
				t.Fatal(err)
			}
			e.crash(func() {
				if err := jc.Finish(Ack()); err != nil {
					t.Error(err)
				}
			})
		}
		j := e.get(started.ID)
		wantState := StateReady
		wantMsg := "orphaned by a crash"
		if strike == 3 {
			wantState, wantMsg = StateDead, "crashed the worker 3 times"
		}
		if j.State != wantState || j.Orphans != strike || j.Attempt != strike || j.Errors[len(j.Errors)-1].Message != wantMsg {
			t.Fatalf("strike %d: %+v", strike, j)
		}
		for _, id := range []uint64{waiting.ID, returned.ID} {
			w := e.get(id)
			if w.State != StateReady || w.Orphans != 0 || w.Attempt != 0 || len(w.Errors) != 0 {
				t.Fatalf("job %d after crash %d: %+v", id, strike, w)
			}
		}
	}
}

// TestCrashSpendsTheLastAttempt: a crash spends the attempt it interrupted, so
// a job on its last attempt goes to dead, as it would after a failure.
func TestCrashSpendsTheLastAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.enqueue(NewJob{MaxAttempts: 1})
	c := e.consumer("default")
	if err := claim(t, c).Begin(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	e.crash(nil)
	if j := e.wantState(r.ID, StateDead); j.Attempt != 1 || j.Orphans != 1 {
		t.Fatalf("job after the crash: %+v", j)
	}
}

// corruptRecord overwrites a job's record with bytes that do not decode.
func (e *env) corruptRecord(id uint64) {
	e.t.Helper()
	err := e.s.admin(context.Background(), func(t *txn) error {
		return t.jobs.Put(u64(id), []byte{recordFormat1, 0xff, 0xff})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// TestUnreadableRecordsFreeTheirKeysAndCanBeDiscarded: a job whose record cannot
// be decoded goes to dead when claimed, without keeping its unique key, and
// can be discarded there, or where it waits.
func TestUnreadableRecordsFreeTheirKeysAndCanBeDiscarded(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	claimed := e.enqueue(NewJob{UniqueKey: "claimed"})
	waiting := e.enqueue(NewJob{Queue: "idle", UniqueKey: "waiting"})
	later := e.enqueue(NewJob{Queue: "idle", RunAt: e.clock.Now().Add(time.Hour), UniqueKey: "later"})
	for _, id := range []uint64{claimed.ID, waiting.ID, later.ID} {
		e.corruptRecord(id)
	}
	c := e.consumer("default")
	noJob(t, e, c) // quarantined on the claim: nothing delivered
	if q, _ := e.s.Queue("default"); q.Counts[StateDead] != 1 {
		t.Fatalf("the unreadable job was not quarantined: %+v", q)
	}
	if r := e.enqueue(NewJob{Queue: "other", UniqueKey: "claimed"}); r.Duplicate {
		t.Fatalf("a quarantined job keeps its unique key: %+v", r)
	}
	for _, id := range []uint64{claimed.ID, waiting.ID, later.ID} {
		if err := e.s.Discard(ctx, id); err != nil {
			t.Fatalf("discard of unreadable job %d: %v", id, err)
		}
		if _, err := e.s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("discarded job %d: %v", id, err)
		}
	}
	for _, key := range []string{"waiting", "later"} {
		if r := e.enqueue(NewJob{Queue: "other", UniqueKey: key}); r.Duplicate {
			t.Fatalf("a discarded job keeps its unique key: %+v", r)
		}
	}
}

// waitWaiters waits until n Begins wait at the crash guard's gate. It is
// bounded by the test's deadline: a Begin that does not wait never counts.
func waitWaiters(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := testContext(t)
	for {
		s.jn.mu.Lock()
		w := s.jn.waiting
		s.jn.mu.Unlock()
		if w == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d begins wait at the gate, want %d", w, n)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestSuspectRunsAlone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	culprit := e.enqueue(NewJob{Queue: "a"})
	c := e.consumer("a")
	j := claim(t, c)
	if err := j.Begin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	e.crash(nil)
	innocent := e.enqueue(NewJob{Queue: "b"})
	later := e.enqueue(NewJob{Queue: "b"})
	ca, cb := e.consumer("a"), e.s.mustConsume(t, ConsumerConfig{Name: "b", Queues: []string{"b"}, Concurrency: 2})
	sus := claim(t, ca)
	if sus.ID != culprit.ID || !sus.suspect {
		t.Fatalf("claimed %+v, want the suspect %d", sus, culprit.ID)
	}
	in, lt := claim(t, cb), claim(t, cb)
	if in.ID != innocent.ID || lt.ID != later.ID {
		t.Fatalf("claimed %d and %d", in.ID, lt.ID)
	}
	// The innocent runs; the suspect waits for it to end ...
	if err := in.Begin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	susBegun := make(chan error, 1)
	go func() { susBegun <- sus.Begin(ctx, 0) }()
	waitWaiters(t, e.s, 1)
	// ... and, while it waits, nothing else begins either.
	laterBegun := make(chan error, 1)
	go func() { laterBegun <- lt.Begin(ctx, 0) }()
	waitWaiters(t, e.s, 2)
	if err := in.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	if err := <-susBegun; err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, e.s, 1) // the later job still waits: the suspect runs alone
	if err := sus.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	if err := <-laterBegun; err != nil {
		t.Fatal(err)
	}
	lt.Finish(Ack())
	e.flush()
	for _, id := range []uint64{culprit.ID, innocent.ID, later.ID} {
		e.wantState(id, StateDone)
	}
	// A suspect whose attempt returned is a suspect no more.
	if j := e.get(culprit.ID); j.Orphans != 1 {
		t.Fatalf("culprit %+v", j)
	}
}

// TestCloseCommitsYoungFinishes: an ack handed over just before Close is
// committed by it, though it is younger than the ack linger.
func TestCloseCommitsYoungFinishes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	r := e.enqueue(NewJob{})
	c := e.consumer("default")
	j := claim(t, c)
	if err := j.Begin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Close(); err != nil { // no Flush or Check first: they would commit it
		t.Fatal(err)
	}
	e.open()
	if j := e.wantState(r.ID, StateDone); j.Attempt != 1 {
		t.Fatalf("job after the restart: %+v", j)
	}
}

// TestOneOutcomePerClaim: the claim protocol cannot be misused. An attempt's
// outcome needs its Begin (the claim stays open); a claim finishes once, and a
// second Finish or a Begin after it is refused and changes nothing (a second
// Ack used to lower the in-flight count again).
func TestOneOutcomePerClaim(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	r := e.enqueue(NewJob{})
	c := e.consumer("default")
	j := claim(t, c)
	if err := j.Finish(Ack()); !errors.Is(err, ErrNotBegun) {
		t.Fatalf("an ack without begin: %v", err)
	}
	if err := j.Begin(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(ctx, 0); err == nil {
		t.Fatal("a claim was begun twice")
	}
	if err := j.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	for _, again := range []func() error{
		func() error { return j.Finish(Ack()) },
		func() error { return j.Finish(Fail(AttemptError{}, time.Time{})) },
		func() error { return j.Finish(Release()) },
		func() error { return j.Begin(ctx, 0) },
	} {
		if err := again(); !errors.Is(err, ErrFinished) {
			t.Fatalf("a second outcome: %v", err)
		}
	}
	e.flush()
	e.wantState(r.ID, StateDone)
	if n, b := c.inflight.Load(), c.inflightBytes.Load(); n != 0 || b != 0 {
		t.Fatalf("in flight after one ack: %d jobs, %d bytes", n, b)
	}
}

// TestCloseReleasesUnstartedJobs: closing a consumer puts back the jobs it
// claimed that no worker took, as they were (ready, no attempt spent, nothing
// recorded), and leaves the job a worker holds running; that job's outcome is
// still taken after the close.
func TestCloseReleasesUnstartedJobs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []uint64
	for range 3 {
		ids = append(ids, e.enqueue(NewJob{}).ID)
	}
	c, _ := e.s.Consume(ConsumerConfig{Name: "c", Queues: []string{"default"}, Concurrency: 3})
	held := claim(t, c)
	if err := held.Begin(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	for ctx := testContext(t); len(c.Claims()) < 2; { // the other two are claimed and waiting in the channel
		if ctx.Err() != nil {
			t.Fatal("the other jobs were never claimed")
		}
		e.s.kick()
		e.flush()
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range c.Claims() {
		t.Fatal("jobs left in a closed consumer")
	}
	for _, id := range ids {
		j := e.get(id)
		if id == held.ID {
			if j.State != StateRunning || j.Attempt != 1 {
				t.Fatalf("held job after close: %+v", j)
			}
			continue
		}
		if j.State != StateReady || j.Attempt != 0 || j.Orphans != 0 || len(j.Errors) != 0 || !j.StartedAt.IsZero() {
			t.Fatalf("unstarted job %d after close: %+v", id, j)
		}
	}
	if n := c.inflight.Load(); n != 1 {
		t.Fatalf("in flight after close: %d, want the held job only", n)
	}
	if err := held.Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	e.flush()
	e.wantState(held.ID, StateDone)
	if n, b := c.inflight.Load(), c.inflightBytes.Load(); n != 0 || b != 0 {
		t.Fatalf("in flight after the last ack: %d jobs, %d bytes", n, b)
	}
}

func TestStrictAndWeightedOrder(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for range 20 {
		e.enqueue(NewJob{Queue: "low"})
	}
	for range 20 {
		e.enqueue(NewJob{Queue: "high"})
	}
	strict, _ := e.s.Consume(ConsumerConfig{Name: "strict", Queues: []string{"high", "low"}, Concurrency: 1})
	for i := range 20 {
		j := take(t, strict)
		if j.Queue != "high" {
			t.Fatalf("strict order: job %d came from %s", i, j.Queue)
		}
		j.Finish(Ack())
	}
	strict.Close(context.Background())
	e.flush()
	for range 20 {
		e.enqueue(NewJob{Queue: "high"})
	}
	// Weighted: both queues are served even though "high" never runs dry.
	weighted, _ := e.s.Consume(ConsumerConfig{Name: "weighted", Queues: []string{"high", "low"}, Weights: []int{1, 1}, Concurrency: 4})
	defer weighted.Close(context.Background())
	seen := map[string]int{}
	for range 16 {
		j := take(t, weighted)
		seen[j.Queue]++
		j.Finish(Ack())
	}
	if seen["low"] == 0 || seen["high"] == 0 {
		t.Fatalf("weighted order starved a queue: %v", seen)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var ids []uint64
	for i := range 7 {
		class := "A"
		if i%2 == 1 {
			class = "B"
		}
		ids = append(ids, e.enqueue(NewJob{Class: class, Queue: []string{"x", "y"}[i%2]}).ID)
	}
	// All ready jobs, merged across queues in id order, 3 per page.
	var got []uint64
	after := ""
	for {
		p, err := e.s.List(ListFilter{State: StateReady, Limit: 3, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range p.Jobs {
			got = append(got, j.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("ready pages %v, want %v", got, ids)
	}
	p, _ := e.s.List(ListFilter{State: StateReady, Queue: "y"})
	if len(p.Jobs) != 3 || p.Jobs[0].Class != "B" {
		t.Fatalf("queue filter: %+v", p.Jobs)
	}
	p, _ = e.s.List(ListFilter{State: StateReady, Class: "A"})
	if len(p.Jobs) != 4 {
		t.Fatalf("class filter: %d jobs", len(p.Jobs))
	}
	// Done: newest first.
	c := e.consumer("x", "y")
	for range 7 {
		take(t, c).Finish(Ack())
	}
	e.flush()
	p, _ = e.s.List(ListFilter{State: StateDone, Limit: 2})
	if len(p.Jobs) != 2 || p.Jobs[0].ID != ids[6] || p.Jobs[1].ID != ids[5] || p.Next == "" {
		t.Fatalf("done page %+v", p)
	}
	p, _ = e.s.List(ListFilter{State: StateDone, Limit: 10, After: p.Next})
	if len(p.Jobs) != 5 || p.Jobs[0].ID != ids[4] || p.Next != "" {
		t.Fatalf("done page 2 %+v", p)
	}
	if _, err := e.s.List(ListFilter{State: StateDone, After: "zz"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// TestRetentionKeepsPaceInTheCommits: done stays at its limit while jobs
// finish, without a retention pass (it used to grow until the janitor's next
// minute), and each commit's share of the work is bounded.
func TestRetentionKeepsPaceInTheCommits(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.NoSync = true; o.DoneLimit = 100 })
	ctx := context.Background()
	batch := make([]NewJob, 1000)
	for i := range batch {
		batch[i] = NewJob{Class: "C", Queue: "default"}
	}
	c := e.s.mustConsume(t, ConsumerConfig{Name: "c", Queues: []string{"default"}, Concurrency: 64})
	for range 3 {
		if _, err := e.s.EnqueueMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for range len(batch) {
			if err := take(t, c).Finish(Ack()); err != nil {
				t.Fatal(err)
			}
		}
		e.flush()
		if n := e.s.Counts()[StateDone]; n != 100 {
			t.Fatalf("done holds %d jobs, limit 100", n)
		}
	}
	// A backlog (here: a lower limit) is worked off in steps of a bounded size.
	err := e.s.admin(ctx, func(tx *txn) error {
		n, more, err := tx.trimFinished(StateDone, 10, time.Hour, 7)
		if err != nil || n != 7 || !more {
			t.Errorf("one bounded step: %d removed, more %v, %v", n, more, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTrimRetention(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.DoneLimit = 3; o.DoneRetention = time.Hour })
	c := e.consumer("default")
	var ids []uint64
	for range 5 {
		ids = append(ids, e.enqueue(NewJob{}).ID)
		take(t, c).Finish(Ack())
	}
	e.flush()
	// The commits trim as they go: done never holds more than its limit.
	if n := e.s.Counts()[StateDone]; n != 3 {
		t.Fatalf("done holds %d, limit 3", n)
	}
	if _, err := e.s.Get(ids[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oldest done job kept: %v", err)
	}
	e.wantState(ids[2], StateDone)
	// By age: a pass when nothing else commits (the janitor's tick).
	e.clock.Advance(2 * time.Hour)
	if res, err := e.s.Trim(context.Background()); err != nil || res.Done != 3 {
		t.Fatalf("trim by age: %+v %v", res, err)
	}
	if n := e.s.Counts()[StateDone]; n != 0 {
		t.Fatalf("done left %d", n)
	}
}

// TestFinishedJobsGoByFinishTime: retention trims, and lists show first, by
// when a job finished, not by when it was enqueued. A job that dies after weeks
// of retries is the newest dead job, not the first one removed.
func TestFinishedJobsGoByFinishTime(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.DeadLimit = 2 })
	c := e.consumer("default")
	slow := e.enqueue(NewJob{MaxAttempts: 2})
	j := take(t, c)
	if err := j.Finish(Fail(AttemptError{Message: "try later"}, e.clock.Now().Add(20*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	var quick []uint64
	for range 2 {
		quick = append(quick, e.enqueue(NewJob{}).ID)
		if err := take(t, c).Finish(Kill(AttemptError{Message: "no"})); err != nil {
			t.Fatal(err)
		}
		e.flush()
	}
	e.advance(20 * 24 * time.Hour)
	if j := take(t, c); j.ID != slow.ID {
		t.Fatalf("claimed %d, want the retried job %d", j.ID, slow.ID)
	} else if err := j.Finish(Fail(AttemptError{Message: "for good"}, time.Time{})); err != nil {
		t.Fatal(err)
	}
	e.flush()
	page, err := e.s.List(ListFilter{State: StateDead})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, j := range page.Jobs {
		ids = append(ids, j.ID)
	}
	// Dead is over its limit of 2 at the third death: the commit trims the
	// first job that died, and the list shows the latest death first.
	if want := []uint64{slow.ID, quick[1]}; !slices.Equal(ids, want) {
		t.Fatalf("dead jobs listed %v, want the latest death first %v", ids, want)
	}
	if _, err := e.s.Get(quick[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the first job to die was kept: %v", err)
	}
	e.wantState(slow.ID, StateDead)
	e.wantState(quick[1], StateDead)
}

func TestSubscribeSeesCommits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	sub := e.s.Subscribe()
	defer sub.Close()
	e.enqueue(NewJob{Queue: "q1"})
	ctx := testContext(t)
	select {
	case ch := <-sub.C:
		if ch.Enqueued != 1 || len(ch.Queues) != 1 || ch.Queues[0] != "q1" {
			t.Fatalf("change %+v", ch)
		}
	case <-ctx.Done():
		t.Fatal("no change")
	}
	e.s.Pause(context.Background(), "q1")
	select {
	case ch := <-sub.C:
		if len(ch.Ops) != 1 || ch.Ops[0] != "pause q1" {
			t.Fatalf("change %+v", ch)
		}
	case <-ctx.Done():
		t.Fatal("no change")
	}
}

func TestOpenIsExclusive(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := Open(e.path, Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestCountsSurviveReopen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for range 3 {
		e.enqueue(NewJob{Queue: "a"})
	}
	e.enqueue(NewJob{Queue: "b", RunAt: e.clock.Now().Add(time.Hour)})
	e.reopen()
	qa, _ := e.s.Queue("a")
	qb, _ := e.s.Queue("b")
	if qa.Size != 3 || qb.Counts[StateScheduled] != 1 || !e.s.NextDue().Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("after reopen a=%+v b=%+v next=%v", qa, qb, e.s.NextDue())
	}
}

func TestPrefetchIsCappedByBytes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	big := rawJSON(`"` + strings.Repeat("x", 4000) + `"`)
	for range 20 {
		e.enqueue(NewJob{Args: big})
	}
	c, err := e.s.Consume(ConsumerConfig{Name: "c", Queues: []string{"default"}, Concurrency: 2, MaxPrefetchBytes: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	// Fast jobs make the prefetch large by count; the byte cap holds it to
	// what fits in 10,000 bytes (two 4 KB jobs), never below the two workers.
	for range 8 {
		j := claim(t, c)
		j.Begin(context.Background(), 0)
		j.Finish(Ack())
	}
	e.flush()
	if held := c.inflightBytes.Load(); held > 10_000+int64(len(big))+jobOverhead {
		t.Fatalf("consumer holds %d bytes of prefetched jobs, cap 10000", held)
	}
	if n := c.inflight.Load(); n < 2 {
		t.Fatalf("only %d jobs in flight; the workers should always be fed", n)
	}
}

// TestFinishTimeEntriesOfACommit: jobs finished in one commit share one
// finish-time entry; the newest-first list pages through it (a cursor inside
// an entry, and one whose entry was trimmed meanwhile), a job discarded out
// of it leaves the rest, and retention trims part of an entry, keeping the
// newest.
func TestFinishTimeEntriesOfACommit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c, err := e.s.Consume(ConsumerConfig{Name: "five", Queues: []string{"default"}, Concurrency: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ids []uint64
	for range 5 {
		ids = append(ids, e.enqueue(NewJob{}).ID)
	}
	var claims []*Claim
	for range 5 {
		claims = append(claims, take(t, c))
	}
	// Finished together: the acks ride in one commit.
	for _, cl := range claims {
		if err := cl.Finish(Ack()); err != nil {
			t.Fatal(err)
		}
	}
	e.flush()
	entries := 0
	e.s.db.View(func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketDoneAt).Stats().KeyN
		return nil
	})
	if entries != 1 {
		t.Fatalf("%d finish-time entries for one commit's 5 acks, want 1", entries)
	}
	list := func(after string, limit int) ([]uint64, string) {
		t.Helper()
		page, err := e.s.List(ListFilter{State: StateDone, After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		return got, page.Next
	}
	var all []uint64
	for after := ""; ; {
		got, next := list(after, 2)
		all = append(all, got...)
		if next == "" {
			break
		}
		after = next
	}
	if want := []uint64{ids[4], ids[3], ids[2], ids[1], ids[0]}; !slices.Equal(all, want) {
		t.Fatalf("paged newest first: %v, want %v", all, want)
	}
	_, cursor := list("", 2) // after ids[3]
	if err := e.s.Discard(context.Background(), ids[2]); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(cursor, 10); !slices.Equal(got, []uint64{ids[1], ids[0]}) {
		t.Fatalf("after a discard inside the entry: %v", got)
	}
	// Retention trims the oldest first, part of the entry.
	e.opts.DoneLimit = 2
	e.reopen()
	if r, err := e.s.Trim(context.Background()); err != nil || r.Done != 2 {
		t.Fatalf("trim: %+v %v", r, err)
	}
	if got, _ := list("", 10); !slices.Equal(got, []uint64{ids[4], ids[3]}) {
		t.Fatalf("after trimming to 2: %v", got)
	}
	// A cursor into the part that was trimmed goes on below it: nothing.
	if got, next := list(cursor, 10); len(got) != 0 || next != "" {
		t.Fatalf("a cursor past the trimmed jobs: %v %q", got, next)
	}
}
