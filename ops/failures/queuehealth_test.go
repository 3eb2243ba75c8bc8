package failures

import (
	"encoding/json"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

func (r *failRig) queueIssue(name string) *data.Issue {
	r.t.Helper()
	for _, is := range r.issues() {
		if is.Fingerprint == ProblemFingerprint(data.SourceQueueHealth, name) {
			return is
		}
	}
	return nil
}

func TestQueueHealthOpensAndResolvesIssues(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	ctx := t.Context()
	qh, err := NewQueueHealth(QueueHealthOptions{Store: r.store, Tracker: r.tracker, DB: r.db,
		Default: QueueThresholds{MaxLatency: time.Minute},
		Queues:  map[string]QueueThresholds{"profiles": {MaxSize: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	syncJob := r.enqueue(queue.NewJob{Class: lanes.NoopJob, Queue: "sync"})
	for range 3 {
		r.enqueue(queue.NewJob{Class: lanes.NoopJob, Queue: "profiles"})
	}
	r.enqueue(queue.NewJob{Class: lanes.NoopJob, Queue: "avatars"})
	if err := r.store.Pause(ctx, "avatars"); err != nil {
		t.Fatal(err)
	}

	// Nothing has waited a minute yet; profiles is over its size.
	st, err := qh.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byQueue := map[string]QueueStatus{}
	for _, s := range st {
		byQueue[s.Queue] = s
	}
	if s := byQueue["profiles"]; !s.Degraded() || s.Symptoms[0] != SymptomSize || s.Thresholds.MaxLatency != time.Minute {
		t.Errorf("profiles %+v", s)
	}
	if byQueue["sync"].Degraded() || r.queueIssue("sync") != nil {
		t.Errorf("sync degraded too early: %+v", byQueue["sync"])
	}
	prof := r.queueIssue("profiles")
	if prof == nil || prof.Status != data.IssueOpen || prof.Kind != SymptomSize || prof.Queue != "profiles" ||
		prof.Title != "Queue profiles is degraded: 3 jobs are ready (limit 2)" {
		t.Fatalf("profiles issue %+v", prof)
	}

	// Two minutes later sync is slow too; the paused queue never is.
	r.clock.Add(2 * time.Minute)
	if _, err := qh.Check(ctx); err != nil {
		t.Fatal(err)
	}
	syncIssue := r.queueIssue("sync")
	if syncIssue == nil || syncIssue.Kind != SymptomLatency || syncIssue.Title != "Queue sync is degraded: the oldest ready job has waited 2m0s (limit 1m0s)" {
		t.Fatalf("sync issue %+v", syncIssue)
	}
	var detail struct {
		LatencyMS int64 `json:"latency_ms"`
		Size      int64 `json:"size"`
	}
	if err := json.Unmarshal(syncIssue.LastContext, &detail); err != nil || detail.LatencyMS != 120_000 || detail.Size != 1 {
		t.Errorf("detail %s %v", syncIssue.LastContext, err)
	}
	if is := r.queueIssue("profiles"); is.Kind != "latency,size" || is.Occurrences != 2 {
		t.Errorf("profiles after two checks %+v", is)
	}
	if r.queueIssue("avatars") != nil {
		t.Error("a paused queue was reported")
	}

	// The sync job is gone: its issue resolves; it comes back on a regression.
	if err := r.store.Discard(ctx, syncJob); err != nil {
		t.Fatal(err)
	}
	if _, err := qh.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if is := r.queueIssue("sync"); is.Status != data.IssueResolved || is.ResolvedBy != data.ResolvedByAuto {
		t.Errorf("sync after recovery %+v", is)
	}
	r.enqueue(queue.NewJob{Class: lanes.NoopJob, Queue: "sync"})
	r.clock.Add(2 * time.Minute)
	if _, err := qh.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if is := r.queueIssue("sync"); is.Status != data.IssueOpen || is.ReopenedCount != 1 {
		t.Errorf("sync after regression %+v", is)
	}

	// Health checks are recorded for degraded queues and changes of state.
	hs, err := r.db.LatestHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, h := range hs {
		got[h.Service] = h.OK
	}
	if ok, seen := got["queue:sync"]; !seen || ok {
		t.Errorf("queue:sync health %v %v", ok, seen)
	}
	if ok, seen := got["queue:profiles"]; !seen || ok {
		t.Errorf("queue:profiles health %v %v", ok, seen)
	}
}

func TestQueueHealthClassAndOptions(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{})
	qh, err := NewQueueHealth(QueueHealthOptions{Store: r.store, Tracker: r.tracker})
	if err != nil {
		t.Fatal(err)
	}
	if qh.def != (QueueThresholds{MaxLatency: DefaultMaxQueueLatency, MaxSize: DefaultMaxQueueSize}) {
		t.Errorf("defaults %+v", qh.def)
	}
	cls := qh.Class()
	if cls.Name != QueueHealthJob || cls.Queue != "maintenance" {
		t.Errorf("class %+v", cls)
	}
	if err := cls.Handler.Perform(t.Context(), &queue.Job{Class: QueueHealthJob}); err != nil {
		t.Error(err)
	}
	for _, o := range []QueueHealthOptions{
		{Tracker: r.tracker},
		{Store: r.store},
		{Store: r.store, Tracker: r.tracker, Default: QueueThresholds{MaxSize: -1}},
		{Store: r.store, Tracker: r.tracker, Queues: map[string]QueueThresholds{"x": {MaxLatency: -1}}},
	} {
		if _, err := NewQueueHealth(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
