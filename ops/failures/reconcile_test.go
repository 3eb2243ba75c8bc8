package failures

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// outcome is how drive ends one attempt of a job.
type outcome struct {
	fail    string // the error's class; "" acks
	kill    bool   // kill instead of failing (the handler refused a retry)
	message string
}

// drive runs attempts of job id through the store's consumer API, one per
// outcome, making a retrying job ready again between them, and returns the
// job.
func drive(t *testing.T, store *queue.Store, now func() time.Time, id uint64, outcomes ...outcome) *queue.Job {
	t.Helper()
	ctx := t.Context()
	j, err := store.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Consume(queue.ConsumerConfig{Name: "test", Queues: []string{j.Queue}, Concurrency: 1, MaxPrefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for i, o := range outcomes {
		if i > 0 {
			if err := store.RetryNow(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		var claimed *queue.Claim
		select {
		case claimed = <-c.Claims():
		case <-ctx.Done():
			t.Fatal("no job claimed")
		}
		if claimed.ID != id {
			t.Fatalf("claimed job %d, want %d", claimed.ID, id)
		}
		if err := claimed.Begin(ctx, 0); err != nil {
			t.Fatal(err)
		}
		ae := queue.AttemptError{Class: o.fail, Message: o.message, At: now()}
		switch {
		case o.fail == "":
			err = claimed.Finish(queue.Ack())
		case o.kill:
			err = claimed.Finish(queue.Kill(ae))
		default:
			err = claimed.Finish(queue.Fail(ae, now().Add(time.Hour)))
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if j, err = store.Get(id); err != nil {
		t.Fatal(err)
	}
	return j
}

// captured is the row the capture would have written for attempt n of j.
func captured(j *queue.Job, n int, message string) *data.Failure {
	return newCaps(0, 0, 0).failure(j, attempt{errClass: "Error", message: message, kind: fault.Transient,
		retryable: true, at: j.CreatedAt, number: n}, nil)
}

// byAttempt indexes a job's rows by attempt.
func byAttempt(t *testing.T, db *data.DB, job uint64) map[int][]*data.Failure {
	t.Helper()
	fs, _, err := db.FindFailures(t.Context(), data.FailureFilter{Conds: []data.Cond{{Field: data.FieldJobID, Op: data.OpEq, Value: job}},
		Limit: data.MaxFailureLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]*data.Failure{}
	for _, f := range fs {
		out[f.Attempt] = append(out[f.Attempt], f)
	}
	return out
}

func newReconciler(t *testing.T, r *failRig, opts ReconcilerOptions) *Reconciler {
	t.Helper()
	opts.Store, opts.DB, opts.Logger = r.store, r.db, testlog.New(t)
	if opts.Writer == nil {
		opts.Writer = r.writer
	}
	opts.OnRecovered = r.tracker.RecordFailures
	rc, err := NewReconciler(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Stop(context.WithoutCancel(t.Context())) })
	return rc
}

// TestReconcileRebuildsMissingRows: each failed attempt the queue recorded
// without a row gets one, rebuilt from the job and its stored error, marked
// recovered, with a kind and retry state read from what the queue kept; the
// rows that exist are left alone, and a second pass rebuilds nothing.
func TestReconcileRebuildsMissingRows(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	job := func(class string, attempts int) uint64 {
		return r.enqueue(queue.NewJob{Class: class, Queue: "default", MaxAttempts: attempts,
			Args: rawJSON(`{"n":1}`), Context: map[string]string{queue.CtxAccountID: "7"}})
	}
	// Dead, out of attempts; its row was lost.
	exhausted := drive(t, r.store, r.clock.Now, job(lanes.FailJob, 1), outcome{fail: "Error", message: "upstream 503"})
	// Killed on its first of three attempts: not retryable.
	killed := drive(t, r.store, r.clock.Now, job(lanes.FailJob, 3), outcome{fail: "Error", kill: true, message: "login required"})
	// Retrying after two failed attempts: the first row was captured, the
	// second lost.
	retrying := drive(t, r.store, r.clock.Now, job(lanes.FailJob, 5),
		outcome{fail: "Error", message: "reset"}, outcome{fail: "Timeout", message: "timed out after 30s: slow"})
	if err := r.db.InsertFailures(ctx, []*data.Failure{captured(retrying, 1, "reset")}); err != nil {
		t.Fatal(err)
	}
	// Succeeded on its second attempt; the first one's row was lost.
	succeeded := drive(t, r.store, r.clock.Now, job(lanes.NoopJob, 5), outcome{fail: "Error", message: "flaky"}, outcome{})
	// A class this process does not register: the lanes fail it without
	// the capture ever seeing it.
	unknown := drive(t, r.store, r.clock.Now, job("RemovedJob", 5), outcome{fail: "UnknownClass", message: `unknown job class "RemovedJob"`})
	// Every row there: nothing to do.
	whole := drive(t, r.store, r.clock.Now, job(lanes.FailJob, 1), outcome{fail: "Error", message: "upstream 503"})
	if err := r.db.InsertFailures(ctx, []*data.Failure{captured(whole, 1, "upstream 503")}); err != nil {
		t.Fatal(err)
	}

	rc := newReconciler(t, r, ReconcilerOptions{})
	res, err := rc.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered != 5 || res.Attempts != 7 {
		t.Fatalf("pass %+v, want 5 rows rebuilt of 7 recorded attempts", res)
	}
	for _, c := range []struct {
		name      string
		job       *queue.Job
		attempt   int
		kind      fault.Kind
		retryable bool
		status    data.RetryStatus
	}{
		{"exhausted", exhausted, 1, fault.Runtime, true, data.RetryNone},
		{"killed", killed, 1, fault.Runtime, false, data.RetryNone},
		{"retrying", retrying, 2, fault.Transient, true, data.RetryNone},
		{"succeeded", succeeded, 1, fault.Runtime, true, data.RetrySuperseded},
		{"unknown class", unknown, 1, fault.Runtime, true, data.RetryNone},
	} {
		rows := byAttempt(t, r.db, c.job.ID)[c.attempt]
		if len(rows) != 1 {
			t.Errorf("%s: %d rows for attempt %d, want 1", c.name, len(rows), c.attempt)
			continue
		}
		f, e := rows[0], c.job.Errors[len(c.job.Errors)-1]
		if c.name == "succeeded" {
			e = c.job.Errors[0]
		}
		if !f.Recovered || f.Kind != c.kind || f.Retryable != c.retryable || f.Retry.Status != c.status ||
			f.Class != c.job.Class || f.Queue != "default" || string(f.Args) != `{"n":1}` || f.AccountID != 7 ||
			f.ErrorClass != e.Class || f.ErrorMessage != e.Message || !f.OccurredAt.Equal(e.At.Truncate(time.Millisecond)) ||
			f.Fingerprint != Fingerprint(SourceJobFailure, string(c.kind), c.job.Class, e.Class+": "+e.Message) {
			t.Errorf("%s: rebuilt %+v from %+v", c.name, f, e)
		}
	}
	// The captured first attempt of the retrying job is superseded by the
	// rebuilt second one, as the capture would have settled it.
	if first := byAttempt(t, r.db, retrying.ID)[1]; len(first) != 1 || first[0].Recovered || first[0].Retry.Status != data.RetrySuperseded {
		t.Errorf("the captured first attempt: %+v", first)
	}
	if rows := byAttempt(t, r.db, whole.ID)[1]; len(rows) != 1 || rows[0].Recovered {
		t.Errorf("a job with every row: %+v", rows)
	}
	// The rebuilt rows count in their issues.
	var occurrences int64
	for _, is := range r.issues() {
		occurrences += is.Occurrences
	}
	if occurrences != 5 {
		t.Errorf("issues count %d occurrences, want the 5 rebuilt rows", occurrences)
	}

	again, err := rc.Reconcile(ctx)
	if err != nil || again.Recovered != 0 || again.Attempts != 7 {
		t.Errorf("second pass %+v %v, want nothing rebuilt", again, err)
	}
	if st := rc.Stats(); st.Passes != 2 || st.Recovered != 5 || st.Running || st.Missing != 0 || st.LastPass.IsZero() {
		t.Errorf("stats %+v", st)
	}
}

// TestReconcileAfterWriterLoss: rows the writer dropped (it was full) are
// rebuilt by the pass the loss triggers, and a row the writer still held
// when the pass began is written by the writer, not rebuilt: the pass
// waits for the writer before it rebuilds.
func TestReconcileAfterWriterLoss(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	// Holds one row, writes only when flushed.
	w := data.NewFailureWriter(r.db, data.FailureWriterOptions{MaxPending: 1, Linger: time.Hour, Logger: testlog.New(t)})
	t.Cleanup(func() { w.Close(context.WithoutCancel(t.Context())) })
	passes := make(chan ReconcileResult, 4)
	rc := newReconciler(t, r, ReconcilerOptions{Writer: w, Interval: time.Hour, LossDelay: time.Millisecond})
	rc.onPass = func(res ReconcileResult, err error) {
		if err != nil {
			t.Error(err)
		}
		passes <- res
	}
	pass := func() ReconcileResult {
		t.Helper()
		select {
		case res := <-passes:
			return res
		case <-ctx.Done():
			t.Fatal("no pass")
		}
		return ReconcileResult{}
	}
	if err := rc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if res := pass(); res.Jobs != 0 { // the pass at start: nothing yet
		t.Fatalf("pass at start %+v", res)
	}
	// As the capture does, the first job's row is handed to the writer
	// before the queue records the failed attempt, and the writer takes it.
	// The writer, full, drops the other two (whose failed attempts the
	// queue recorded already: a dropped row is never written, so its
	// order does not matter).
	var jobs []*queue.Job
	for i := range 3 {
		j := r.job(r.enqueue(queue.NewJob{Class: lanes.FailJob, Queue: "default", MaxAttempts: 1}))
		if i == 0 {
			w.Add(captured(j, 1, "upstream 503"))
		}
		jobs = append(jobs, drive(t, r.store, r.clock.Now, j.ID, outcome{fail: "Error", message: "upstream 503"}))
	}
	for _, j := range jobs[1:] {
		w.Add(captured(j, 1, "upstream 503"))
	}
	if st := w.Stats(); st.Added != 1 || st.Dropped != 2 {
		t.Fatalf("writer %+v, want 1 taken and 2 dropped", st)
	}
	// The drops bring a pass: it waits for the writer's row and rebuilds
	// the two dropped ones.
	if res := pass(); res.Recovered != 2 || res.Jobs != 3 {
		t.Errorf("the pass after the drops %+v, want 2 rows rebuilt", res)
	}
	recovered := 0
	for _, j := range jobs {
		rows := byAttempt(t, r.db, j.ID)[1]
		if len(rows) != 1 {
			t.Fatalf("job %d has %d rows", j.ID, len(rows))
		}
		if rows[0].Recovered {
			recovered++
		}
	}
	if recovered != 2 || byAttempt(t, r.db, jobs[0].ID)[1][0].Recovered {
		t.Errorf("%d rows recovered, want the 2 dropped ones", recovered)
	}
}

// TestReconcileCrashStrike: a job whose handler was running when the
// process died gets a crash strike from the queue at start-up ("orphaned
// by a crash"), which no capture saw: the pass gives it its row.
func TestReconcileCrashStrike(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.bolt")
	clock := newTestClock()
	store, err := queue.Open(path, queue.Options{NoSync: true, Now: clock.Now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Enqueue(t.Context(), queue.NewJob{Class: lanes.SleepJob, Queue: "default", MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Consume(queue.ConsumerConfig{Name: "test", Queues: []string{"default"}, Concurrency: 1, MaxPrefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	cl := <-c.Claims()
	if err := cl.Begin(t.Context(), 0); err != nil { // the running journal has it
		t.Fatal(err)
	}
	if err := store.Flush(t.Context()); err != nil { // nothing is being written
		t.Fatal(err)
	}
	// The process "dies" with the handler running: what is on the disk now
	// (the queue file and its running journal) is what the next start sees.
	crashed := filepath.Join(t.TempDir(), "queue.bolt")
	for _, suffix := range []string{"", ".running"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = queue.Open(crashed, queue.Options{NoSync: true, Now: clock.Now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	j, err := store.Get(res.ID)
	if err != nil || len(j.Errors) != 1 || j.Errors[0].Class != "Orphaned" {
		t.Fatalf("after the crash: %+v %v", j, err)
	}
	db, err := data.Open(t.Context(), filepath.Join(dir, "conveyor.db"), data.Options{ReadConns: 2, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := data.NewFailureWriter(db, data.FailureWriterOptions{})
	t.Cleanup(func() { w.Close(context.WithoutCancel(t.Context())) })
	rc, err := NewReconciler(ReconcilerOptions{Store: store, DB: db, Writer: w, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := rc.Reconcile(t.Context()); err != nil || out.Recovered != 1 {
		t.Fatalf("pass %+v %v", out, err)
	}
	rows := byAttempt(t, db, res.ID)[1]
	if len(rows) != 1 || !rows[0].Recovered || rows[0].ErrorClass != "Orphaned" || !strings.Contains(rows[0].ErrorMessage, "crash") ||
		rows[0].Kind != fault.Runtime || !rows[0].Retryable {
		t.Errorf("crash strike row %+v", rows)
	}
}

// BenchmarkReconcile is one pass over a queue of 100,000 finished jobs, one
// in eight dead with its failure row: what a pass costs at start-up and
// every Interval when nothing is missing.
func BenchmarkReconcile(b *testing.B) {
	ctx := context.WithoutCancel(b.Context())
	const jobs = 100_000
	store, db := benchStores(b, jobs, true)
	w := data.NewFailureWriter(db, data.FailureWriterOptions{})
	defer w.Close(ctx)
	capture, err := NewCapture(CaptureOptions{Writer: w})
	if err != nil {
		b.Fatal(err)
	}
	defer capture.Close(ctx)
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		b.Fatal(err)
	}
	enqueueBurst(b, store, jobs, "mixed")
	pool, err := lanes.New(store, reg, lanes.DefaultTopology(), lanes.Options{Middleware: []lanes.Middleware{capture.Middleware()}, Retryable: RetryableError})
	if err != nil {
		b.Fatal(err)
	}
	runLanes(b, store, pool, jobs)
	rc, err := NewReconciler(ReconcilerOptions{Store: store, DB: db, Writer: w})
	if err != nil {
		b.Fatal(err)
	}
	var res ReconcileResult
	for b.Loop() {
		if res, err = rc.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if res.Recovered != 0 || res.Jobs != jobs {
		b.Fatalf("pass %+v", res)
	}
	b.ReportMetric(float64(res.Jobs), "jobs")
}
