package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/queue"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TickJob is the job cron enqueues for an entry's tick (trigger schedule
// or manual), as a lane hands it over.
func (r *Rig) TickJob(class, queueName string, tick, next time.Time, trigger string) *queue.Job {
	return r.Enqueue(laneReq(class, queueName, map[string]string{
		cron.CtxEntry: "entry", cron.CtxTrigger: trigger,
		cron.CtxTick: tick.UTC().Format(time.RFC3339), cron.CtxNext: next.UTC().Format(time.RFC3339),
	}))
}

// RunAts maps account id to run_at for the unfinished jobs of class.
func (r *Rig) RunAts(class string) map[int64]time.Time {
	out := map[int64]time.Time{}
	for _, j := range r.Jobs(class) {
		id := AccountOf(r.T, j)
		if _, dup := out[id]; dup {
			r.T.Fatalf("two %s jobs for account %d", class, id)
		}
		out[id] = j.RunAt.UTC()
	}
	return out
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestFanOutArithmetic: exact run_at values for known account ids, the
// continuation's cursor, slot and due time, and only enabled accounts
// whose switch is on, with a fake clock.
func TestFanOutArithmetic(t *testing.T) {
	t.Parallel()
	set, err := SettingsFromEnv(env(map[string]string{"STORY_AUTO_REPLY_ACCOUNT_BATCH_SIZE": "2"}), false)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRig(t, t.TempDir(), func(o *Options) { o.Settings = set })
	accts := r.AddAccounts(7, "acct")
	ctx := context.Background()
	// Account 6 is disabled; account 7's story switch is off.
	accts[5].Disabled = true
	accts[6].StoryAutoReply = false
	for _, a := range accts[5:] {
		if err := r.DB.UpdateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	tick, next := ts("2026-06-01T12:10:00Z"), ts("2026-06-01T13:10:00Z")
	r.Clock.Set(ts("2026-06-01T12:10:03.5Z"))
	first := r.TickJob(EnqueueStoryAutoReplies, "engagements", tick, next, cron.TriggerSchedule)
	if err := r.Perform(first); err != nil {
		t.Fatal(err)
	}
	// Batch 1: accounts 1 and 2 in slots 0 and 1 from the start (the clock
	// to the second), each plus its jitter (1 s and 1 s).
	want := map[int64]time.Time{1: ts("2026-06-01T12:10:04Z"), 2: ts("2026-06-01T12:10:08Z")}
	if got := r.RunAts(StoryAutoReply); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batch 1 run_at %v, want %v", got, want)
	}
	conts := r.Jobs(EnqueueStoryAutoReplies)
	var cont *queue.Job
	for _, j := range conts {
		if j.ID != first.ID {
			cont = j
		}
	}
	if cont == nil {
		t.Fatalf("no continuation among %d orchestrator jobs", len(conts))
	}
	var ca FanOutArgs
	json.Unmarshal(cont.Args, &ca)
	if ca != (FanOutArgs{Cursor: 2, Start: ts("2026-06-01T12:10:03Z").Unix(), Slot: 2, Tick: "2026-06-01T12:10:00Z", Next: "2026-06-01T13:10:00Z"}) ||
		!cont.RunAt.Equal(ts("2026-06-01T12:10:11Z")) || cont.Queue != "engagements" || cont.Context[cron.CtxTick] != "2026-06-01T12:10:00Z" {
		t.Fatalf("continuation %+v args %+v", cont, ca)
	}
	// Each per-account key is the class, the account and the tick, held
	// until the entry's next tick.
	for _, j := range r.Jobs(StoryAutoReply) {
		id := AccountOf(t, j)
		if j.UniqueKey != fmt.Sprintf("StoryAutoReplyJob:%d:%d", id, tick.Unix()) || !j.UniqueUntil.Equal(next) ||
			j.Context[queue.CtxAccountID] != fmt.Sprint(id) || j.Queue != "messages" {
			t.Errorf("job %+v", j)
		}
	}

	// The continuation, when due, goes on with the same arithmetic.
	r.Clock.Set(cont.RunAt)
	if err := r.Perform(cont); err != nil {
		t.Fatal(err)
	}
	want[3], want[4] = ts("2026-06-01T12:10:13Z"), ts("2026-06-01T12:10:17Z")
	if got := r.RunAts(StoryAutoReply); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batch 2 run_at %v, want %v", got, want)
	}
	var cont2 *queue.Job
	for _, j := range r.Jobs(EnqueueStoryAutoReplies) {
		if j.ID != first.ID && j.ID != cont.ID {
			cont2 = j
		}
	}
	if cont2 == nil || !cont2.RunAt.Equal(ts("2026-06-01T12:10:19Z")) || !strings.Contains(string(cont2.Args), `"cursor":4`) {
		t.Fatalf("second continuation %+v", cont2)
	}
	r.Clock.Set(cont2.RunAt)
	if err := r.Perform(cont2); err != nil {
		t.Fatal(err)
	}
	want[5] = ts("2026-06-01T12:10:19Z")
	if got := r.RunAts(StoryAutoReply); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("last batch run_at %v, want %v (accounts 6 and 7 are out)", got, want)
	}
	if n := len(r.Jobs(EnqueueStoryAutoReplies)); n != 3 {
		t.Fatalf("%d orchestrator jobs: the last batch has no more, so no continuation", n)
	}
}

// TestFanOutIdempotent: running an orchestrator twice for the same tick, a
// continuation twice, or the entry by hand (which counts as its latest
// tick) enqueues nothing new; the entry's next tick does.
func TestFanOutIdempotent(t *testing.T) {
	t.Parallel()
	set, _ := SettingsFromEnv(env(map[string]string{EnvBatchSize: "3"}), false)
	r := NewRig(t, t.TempDir(), func(o *Options) { o.Settings = set })
	r.AddAccounts(5, "a")
	tick, next := ts("2026-06-01T02:15:00Z"), ts("2026-06-02T02:15:00Z")
	r.Clock.Set(tick.Add(2 * time.Second))
	count := func() int { return len(r.Jobs(SyncFollowGraph)) }
	run := func(j *queue.Job) {
		t.Helper()
		if err := r.Perform(j); err != nil {
			t.Fatal(err)
		}
	}
	first := r.TickJob(EnqueueFollowGraphSync, "sync", tick, next, cron.TriggerSchedule)
	run(first)
	run(first) // delivered again (at least once)
	orch := r.Jobs(EnqueueFollowGraphSync)
	if count() != 3 || len(orch) != 2 {
		t.Fatalf("after the first run twice: %d per-account jobs, %d orchestrator jobs", count(), len(orch))
	}
	cont := orch[1]
	r.Clock.Set(cont.RunAt)
	run(cont)
	run(cont)
	if count() != 5 || len(r.Jobs(EnqueueFollowGraphSync)) != 2 {
		t.Fatalf("after the continuation twice: %d per-account jobs", count())
	}
	manual := r.TickJob(EnqueueFollowGraphSync, "sync", tick, next, cron.TriggerManual)
	run(manual)
	if count() != 5 {
		t.Fatalf("a run by hand in the same tick enqueued %d more", count()-5)
	}
	r.Clock.Set(next.Add(time.Second))
	run(r.TickJob(EnqueueFollowGraphSync, "sync", next, next.Add(24*time.Hour), cron.TriggerSchedule))
	if count() != 8 {
		t.Fatalf("the next tick's first batch: %d per-account jobs, want 5 + 3", count())
	}
	// Without an entry (enqueued through the jobs API), the job's own
	// enqueue time is the tick and the keys are held DefaultHold.
	bare := r.Enqueue(laneReq(EnqueueFollowGraphSync, "sync", nil))
	run(bare)
	for _, j := range r.Jobs(SyncFollowGraph) {
		if strings.HasSuffix(j.UniqueKey, fmt.Sprint(bare.CreatedAt.Unix())) && !j.UniqueUntil.Equal(r.Clock.Now().Add(DefaultHold)) {
			t.Errorf("job without an entry holds its key until %v", j.UniqueUntil)
		}
	}
}

// TestBatchingEnv: the seed's variables and the per-orchestrator ones,
// the latter winning, with exact run_at values; a bad value is an error
// naming the variable.
func TestBatchingEnv(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		EnvStagger: "7", EnvJitter: "0", EnvBatchSize: "50",
		"FOLLOW_GRAPH_SYNC_ACCOUNT_ENQUEUE_STAGGER_SECONDS": "10",
		"FOLLOW_GRAPH_SYNC_ACCOUNT_ENQUEUE_JITTER_SECONDS":  "10",
		"FOLLOW_GRAPH_SYNC_ACCOUNT_BATCH_SIZE":              "3",
	}
	set, err := SettingsFromEnv(env(vars), false)
	if err != nil {
		t.Fatal(err)
	}
	if b := set.Batching[EnqueueFollowGraphSync]; b != (Batching{BatchSize: 3, Stagger: 10 * time.Second, Jitter: 10 * time.Second}) {
		t.Errorf("follow-graph batching %+v", b)
	}
	if b := set.Batching[EnqueueAvatarSync]; b != (Batching{BatchSize: 50, Stagger: 7 * time.Second}) {
		t.Errorf("avatar batching %+v (the seed's variables)", b)
	}
	if b := DefaultSettings().Batching[EnqueueProfileRefresh]; b != (Batching{BatchSize: 100, Stagger: 4 * time.Second, Jitter: 2 * time.Second}) {
		t.Errorf("default batching %+v", b)
	}
	r := NewRig(t, t.TempDir(), func(o *Options) { o.Settings = set })
	r.AddAccounts(5, "e")
	r.Clock.Set(ts("2026-06-01T12:10:03Z"))
	run := r.TickJob(EnqueueFollowGraphSync, "sync", ts("2026-06-01T02:15:00Z"), ts("2026-06-02T02:15:00Z"), cron.TriggerManual)
	if err := r.Perform(run); err != nil {
		t.Fatal(err)
	}
	want := map[int64]time.Time{1: ts("2026-06-01T12:10:09Z"), 2: ts("2026-06-01T12:10:20Z"), 3: ts("2026-06-01T12:10:26Z")}
	if got := r.RunAts(SyncFollowGraph); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("run_at %v, want %v", got, want)
	}
	orch := r.Jobs(EnqueueFollowGraphSync)
	if len(orch) != 2 || !orch[1].RunAt.Equal(ts("2026-06-01T12:10:33Z")) {
		t.Fatalf("continuation due %v, want 12:10:33", orch[len(orch)-1].RunAt)
	}
	r.Clock.Set(orch[1].RunAt)
	if err := r.Perform(orch[1]); err != nil {
		t.Fatal(err)
	}
	want[4], want[5] = ts("2026-06-01T12:10:37Z"), ts("2026-06-01T12:10:43Z")
	if got := r.RunAts(SyncFollowGraph); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("run_at %v, want %v", got, want)
	}

	for name, bad := range map[string]string{
		EnvStagger: "-1", EnvJitter: "two", EnvBatchSize: "0",
		"PROFILE_SCAN_ACCOUNT_BATCH_SIZE": "10001", "AVATAR_SYNC_ACCOUNT_ENQUEUE_STAGGER_SECONDS": "4.5",
		"CONTINUOUS_PROCESSING_ACCOUNT_ENQUEUE_JITTER_SECONDS": "x", EnvFeedSyncInterval: "soon",
		EnvFeedSyncJitter: "-3", EnvMediaRetention: "0",
	} {
		_, err := SettingsFromEnv(env(map[string]string{name: bad}), false)
		if err == nil || !strings.Contains(err.Error(), name+"=") {
			t.Errorf("%s=%s: %v, want an error naming the variable", name, bad, err)
		}
	}
	s, err := SettingsFromEnv(env(map[string]string{EnvFeedSyncInterval: "90m", EnvMediaRetention: "7d"}), true)
	if err != nil || s.FeedSyncInterval != 90*time.Minute || s.FeedSyncJitter != 9*time.Minute || s.MediaRetention != 7*24*time.Hour {
		t.Errorf("settings %+v, %v", s, err)
	}
	if s, _ := SettingsFromEnv(env(nil), true); s.FeedSyncInterval != DemoFeedSyncInterval {
		t.Errorf("demo interval %v", s.FeedSyncInterval)
	}
}

func TestJitterBounds(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for id := int64(1); id <= 500; id++ {
		j := Jitter(EnqueueAvatarSync, id, 2*time.Second)
		if j < 0 || j > 2*time.Second || j%time.Second != 0 || j != Jitter(EnqueueAvatarSync, id, 2*time.Second) {
			t.Fatalf("jitter %v for %d", j, id)
		}
		seen[j] = true
	}
	if len(seen) != 3 {
		t.Errorf("jitters seen %v, want 0, 1 and 2 s", seen)
	}
	if Jitter(EnqueueAvatarSync, 1, 0) != 0 {
		t.Error("no jitter allowed, some given")
	}
}
