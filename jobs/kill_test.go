package jobs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/jobs"
	"conveyor/jobs/sandbox"
	"conveyor/queue"
)

// The crash tests run the catalog in a child process (this test binary
// again, running TestKillChild), SIGKILL it at a chosen point, and go on
// in the parent with the same files.
const (
	childEnv    = "CONVEYOR_JOBS_CHILD"
	childDirEnv = "CONVEYOR_JOBS_DIR"
	childURLEnv = "CONVEYOR_JOBS_URL"
	// childMark is the line the fan-out child prints once its first batch
	// is durable.
	childMark = "FIRST-BATCH-DURABLE"
)

var (
	killTick = time.Date(2026, 6, 1, 12, 10, 0, 0, time.UTC)
	killNext = killTick.Add(time.Hour)
	killNow  = killTick.Add(3500 * time.Millisecond)
)

// fanOutSettings: batches of two, the seed's stagger and jitter.
func fanOutSettings(t testing.TB) func(*jobs.Options) {
	set, err := jobs.SettingsFromEnv(func(k string) string {
		if k == "STORY_AUTO_REPLY_ACCOUNT_BATCH_SIZE" {
			return "2"
		}
		return ""
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *jobs.Options) { o.Settings = set }
}

// TestKillChild is the child's side of the crash tests; it is skipped in a
// normal run.
func TestKillChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("the crash tests' child process")
	}
	dir := os.Getenv(childDirEnv)
	switch mode {
	case "fanout":
		r := jobs.NewRig(t, dir, fanOutSettings(t))
		r.Clock.Set(killNow)
		first := r.TickJob(jobs.EnqueueStoryAutoReplies, "engagements", killTick, killNext, cron.TriggerSchedule)
		if err := r.Perform(first); err != nil {
			t.Fatal(err)
		}
		fmt.Println(childMark)
	case "follow":
		r := jobs.NewRig(t, dir, bridgeTo(t, os.Getenv(childURLEnv)))
		r.Clock.Set(jobs.RigStart.Add(time.Minute))
		// Blocks on the sandbox's second page of the following list,
		// where the parent kills it.
		r.Perform(followJob(r, 1))
	}
	io.Copy(io.Discard, os.Stdin) // until the parent kills it (or goes away)
}

// child starts TestKillChild in mode and returns it and its stdout lines.
func child(t *testing.T, mode, dir, url string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir, childURLEnv+"="+url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	return cmd, lines
}

// kill SIGKILLs the child and waits for it to be gone.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}
}

func deadline(t *testing.T) <-chan time.Time {
	d := 2 * time.Minute
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return time.After(d)
}

// TestFanOutSurvivesKill: the orchestrator's process is SIGKILLed between
// two batches; after restart the orchestrator's run is delivered again
// (at least once) and the continuations run, and every account has
// exactly one job, due exactly when an uninterrupted fan-out would have
// made it due.
func TestFanOutSurvivesKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prep := jobs.NewRig(t, dir, fanOutSettings(t))
	prep.AddAccounts(5, "k")
	prep.Close()

	cmd, lines := child(t, "fanout", dir, "")
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the child ended before its first batch was durable")
			}
			seen = strings.Contains(l, childMark)
		case <-deadline(t):
			t.Fatal("the child never reported its first batch")
		}
	}
	kill(t, cmd)

	r := jobs.NewRig(t, dir, fanOutSettings(t))
	r.Clock.Set(killNow)
	if n := len(r.Jobs(jobs.StoryAutoReply)); n != 2 {
		t.Fatalf("after the kill: %d per-account jobs, want the first batch's 2", n)
	}
	orch := r.Jobs(jobs.EnqueueStoryAutoReplies)
	if len(orch) != 2 {
		t.Fatalf("after the kill: %d orchestrator jobs, want the run and its continuation", len(orch))
	}
	// The run was never acked: it is delivered again.
	if err := r.Perform(orch[0]); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		var next *queue.Job
		for _, j := range r.Jobs(jobs.EnqueueStoryAutoReplies) {
			if j.RunAt.After(r.Clock.Now()) {
				next = j
				break
			}
		}
		if next == nil {
			break
		}
		r.Clock.Set(next.RunAt)
		if err := r.Perform(next); err != nil {
			t.Fatal(err)
		}
		if err := r.Perform(next); err != nil { // and a continuation twice
			t.Fatal(err)
		}
	}
	want := map[int64]time.Time{
		1: time.Date(2026, 6, 1, 12, 10, 4, 0, time.UTC), 2: time.Date(2026, 6, 1, 12, 10, 8, 0, time.UTC),
		3: time.Date(2026, 6, 1, 12, 10, 13, 0, time.UTC), 4: time.Date(2026, 6, 1, 12, 10, 17, 0, time.UTC),
		5: time.Date(2026, 6, 1, 12, 10, 19, 0, time.UTC),
	}
	if got := r.RunAts(jobs.StoryAutoReply); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("per-account run_at after the kill %v, want %v", got, want)
	}
}

// TestFollowGraphSurvivesKill: the process is SIGKILLed while the sync
// waits for the second page of the following list. The kill clears
// nothing; after restart the job continues from the saved cursor, and the
// pass, which began at the start, completes and clears the stale flags.
func TestFollowGraphSurvivesKill(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{})
	var once sync.Once
	sb := startSandbox(t, sandbox.Options{Seed: 11}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := readBody(r)
			block := false
			if strings.Contains(string(body), `"list":"following"`) && strings.Contains(string(body), `"cursor":"`) {
				once.Do(func() { block = true })
			}
			if block {
				close(hit)
				<-r.Context().Done() // the child dies waiting
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	dir := t.TempDir()
	prep := jobs.NewRig(t, dir)
	acct := prep.AddAccounts(1, "f")[0]
	staleProfiles(t, prep.DB, acct.ID)
	prep.Close()

	cmd, _ := child(t, "follow", dir, sb.URL)
	select {
	case <-hit:
	case <-deadline(t):
		t.Fatal("the child never asked for the second page")
	}
	kill(t, cmd)

	r := jobs.NewRig(t, dir, bridgeTo(t, sb.URL))
	r.Clock.Set(jobs.RigStart.Add(2 * time.Minute))
	ctx := context.Background()
	c, err := r.DB.Cursor(ctx, acct.ID, data.CursorFollowing)
	if err != nil || c.Cursor == "" || !c.StartedFromStart {
		t.Fatalf("cursor after the kill %+v, %v: want page 2's, in a pass from the start", c, err)
	}
	if got := flagged(t, r.DB, acct.ID, data.CursorFollowing); !slices.Contains(got, "stale_following") {
		t.Fatal("the killed run cleared a flag")
	}
	jobsLeft := r.Jobs(jobs.SyncFollowGraph)
	if len(jobsLeft) != 1 {
		t.Fatalf("%d follow-graph jobs after the kill", len(jobsLeft))
	}
	before := len(sb.Calls())
	if err := r.Perform(jobsLeft[0]); err != nil {
		t.Fatal(err)
	}
	if first := sb.Calls()[before]; first.List != "following" || first.Cursor != c.Cursor {
		t.Fatalf("after restart the run began at %+v, want following from cursor %q", first, c.Cursor)
	}
	for kind, list := range map[string]string{data.CursorFollowing: "following", data.CursorFollowers: "followers"} {
		want := sorted(listOf(t, sb.Sandbox, acct.Username, list))
		if got := flagged(t, r.DB, acct.ID, kind); !slices.Equal(got, want) {
			t.Errorf("%s after the pass: %d flagged, want the sandbox's %d and no stale one", kind, len(got), len(want))
		}
	}
}
