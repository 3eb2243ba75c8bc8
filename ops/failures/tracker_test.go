package failures

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/ops/events"
	"conveyor/ops/fault"
)

func TestTrackerGroupsFailuresByFingerprint(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	sub, cancel := r.bus.Subscribe()
	defer cancel()
	t0 := r.clock.Now()
	fs := []*data.Failure{
		{JobID: 1, Class: "SyncJob", Queue: "sync", Kind: fault.Transient, ErrorClass: "Net", ErrorMessage: "timeout after 30s", OccurredAt: t0.Add(2 * time.Second), AccountID: 4},
		{JobID: 2, Class: "SyncJob", Queue: "sync", Kind: fault.Transient, ErrorClass: "Net", ErrorMessage: "timeout after 31s", OccurredAt: t0.Add(time.Second)},
		{JobID: 3, Class: "MailJob", Queue: "messages", Kind: fault.Runtime, ErrorClass: "Error", ErrorMessage: "nil map\nsecond line", OccurredAt: t0},
	}
	for _, f := range fs {
		f.Fingerprint = Fingerprint(SourceJobFailure, string(f.Kind), f.Class, f.ErrorClass+": "+f.ErrorMessage)
	}
	if fs[0].Fingerprint != fs[1].Fingerprint {
		t.Fatal("alike failures have different fingerprints")
	}
	r.insert(fs...)
	r.tracker.RecordFailures(fs)
	got := r.topics(sub)
	if n := (events.Notification{Topics: got}); !n.Has(events.TopicFailures) || !n.Has(events.TopicIssues) {
		t.Errorf("published %v", got)
	}
	is := r.issues()
	if len(is) != 2 {
		t.Fatalf("%d issues, want 2", len(is))
	}
	byClass := map[string]*data.Issue{}
	for _, i := range is {
		byClass[i.Class] = i
	}
	sync := byClass["SyncJob"]
	if sync.Occurrences != 2 || sync.Source != data.SourceJobFailure || sync.Kind != "transient" || sync.Queue != "sync" ||
		sync.Title != "Net in SyncJob: timeout after 30s" || !sync.FirstSeen.Equal(t0.Add(time.Second)) ||
		!sync.LastSeen.Equal(t0.Add(2*time.Second)) || sync.Status != data.IssueOpen {
		t.Errorf("sync issue %+v", sync)
	}
	var ctx struct {
		FailureID int64  `json:"failure_id"`
		JobID     uint64 `json:"job_id"`
		AccountID int64  `json:"account_id"`
	}
	if err := json.Unmarshal(sync.LastContext, &ctx); err != nil || ctx.JobID != 1 || ctx.FailureID != fs[0].ID || ctx.AccountID != 4 {
		t.Errorf("last context %s (%v)", sync.LastContext, err)
	}
	if mail := byClass["MailJob"]; mail.Title != "Error in MailJob: nil map" || mail.Occurrences != 1 {
		t.Errorf("mail issue %+v", mail)
	}

	// The operator resolves the sync issue; it comes back on the next
	// occurrence.
	if err := r.tracker.Resolve(t.Context(), sync.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.tracker.Resolve(t.Context(), 9999); !errors.Is(err, data.ErrNotFound) {
		t.Errorf("resolve missing: %v", err)
	}
	again := &data.Failure{JobID: 9, Class: "SyncJob", Queue: "sync", Kind: fault.Transient, ErrorClass: "Net",
		ErrorMessage: "timeout after 5s", OccurredAt: t0.Add(time.Hour)}
	again.Fingerprint = Fingerprint(SourceJobFailure, "transient", "SyncJob", "Net: timeout after 5s")
	r.insert(again)
	r.tracker.RecordFailures([]*data.Failure{again})
	is2, err := r.db.IssueByID(t.Context(), sync.ID)
	if err != nil {
		t.Fatal(err)
	}
	if is2.Status != data.IssueOpen || is2.ReopenedCount != 1 || is2.Occurrences != 3 {
		t.Errorf("regression did not reopen: %+v", is2)
	}
}

func TestTrackerRaiseAndClear(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	sub, cancel := r.bus.Subscribe()
	defer cancel()
	p := Problem{Source: data.SourceAIOutage, Subject: "local_ai", Kind: "down", Title: "Local AI is down",
		Detail: map[string]any{"status": 503}}
	is, res, err := r.tracker.Raise(t.Context(), p)
	if err != nil || res != data.IssueCreated || is.Fingerprint != p.Fingerprint() || string(is.LastContext) != `{"status":503}` {
		t.Fatalf("raise: %+v %v %v", is, res, err)
	}
	// Another symptom of the same subject is the same issue.
	p2 := p
	p2.Kind, p2.Title = "slow", "Local AI is slow"
	if is, res, err = r.tracker.Raise(t.Context(), p2); err != nil || res != data.IssueUpdated || is.Occurrences != 2 || is.Kind != "slow" {
		t.Fatalf("raise again: %+v %v %v", is, res, err)
	}
	if got := r.topics(sub); !(events.Notification{Topics: got}).Has(events.TopicIssues) {
		t.Errorf("published %v", got)
	}
	if ok, err := r.tracker.Clear(t.Context(), ProblemFingerprint(data.SourceAIOutage, "local_ai")); !ok || err != nil {
		t.Fatalf("clear: %v %v", ok, err)
	}
	if ok, err := r.tracker.Clear(t.Context(), p.Fingerprint()); ok || err != nil {
		t.Errorf("clear twice: %v %v", ok, err)
	}
	got, _ := r.db.IssueByID(t.Context(), is.ID)
	if got.Status != data.IssueResolved || got.ResolvedBy != data.ResolvedByAuto {
		t.Errorf("after clear %+v", got)
	}
	if _, res, _ := r.tracker.Raise(t.Context(), p); res != data.IssueReopened {
		t.Errorf("a regression gives %v, want reopened", res)
	}
	for _, bad := range []Problem{
		{Source: "nowhere", Subject: "x", Title: "x"},
		{Source: data.SourceQueueHealth, Title: "x"},
		{Source: data.SourceQueueHealth, Subject: "x"},
		{Source: data.SourceQueueHealth, Subject: "x", Title: "x", Detail: func() {}},
	} {
		if _, _, err := r.tracker.Raise(t.Context(), bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if ProblemFingerprint(data.SourceQueueHealth, "sync") == ProblemFingerprint(data.SourceQueueHealth, "default") ||
		ProblemFingerprint(data.SourceQueueHealth, "sync") == ProblemFingerprint(data.SourceAIOutage, "sync") {
		t.Error("problem fingerprints collide")
	}
}

func TestFailureTitle(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		f    data.Failure
		want string
	}{
		{data.Failure{Class: "A", ErrorClass: "E", ErrorMessage: "m"}, "E in A: m"},
		{data.Failure{Class: "A", ErrorMessage: "first\nsecond"}, "A: first"},
		{data.Failure{Class: "A", ErrorClass: "E"}, "E in A"},
	} {
		if got := failureTitle(&c.f); got != c.want {
			t.Errorf("title %q, want %q", got, c.want)
		}
	}
}
