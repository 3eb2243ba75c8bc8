package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// httpStatus is an outside service's answer, as a connector reports it.
type httpStatus int

func (e httpStatus) Error() string   { return fmt.Sprintf("HTTP %d", int(e)) }
func (e httpStatus) StatusCode() int { return int(e) }

func TestCaptureRecordsFailures(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{classes: []lanes.Class{{Name: "SlowJob", Queue: "sync", Args: lanes.FreeForm, Timeout: 2 * time.Second,
		Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })}}})
	expired, cancel := context.WithDeadline(t.Context(), time.Unix(1, 0))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()

	type want struct {
		recorded   bool
		kind       fault.Kind
		retryable  bool
		errClass   string
		message    string
		backtrace  string // substring
		chainLines int    // lines of the error chain when not a panic
	}
	cases := []struct {
		name string
		ctx  context.Context
		job  queue.Job
		err  error
		want want
	}{
		{"plain error", t.Context(), queue.Job{Class: "SyncJob"}, errors.New("nil pointer somewhere"),
			want{true, fault.Runtime, true, "Error", "nil pointer somewhere", "", 0}},
		{"wrapped transient", t.Context(), queue.Job{Class: "SyncJob"}, fmt.Errorf("fetch page 3: %w", httpStatus(503)),
			want{true, fault.Transient, true, "failures.httpStatus", "fetch page 3: HTTP 503", "failures.httpStatus: HTTP 503", 2}},
		{"authentication by status", t.Context(), queue.Job{Class: "SyncJob"}, httpStatus(401),
			want{true, fault.Authentication, false, "failures.httpStatus", "HTTP 401", "", 0}},
		{"authentication by kind", t.Context(), queue.Job{Class: lanes.FailJob},
			&fault.Error{Kind: fault.Authentication, Err: errors.New("session expired")},
			want{true, fault.Authentication, false, "Error", "session expired", "", 0}},
		{"sentinel authentication", t.Context(), queue.Job{Class: "SyncJob"}, fmt.Errorf("login: %w", fault.ErrAuthentication),
			want{true, fault.Authentication, false, "Error", "login: authentication failed", "", 0}},
		{"panic", t.Context(), queue.Job{Class: "SyncJob"}, &lanes.PanicError{Value: "boom", Stack: "goroutine 9 [running]:\nmain.f()"},
			want{true, fault.Runtime, true, "Panic", "panic: boom", "goroutine 9 [running]", 0}},
		{"timeout", expired, queue.Job{Class: "SlowJob"}, context.DeadlineExceeded,
			want{true, fault.Transient, true, "Timeout", "timed out after 2s: context deadline exceeded", "lanes.TimeoutError", 2}},
		{"timeout with a runtime error", expired, queue.Job{Class: "SlowJob"}, errors.New("gave up"),
			want{true, fault.Transient, true, "Timeout", "timed out after 2s: gave up", "", 2}},
		{"discarded", t.Context(), queue.Job{Class: "SyncJob"}, lanes.Kill(errors.New("bad args")),
			want{true, fault.Runtime, false, "Error", "bad args", "", 2}},
		{"snooze is not a failure", t.Context(), queue.Job{Class: "SyncJob"}, lanes.Snooze(time.Minute), want{}},
		{"shutdown is not a failure", cancelled, queue.Job{Class: "SyncJob"}, context.Canceled, want{}},
		{"success", t.Context(), queue.Job{Class: "SyncJob"}, nil, want{}},
	}
	for i, c := range cases {
		j := c.job
		j.ID, j.Queue, j.Attempt = uint64(100+i), "sync", 1
		h := r.capture.Middleware()(lanes.HandlerFunc(func(context.Context, *queue.Job) error { return c.err }))
		if got := h.Perform(c.ctx, &j); got != c.err {
			t.Errorf("%s: the middleware changed the error: %v", c.name, got)
		}
	}
	r.settle()
	byJob := map[uint64]*data.Failure{}
	for _, f := range r.failures() {
		byJob[f.JobID] = f
	}
	for i, c := range cases {
		f := byJob[uint64(100+i)]
		if !c.want.recorded {
			if f != nil {
				t.Errorf("%s: recorded %+v", c.name, f)
			}
			continue
		}
		if f == nil {
			t.Errorf("%s: not recorded", c.name)
			continue
		}
		if f.Kind != c.want.kind || f.Retryable != c.want.retryable || f.ErrorClass != c.want.errClass || f.ErrorMessage != c.want.message {
			t.Errorf("%s: kind %s retryable %v error %s %q, want %s %v %s %q", c.name, f.Kind, f.Retryable, f.ErrorClass,
				f.ErrorMessage, c.want.kind, c.want.retryable, c.want.errClass, c.want.message)
		}
		if !strings.Contains(f.Backtrace, c.want.backtrace) {
			t.Errorf("%s: backtrace %q, want it to hold %q", c.name, f.Backtrace, c.want.backtrace)
		}
		if c.want.chainLines > 0 && strings.Count(f.Backtrace, "\n")+1 != c.want.chainLines {
			t.Errorf("%s: error chain %q, want %d lines", c.name, f.Backtrace, c.want.chainLines)
		}
		wantFP := Fingerprint(SourceJobFailure, string(f.Kind), f.Class, f.ErrorClass+": "+f.ErrorMessage)
		if f.Class != c.job.Class || f.Queue != "sync" || f.Attempt != 1 || f.Fingerprint != wantFP || !f.OccurredAt.Equal(r.clock.Now()) {
			t.Errorf("%s: recorded %+v", c.name, f)
		}
	}
	if st := r.capture.Stats(); st.Captured != 9 || st.Outcomes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaptureContextAndCaps(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	big := `{"blob":"` + strings.Repeat("é", DefaultCaptureArgsBytes) + `"}`
	jobs := []queue.Job{
		{ID: 1, Class: "SyncJob", Queue: "sync", Attempt: 1, Args: rawJSON(`{"account_id":7}`),
			Context: map[string]string{queue.CtxAccountID: "7", queue.CtxProfileID: "12", queue.CtxPipelineID: "3", queue.CtxStep: "fetch"}},
		{ID: 2, Class: "SyncJob", Queue: "sync", Attempt: 1, Args: rawJSON(big),
			Context: map[string]string{queue.CtxAccountID: "seven", queue.CtxProfileID: "-4"}},
	}
	long := strings.Repeat("x", DefaultCaptureMessageBytes+100)
	for i := range jobs {
		h := r.capture.Middleware()(lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			if i == 1 {
				return &lanes.PanicError{Value: long, Stack: strings.Repeat("frame\n", DefaultCaptureBacktraceBytes)}
			}
			return errors.New("failed")
		}))
		_ = h.Perform(t.Context(), &jobs[i])
	}
	r.settle()
	fs := r.failures()
	if len(fs) != 2 {
		t.Fatalf("%d failures", len(fs))
	}
	a, b := fs[0], fs[1]
	if a.AccountID != 7 || a.ProfileID != 12 || a.PipelineID != 3 || a.Step != "fetch" || string(a.Args) != `{"account_id":7}` {
		t.Errorf("context not taken: %+v", a)
	}
	if b.AccountID != 0 || b.ProfileID != 0 {
		t.Errorf("bad context values kept: %+v", b)
	}
	if len(b.Args) > DefaultCaptureArgsBytes || !ArgsTruncated(b.Args) || ArgsTruncated(a.Args) {
		t.Errorf("args not capped: %d bytes, truncated %v", len(b.Args), ArgsTruncated(b.Args))
	}
	var ta truncatedArgs
	if err := json.Unmarshal(b.Args, &ta); err != nil || ta.Bytes != len(big) || !strings.HasPrefix(big, ta.Prefix) {
		t.Errorf("truncated args %s: %v", b.Args, err)
	}
	if len(b.ErrorMessage) > DefaultCaptureMessageBytes || !strings.HasSuffix(b.ErrorMessage, "bytes cut]") {
		t.Errorf("message not capped: %d bytes", len(b.ErrorMessage))
	}
	if len(b.Backtrace) > DefaultCaptureBacktraceBytes {
		t.Errorf("backtrace not capped: %d bytes", len(b.Backtrace))
	}
}

func TestCapText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"bad \xff byte", 20, "bad \uFFFD byte"},
		{strings.Repeat("a", 40), 30, "aaaaaaaaaaaa …[28 bytes cut]"},
		{strings.Repeat("é", 20), 30, "éééééé …[28 bytes cut]"},
		{strings.Repeat("é", 20), 31, "éééééé …[28 bytes cut]"},
		{strings.Repeat("a", 40), 5, " …[40 bytes cut]"},
	} {
		got := capText(c.in, c.n)
		if got != c.want || (c.n >= 20 && len(got) > c.n) {
			t.Errorf("capText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestArgsTruncated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args string
		want bool
	}{
		{``, false},
		{`[1,2]`, false},
		{`{"truncated":true}`, false},
		{`{"truncated_by_conveyor":true,"bytes":9,"prefix":"{"}`, true},
		{`{"truncated_by_conveyor":true,"bytes":9,"prefix":"{","extra":1}`, false},
		{`{"truncated_by_conveyor":false,"bytes":9,"prefix":"{"}`, false},
	} {
		if got := ArgsTruncated(rawJSON(c.args)); got != c.want {
			t.Errorf("ArgsTruncated(%s) = %v", c.args, got)
		}
	}
}

func TestRetryableError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{errors.New("x"), true},
		{httpStatus(503), true},
		{httpStatus(403), false},
		{fmt.Errorf("a: %w", fault.ErrAuthentication), false},
		{&fault.Error{Kind: fault.Authentication, Err: errors.New("x")}, false},
		{&lanes.PanicError{Value: fault.ErrAuthentication}, true},
		{&lanes.TimeoutError{Timeout: time.Second, Err: context.DeadlineExceeded}, true},
	} {
		if got := RetryableError(c.err); got != c.want {
			t.Errorf("RetryableError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// flaky fails its first attempts and then succeeds.
func flaky(failures int) lanes.Handler {
	return lanes.HandlerFunc(func(_ context.Context, j *queue.Job) error {
		if j.Attempt <= failures {
			return httpStatus(503)
		}
		return nil
	})
}

// TestCaptureSettlesOutcomesThroughTheLanes runs real lanes: the failures of
// a job's earlier attempts are superseded by its later failures and by its
// success, an authentication failure goes straight to dead, and the capture
// never blocks a worker.
func TestCaptureSettlesOutcomesThroughTheLanes(t *testing.T) {
	t.Parallel()
	noWait := func(int) time.Duration { return 0 }
	r := newFailRig(t, failRigOpts{realClock: true, pool: true, classes: []lanes.Class{
		{Name: "FlakyJob", Queue: "sync", Args: lanes.FreeForm, Handler: flaky(2), Backoff: noWait},
		{Name: "AuthJob", Queue: "sync", Args: lanes.FreeForm, Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error { return httpStatus(401) }), Backoff: noWait},
	}})
	sub, cancel := r.bus.Subscribe()
	defer cancel()
	flakyID := r.enqueue(queue.NewJob{Class: "FlakyJob", Queue: "sync", Context: map[string]string{queue.CtxAccountID: "5"}})
	authID := r.enqueue(queue.NewJob{Class: "AuthJob", Queue: "sync"})
	r.waitJob(flakyID, queue.StateDone)
	if j := r.waitJob(authID, queue.StateDead); j.Attempt != 1 {
		t.Errorf("authentication failure was retried: %d attempts", j.Attempt)
	}
	r.settle()
	var flakyFs []*data.Failure
	for _, f := range r.failures() {
		if f.JobID == flakyID {
			flakyFs = append(flakyFs, f)
		}
	}
	if len(flakyFs) != 2 {
		t.Fatalf("%d failures of the flaky job, want 2", len(flakyFs))
	}
	if s := flakyFs[0].Retry; s.Status != data.RetrySuperseded || s.Reason != fmt.Sprintf("attempt 2 of job %d failed too", flakyID) {
		t.Errorf("first failure: %+v", s)
	}
	if s := flakyFs[1].Retry; s.Status != data.RetrySuperseded || s.Reason != fmt.Sprintf("job %d succeeded on attempt 3", flakyID) {
		t.Errorf("second failure: %+v", s)
	}
	if flakyFs[1].AccountID != 5 {
		t.Errorf("account not taken from the context: %+v", flakyFs[1])
	}
	is := r.issues()
	if len(is) != 2 {
		t.Fatalf("%d issues, want one per fingerprint (2)", len(is))
	}
	for _, i := range is {
		if i.Class == "FlakyJob" && i.Occurrences != 2 || i.Class == "AuthJob" && (i.Occurrences != 1 || i.Kind != "authentication") {
			t.Errorf("issue %+v", i)
		}
	}
	got := r.topics(sub)
	if !(events.Notification{Topics: got}).Has(events.TopicFailures) || !(events.Notification{Topics: got}).Has(events.TopicIssues) {
		t.Errorf("published %v", got)
	}
	if st := r.capture.Stats(); st.Outcomes != 2 || st.Settled != 2 || st.OutcomesDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaptureCloseDropsLateOutcomes(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	if err := r.capture.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := r.capture.Middleware()(lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil }))
	_ = h.Perform(t.Context(), &queue.Job{ID: 1, Class: "X", Queue: "sync", Attempt: 2})
	if st := r.capture.Stats(); st.OutcomesDropped != 1 {
		t.Errorf("stats %+v", st)
	}
	if err := r.capture.Flush(t.Context()); err != nil {
		t.Errorf("flush after close: %v", err)
	}
}

func TestNewCaptureValidates(t *testing.T) {
	t.Parallel()
	if _, err := NewCapture(CaptureOptions{}); err == nil {
		t.Error("no writer accepted")
	}
	r := newFailRig(t, failRigOpts{})
	for _, o := range []CaptureOptions{{Writer: r.writer, MaxArgsBytes: -1}, {Writer: r.writer, SettleQueue: -1}} {
		if _, err := NewCapture(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestFingerprintCache: the capture's cache of recent fingerprints answers
// what Fingerprint computes, and stays bounded.
func TestFingerprintCache(t *testing.T) {
	t.Parallel()
	var c fingerprintCache
	long := strings.Repeat("x", fingerprintCacheMessage+1)
	for i := range 2*fingerprintCacheSize + 3 {
		msg := fmt.Sprintf("upstream %d refused", i%(fingerprintCacheSize+7))
		if i%5 == 0 {
			msg = long
		}
		for range 2 { // computed, then remembered
			got := c.of(fault.Transient, "SyncJob", "Error", msg)
			if want := Fingerprint(SourceJobFailure, string(fault.Transient), "SyncJob", "Error: "+msg); got != want {
				t.Fatalf("%q: %s, want %s", msg, got, want)
			}
		}
		if len(c.m) > fingerprintCacheSize {
			t.Fatalf("the cache holds %d entries", len(c.m))
		}
	}
	if got := (*fingerprintCache)(nil).of(fault.Runtime, "A", "E", "m"); got != Fingerprint(SourceJobFailure, "runtime", "A", "E: m") {
		t.Error("a nil cache computes a wrong fingerprint")
	}
}
