package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashKillLoop drives the real server with enqueues over HTTP while
// SleepJob handlers record every start and end in an exec log fsynced outside
// the data directory, SIGKILLs the server at random moments and restarts it,
// and finally checks the history: every acknowledged job ran to completion at
// least once, none ran again after it was seen done, and re-runs never exceed
// the jobs in flight at each kill. The store's full check runs on the file as
// each kill left it. 5 kills in `make test`, 50 in `make chaos`.
func TestCrashKillLoop(t *testing.T) {
	t.Parallel()
	kills := 5
	if os.Getenv("CONVEYOR_CHAOS") != "" {
		kills = 50
	}
	dir := t.TempDir()
	rig := newCrashRig(t, filepath.Join(dir, "data"), filepath.Join(dir, "exec.log"), nil)
	stopLoad := rig.load(0)
	for k := range kills {
		rig.work()
		rig.crash()
		t.Logf("kill %d done", k+1)
	}
	time.Sleep(300 * time.Millisecond)
	stopLoad()

	rig.cur.waitDrained(t)
	if dead, err := rig.cur.deadCount(context.Background()); err != nil || dead != 0 {
		t.Errorf("%d jobs went to dead (%v)", dead, err)
	}
	if err, _ := rig.cur.terminate(); err != nil {
		t.Fatalf("server exit on SIGTERM: %v\n%s", err, rig.cur.stderr.String())
	}
	if len(rig.acked) < 50 {
		t.Fatalf("only %d jobs acknowledged: the load did not run", len(rig.acked))
	}
	r := checkHistory(readLines(t, rig.execLog), rig.ackedIDs())
	t.Logf("%d jobs acknowledged, %d kills: %d re-runs, %d jobs in flight at the kills", len(rig.acked), kills, r.duplicates, r.inflightTotal)
	if !r.ok() {
		t.Fatalf("history check failed (seed %d): %v", rig.seed, r)
	}
}

// crashRig runs the real server under a load of HTTP enqueues and kills it
// at random moments, for the crash tests: SleepJobs record every start and
// end in an exec log fsynced outside the data directory, and an observer
// records when the API shows a job done (see checkHistory).
type crashRig struct {
	t             *testing.T
	data, execLog string
	args, env     []string
	seed          uint64
	rnd           *rand.Rand
	mu            sync.Mutex // guards cur and acked
	cur           *server    // the live server
	acked         []ackedJob
}

// ackedJob is an enqueue that was answered 201: the job's id, and the token
// in its context that names it (ids can be handed out again after a power
// cut lost the jobs that had them).
type ackedJob struct {
	id    uint64
	token string
	class string
}

// newCrashRig starts the server on data; env, when not nil, is its whole
// environment.
func newCrashRig(t *testing.T, data, execLog string, env []string, args ...string) *crashRig {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := &crashRig{t: t, data: data, execLog: execLog, env: env, seed: seed, rnd: rand.New(rand.NewPCG(seed, 1)),
		args: append([]string{"--exec-log", execLog, "--schedule", emptySchedule(t)}, args...)}
	r.cur = r.start()
	return r
}

func (r *crashRig) start() *server {
	r.t.Helper()
	if r.env == nil {
		return startServer(r.t, r.data, r.args...)
	}
	s, err := launchServer(r.t, r.data, r.env, r.args...)
	if err != nil {
		r.t.Fatalf("%v\n%s", err, s.stderr.String())
	}
	return s
}

// load starts 4 producers and the observer, and returns the function that
// stops them and waits. One enqueue in failEvery (0: none) is a FailJob that
// goes to dead at once (a failure row for the database).
func (r *crashRig) load(failEvery int) (stop func()) {
	ctx, cancel := context.WithCancel(deadline(r.t))
	var wg sync.WaitGroup
	// Producers: a modest rate, below what the lanes get through, so that a job
	// re-run after a crash runs at once (a job running at three kills in a row
	// would rightly go to dead as a poison pill).
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(r.seed, uint64(p)+10))
			for n := 0; ctx.Err() == nil; n++ {
				r.mu.Lock()
				s := r.cur
				r.mu.Unlock()
				var out struct {
					ID uint64 `json:"id"`
				}
				token := fmt.Sprintf("p%d-%d", p, n)
				body := map[string]any{"class": "SleepJob", "args": map[string]int{"ms": 1 + rnd.IntN(20)}, "context": map[string]string{"tag": token}}
				if failEvery > 0 && rnd.IntN(failEvery) == 0 {
					body = map[string]any{"class": "FailJob", "queue": "maintenance", "max_attempts": 1,
						"args": map[string]string{"kind": "runtime", "message": "fails on purpose " + token}, "context": map[string]string{"tag": token}}
				}
				code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", body, &out)
				if err == nil && code == http.StatusCreated {
					r.mu.Lock()
					r.acked = append(r.acked, ackedJob{id: out.ID, token: token, class: body["class"].(string)})
					r.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(5+rnd.IntN(15)) * time.Millisecond):
				}
			}
		}()
	}
	// Observer: records "done <id>" for jobs the API shows done.
	wg.Add(1)
	go func() {
		defer wg.Done()
		seen := map[uint64]bool{}
		for ctx.Err() == nil {
			r.mu.Lock()
			s := r.cur
			r.mu.Unlock()
			observeDone(ctx, s, r.execLog, seen)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// work lets the server work for a random while: the moment of the next
// kill is random.
func (r *crashRig) work() {
	time.Sleep(time.Duration(150+r.rnd.IntN(500)) * time.Millisecond)
}

// crash SIGKILLs the server, notes the kill in the history, checks the queue
// file as the crash left it, and starts the next server.
func (r *crashRig) crash() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.kill()
	if err := appendLine(r.execLog, "kill"); err != nil {
		r.t.Fatal(err)
	}
	checkStoreFile(r.t, r.data) // as the kill left it, before the next start rescues anything
	r.cur = r.start()
}

// ackedIDs returns the ids of the acknowledged SleepJobs (the history's jobs).
func (r *crashRig) ackedIDs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []uint64
	for _, a := range r.acked {
		if a.class == "SleepJob" {
			ids = append(ids, a.id)
		}
	}
	return ids
}

// heldQueue holds the jobs some crash tests check: paused, it never runs
// them.
const heldQueue = "avatars"

// emptySchedule writes a schedule with no entries, for tests that wait for the
// queues to drain and must not see recurring jobs arrive meanwhile.
func emptySchedule(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty-schedule.yml")
	if err := os.WriteFile(path, []byte("# no recurring jobs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// observeDone appends "done <id>" to the history for done jobs not seen yet,
// walking the done list (newest first) until it reaches known ones. A reader
// can see a commit a moment before it is durable (bbolt makes it visible when
// its meta page is written, before the last fsync returns), so the jobs seen
// done are written down only after a barrier: /readyz's queue check is a
// round trip through the store's writer, which answers after the commit in
// progress is synced. Without it a power cut in that moment would make a job
// "seen done" run again.
func observeDone(ctx context.Context, s *server, execLog string, seen map[uint64]bool) {
	var found []uint64
	cursor := ""
	for page := 0; page < 20; page++ {
		var out struct {
			Jobs []struct {
				ID uint64 `json:"id"`
			} `json:"jobs"`
			Next *string `json:"next"`
		}
		path := "/api/v1/jobs?state=done&size=1000"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code, err := s.api(ctx, http.MethodGet, path, nil, &out); err != nil || code != http.StatusOK {
			return
		}
		known := false
		for _, j := range out.Jobs {
			if seen[j.ID] {
				known = true
				continue
			}
			found = append(found, j.ID)
		}
		if known || out.Next == nil {
			break
		}
		cursor = *out.Next
	}
	if len(found) == 0 || !s.storeSynced(ctx) {
		return
	}
	for _, id := range found {
		seen[id] = true
		appendLine(execLog, "done "+strconv.FormatUint(id, 10))
	}
}

// storeSynced reports whether /readyz's queue check passed: the store's
// writer answered, so every commit a reader could see before the call is
// on disk.
func (s *server) storeSynced(ctx context.Context) bool {
	var ready struct {
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	code, b, err := s.call(ctx, http.MethodGet, "/readyz", nil)
	if err != nil || (code != http.StatusOK && code != http.StatusServiceUnavailable) || json.Unmarshal(b, &ready) != nil {
		return false
	}
	for _, c := range ready.Checks {
		if c.Name == "queue" {
			return c.OK
		}
	}
	return false
}

// TestSIGTERMDrainsUnderLoad sends SIGTERM while jobs run: the server exits
// within its shutdown timeout, jobs it interrupted go back without spending an
// attempt, after a restart every acknowledged job completes, and no job that
// had finished before the stop runs again.
func TestSIGTERMDrainsUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	execLog := filepath.Join(dir, "exec.log")
	const shutdown = 500 * time.Millisecond
	// No recurring jobs: the test waits for the queues to drain.
	sched := emptySchedule(t)
	srv := startServer(t, data, "--exec-log", execLog, "--shutdown-timeout", shutdown.String(), "--schedule", sched)
	ctx := deadline(t)
	var acked []uint64
	enqueue := func(ms int, queue string) {
		var out struct {
			ID uint64 `json:"id"`
		}
		body := map[string]any{"class": "SleepJob", "queue": queue, "args": map[string]int{"ms": ms}}
		if code, err := srv.api(ctx, http.MethodPost, "/api/v1/jobs", body, &out); err != nil || code != http.StatusCreated {
			t.Fatalf("enqueue: %d %v", code, err)
		}
		acked = append(acked, out.ID)
	}
	for i := range 200 {
		enqueue(1+i%30, "default")
	}
	long := len(acked)
	for range 5 {
		enqueue(60_000, "maintenance") // still running at the signal: interrupted
	}
	// Wait until the long jobs are running, so the signal finds them busy.
	for {
		lines := readLines(t, execLog)
		started := 0
		for _, l := range lines {
			for _, id := range acked[long:] {
				if l == fmt.Sprintf("start %d 1", id) {
					started++
				}
			}
		}
		if started == 5 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("long jobs never started")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Paused, the interrupted jobs stay put after the restart for inspection.
	if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/maintenance/pause", nil, nil); err != nil || code != 200 {
		t.Fatalf("pause: %d %v", code, err)
	}
	err, took := srv.terminate()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, srv.stderr.String())
	}
	t.Logf("exited %v after SIGTERM (shutdown timeout %v)", took, shutdown)
	if err := appendLine(execLog, "stop"); err != nil {
		t.Fatal(err)
	}
	if log := srv.stderr.String(); !strings.Contains(log, "shutdown timeout passed; cancelling running jobs") || !strings.Contains(log, `msg=stopped`) {
		t.Fatalf("the shutdown did not cancel the long jobs at its timeout:\n%s", log)
	}

	srv = startServer(t, data, "--exec-log", execLog, "--schedule", sched)
	for _, id := range acked[long:] {
		var j struct {
			State   string `json:"state"`
			Attempt int    `json:"attempt"`
			Errors  []any  `json:"errors"`
		}
		if code, err := srv.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != 200 {
			t.Fatalf("get %d: %d %v", id, code, err)
		}
		if j.State != "ready" || j.Attempt != 0 || len(j.Errors) != 0 {
			t.Errorf("interrupted job %d should be ready with no attempt spent: %+v", id, j)
		}
		if code, err := srv.api(ctx, http.MethodPost, fmt.Sprintf("/api/v1/jobs/%d/discard", id), nil, nil); err != nil || code != 200 {
			t.Fatalf("discard %d: %d %v", id, code, err)
		}
	}
	srv.waitDrained(t)
	r := checkHistory(readLines(t, execLog), acked[:long])
	if !r.ok() {
		t.Fatalf("history across SIGTERM: %v", r)
	}
	srv.terminate()
}

// TestDamagedFilesStopServe: `conveyor serve` on a data directory whose queue
// file or database is damaged exits at once, naming the file and `conveyor
// restore`, and leaves the file as it was.
func TestDamagedFilesStopServe(t *testing.T) {
	t.Parallel()
	for _, name := range []string{queueFile, "conveyor.db"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"--schedule", emptySchedule(t)}
			srv := startServer(t, data, args...)
			srv.enqueueJob(deadline(t), t, map[string]any{"class": "NoopJob"})
			if err, _ := srv.terminate(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(data, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			clear(b[:len(b)/2])
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
			srv, err = launchServer(t, data, env, args...)
			if err == nil {
				t.Fatal("serve started on a damaged file")
			}
			log := srv.stderr.String()
			if !strings.Contains(log, "damaged") || !strings.Contains(log, path) || !strings.Contains(log, "conveyor restore") {
				t.Fatalf("serve's message does not name the damaged file and conveyor restore:\n%s", log)
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(after, b) {
				t.Fatalf("the damaged file was changed (%v)", err)
			}
		})
	}
}
