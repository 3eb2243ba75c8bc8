package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/queue"
)

// TestFailureBurstKill is the kill during a failure burst: 2,000
// FailJobs (max_attempts 1, 4 KB messages) released at once, SIGKILL 80 to
// 400 ms later, restart. It measures what the kill lost — the failed
// attempts the queue had recorded (in the job's record, fsynced) whose
// failure row had not reached SQLite — by reading both files between the
// kill and the restart, and checks that after the restart every failed
// attempt has exactly one row, the lost ones rebuilt and marked recovered.
// In the first round the failure writer holds every row until the kill (a
// failpoint), so that the whole burst is lost and rebuilt whatever the
// machine's speed; the other rounds (2 in `make test`, 10 in `make chaos`)
// measure the real loss window, logged (docs/failures.md quotes it).
func TestFailureBurstKill(t *testing.T) {
	t.Parallel()
	rounds := 3
	if os.Getenv("CONVEYOR_CHAOS") != "" {
		rounds = 11
	}
	seed := rand.Uint64()
	rnd := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	message := strings.Repeat("upstream said no. ", 4096/18)
	const jobs, perBatch = 2000, 200 // a batch of 200 fits the body limit
	var batch []map[string]any
	for range perBatch {
		batch = append(batch, map[string]any{"class": "FailJob", "max_attempts": 1,
			"args": map[string]string{"kind": "transient", "message": message}})
	}
	for round := range rounds {
		held := round == 0
		dataDir := filepath.Join(t.TempDir(), "data")
		env := scheduleEnv()
		if held {
			env = scheduleEnv(holdFailureWriterEnv + "=1")
		}
		srv, err := launchServer(t, dataDir, env, "--schedule", emptySchedule(t))
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.stderr.String())
		}
		ctx := deadline(t)
		// The burst: the jobs wait in their paused queue, then go at once.
		srv.mustPost(t, "/api/v1/queues/default/pause", nil)
		for i := 0; i < jobs; i += perBatch {
			srv.mustPost(t, "/api/v1/jobs/batch", map[string]any{"jobs": batch})
		}
		srv.mustPost(t, "/api/v1/queues/default/resume", nil)
		var wait time.Duration
		if held {
			srv.waitFinished(t, jobs) // every row is waiting in the writer
		} else {
			wait = time.Duration(80+rnd.IntN(321)) * time.Millisecond
			time.Sleep(wait) // the moment of the kill is the experiment
		}
		shown := srv.failureBacklog(ctx)
		srv.kill()

		lost, strikes, recorded := missingRows(t, dataDir)
		t.Logf("round %d (held writer %v): SIGKILL %s after the burst began: %d of %d recorded failed attempts had no row (%d of them crash strikes); /readyz showed a backlog of %d just before",
			round+1, held, wait, lost, recorded, strikes, shown)
		if held && (lost != jobs || shown != jobs) {
			t.Errorf("with the writer held, %d rows were lost and /readyz showed a backlog of %d; want all %d", lost, shown, jobs)
		}

		srv = startServer(t, dataDir, "--schedule", emptySchedule(t))
		srv.waitReconciled(t)
		srv.waitDrained(t)
		if err, _ := srv.terminate(); err != nil {
			t.Fatalf("server exit on SIGTERM: %v\n%s", err, srv.stderr.String())
		}
		checkEveryAttemptHasOneRow(t, dataDir, jobs, lost)
	}
}

// mustPost posts body (JSON, or nothing) to path and wants a 2xx.
func (s *server) mustPost(t *testing.T, path string, body any) {
	t.Helper()
	code, err := s.api(deadline(t), http.MethodPost, path, body, nil)
	if err != nil || code/100 != 2 {
		t.Fatalf("POST %s: %d %v\n%s", path, code, err, s.stderr.String())
	}
}

// waitFinished polls until n jobs are dead or done (bounded by the test's
// deadline).
func (s *server) waitFinished(t *testing.T, n int64) {
	t.Helper()
	ctx := deadline(t)
	for {
		var qs []queueJSON
		s.api(ctx, http.MethodGet, "/api/v1/queues", nil, &qs)
		var finished int64
		for _, q := range qs {
			finished += q.Counts["dead"] + q.Counts["done"]
		}
		if finished >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d jobs finished\n%s", finished, n, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var backlogRe = regexp.MustCompile(`backlog: (\d+) failure rows not yet written`)

// failureBacklog reads the backlog of failure rows /readyz shows (-1 when
// it shows none).
func (s *server) failureBacklog(ctx context.Context) int {
	var out struct {
		Checks []struct {
			Name   string `json:"name"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	if _, err := s.api(ctx, http.MethodGet, "/readyz", nil, &out); err != nil {
		return -1
	}
	for _, c := range out.Checks {
		if m := backlogRe.FindStringSubmatch(c.Detail); c.Name == "failure_capture" && m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return -1
}

// waitReconciled polls /readyz until the failure reconciler's pass at
// start has finished (bounded by the test's deadline).
func (s *server) waitReconciled(t *testing.T) {
	t.Helper()
	ctx := deadline(t)
	for {
		var out struct {
			Checks []struct {
				Name   string `json:"name"`
				Detail string `json:"detail"`
			} `json:"checks"`
		}
		s.api(ctx, http.MethodGet, "/readyz", nil, &out)
		for _, c := range out.Checks {
			if c.Name == "failure_capture" && strings.Contains(c.Detail, "reconciled at") {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the failures were never reconciled: %+v\n%s", out, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// attemptsOf reads every failed attempt the queue in dataDir recorded, by
// job, with the job (the server must be stopped: this opens the files).
func attemptsOf(t *testing.T, store *queue.Store) (jobs []*queue.Job) {
	t.Helper()
	for _, st := range queue.States {
		for after := ""; ; {
			page, err := store.List(queue.ListFilter{State: st, After: after, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, page.Jobs...)
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	return jobs
}

// openStores opens the queue and the database of a stopped server.
func openStores(t *testing.T, dataDir string) (*queue.Store, *data.DB) {
	t.Helper()
	store, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := data.Open(t.Context(), filepath.Join(dataDir, "conveyor.db"), data.Options{})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	return store, db
}

// missingRows counts the failed attempts the queue of a killed server
// recorded without a failure row. Opening the queue rescues the jobs the
// kill interrupted, as the server's next start would (their crash strikes
// are recorded attempts too).
func missingRows(t *testing.T, dataDir string) (missing, strikes, recorded int) {
	t.Helper()
	store, db := openStores(t, dataDir)
	defer store.Close()
	defer db.Close()
	var want []*data.Failure
	for _, j := range attemptsOf(t, store) {
		for _, e := range j.Errors {
			want = append(want, &data.Failure{JobID: j.ID, Attempt: e.Attempt, Class: j.Class, ErrorClass: e.Class})
		}
	}
	lost, err := db.MissingFailures(t.Context(), want)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range lost {
		if f.ErrorClass == "Orphaned" {
			strikes++
		}
	}
	return len(lost), strikes, len(want)
}

// checkEveryAttemptHasOneRow: each failed attempt the queue recorded has
// exactly one failure row, and the rows rebuilt at restart are the ones
// the kill lost.
func checkEveryAttemptHasOneRow(t *testing.T, dataDir string, jobs, lost int) {
	t.Helper()
	store, db := openStores(t, dataDir)
	defer store.Close()
	defer db.Close()
	all := attemptsOf(t, store)
	if len(all) != jobs {
		t.Errorf("the queue holds %d jobs, want %d", len(all), jobs)
	}
	rows := map[string]int{}
	recovered := 0
	for after := int64(0); ; {
		ids, err := db.FailureIDs(t.Context(), data.FailureFilter{}, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			f, err := db.FailureByID(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			rows[fmt.Sprint(f.JobID, "/", f.Attempt)]++
			if f.Recovered {
				recovered++
			}
		}
		after = ids[len(ids)-1]
	}
	attempts := 0
	for _, j := range all {
		if j.State != queue.StateDead || len(j.Errors) == 0 {
			t.Errorf("job %d is %s with %d errors, want dead with its error", j.ID, j.State, len(j.Errors))
		}
		for _, e := range j.Errors {
			attempts++
			if n := rows[fmt.Sprint(j.ID, "/", e.Attempt)]; n != 1 {
				t.Errorf("job %d attempt %d (%s) has %d failure rows, want 1", j.ID, e.Attempt, e.Class, n)
			}
		}
	}
	if len(rows) != attempts {
		t.Errorf("%d attempts have rows, want the %d the queue recorded", len(rows), attempts)
	}
	if recovered != lost {
		t.Errorf("%d rows were rebuilt, want the %d the kill lost", recovered, lost)
	}
}
