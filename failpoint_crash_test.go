//go:build failpoints

package main

import (
	"context"
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

	"conveyor/queue"
)

// TestCrashAtFailpoints kills the real server at each of the queue's commit
// boundaries in turn (before a commit, right after it and before anyone is
// told, in the middle of a group commit, before a commit of finished attempts,
// before promoting due jobs), at a random pass, under a load of single and
// batch enqueues over HTTP, many times. After every death: the store's full
// check passes on the file as the crash left it; after the restart every
// enqueue that was answered exists as it was sent, and every one that got no
// answer exists whole (its whole batch) or not at all. The jobs checked wait in
// a paused queue, so that their unique keys stay held and name them; SleepJobs
// in another queue keep claims and acks going. 2 deaths per failpoint in
// `make test`, 20 in `make chaos`.
func TestCrashAtFailpoints(t *testing.T) {
	t.Parallel()
	rounds := 2
	if os.Getenv("CONVEYOR_CHAOS") != "" {
		rounds = 20
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{"--schedule", emptySchedule(t)}
	base := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
	ctx := deadline(t)
	srv := startServer(t, data, args...)
	if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/"+heldQueue+"/pause", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("pause: %d %v", code, err)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatal(err)
	}
	var all []sent
	var answered, unanswered int
	for _, fp := range queue.Failpoints {
		for round := range rounds {
			from := len(all)
			env := append(base[:len(base):len(base)], "CONVEYOR_FAILPOINT="+fp,
				"CONVEYOR_FAILPOINT_SKIP="+strconv.Itoa(rnd.IntN(40)))
			var err error
			srv, err = launchServer(t, data, env, args...)
			if err == nil {
				all = append(all, loadUntilDeath(ctx, t, srv, fmt.Sprintf("%s-%d", fp, round))...)
			}
			if err := <-srv.exited; err == nil || !strings.Contains(err.Error(), fmt.Sprintf("exit status %d", queue.FailpointExitCode)) {
				t.Fatalf("%s: the server exited with %v, not at the failpoint\n%s", fp, err, srv.stderr.String())
			}
			checkStoreFile(t, data)
			// This round's requests, and a sample of the earlier ones: none
			// may be lost later.
			check := all[from:]
			for _, i := range rnd.Perm(from)[:min(from, 100)] {
				check = append(check, all[i])
			}
			for _, s := range all[from:] {
				if s.answered {
					answered++
				} else {
					unanswered++
				}
			}
			verifySent(ctx, t, data, args, check)
		}
	}
	t.Logf("%d deaths at failpoints; %d enqueues answered, %d not (each existed whole or not at all)",
		len(queue.Failpoints)*rounds, answered, unanswered)
}

// sent is one enqueue request of the load: its jobs' unique keys (tokens) and
// what became of the request.
type sent struct {
	tokens   []string
	answered bool
	ids      []uint64
}

// loadUntilDeath enqueues from 8 clients, singles and batches of 3, some due
// in 100 ms, until the server dies.
func loadUntilDeath(ctx context.Context, t *testing.T, srv *server, tag string) []sent {
	var mu sync.Mutex
	var out []sent
	var wg sync.WaitGroup
	died := make(chan struct{})
	go func() {
		err := <-srv.exited
		srv.exited <- err // for the caller
		close(died)
	}()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-died:
					return
				case <-ctx.Done():
					return
				default:
				}
				if g == 0 { // claims and acks
					srv.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "SleepJob", "args": map[string]int{"ms": 2}}, nil)
					continue
				}
				size := 1
				if n%3 == 2 {
					size = 3
				}
				s := sent{}
				var jobs []map[string]any
				for i := range size {
					tok := fmt.Sprintf("%s-%d-%d-%d", tag, g, n, i)
					s.tokens = append(s.tokens, tok)
					job := map[string]any{"class": "SleepJob", "queue": heldQueue, "args": map[string]any{"ms": 1 + i}, "unique_key": tok}
					if n%4 == 1 {
						job["run_at"] = time.Now().Add(100 * time.Millisecond).UTC().Format(time.RFC3339Nano)
					}
					jobs = append(jobs, job)
				}
				if size == 1 {
					var r struct {
						ID uint64 `json:"id"`
					}
					code, err := srv.api(ctx, http.MethodPost, "/api/v1/jobs", jobs[0], &r)
					if err == nil && code == http.StatusCreated {
						s.answered, s.ids = true, []uint64{r.ID}
					}
				} else {
					var r struct {
						IDs []uint64 `json:"ids"`
					}
					code, err := srv.api(ctx, http.MethodPost, "/api/v1/jobs/batch", map[string]any{"jobs": jobs}, &r)
					if err == nil && code == http.StatusCreated {
						s.answered, s.ids = true, r.IDs
					}
				}
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// verifySent restarts the server without a failpoint and checks the requests: an answered one exists; an unanswered one exists whole or not
// at all. Asking is an enqueue of the same unique key: a duplicate names the
// holder, a new job says there was none.
func verifySent(ctx context.Context, t *testing.T, data string, args []string, all []sent) {
	t.Helper()
	srv := startServer(t, data, args...)
	for i := range all {
		s := &all[i]
		var found []uint64
		for _, tok := range s.tokens {
			var r struct {
				ID        uint64 `json:"id"`
				Duplicate bool   `json:"duplicate"`
			}
			code, err := srv.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "NoopJob", "queue": heldQueue, "unique_key": tok}, &r)
			if err != nil || (code != http.StatusOK && code != http.StatusCreated) {
				t.Fatalf("probe %s: %d %v", tok, code, err)
			}
			if r.Duplicate {
				found = append(found, r.ID)
				if j := srv.job(ctx, t, r.ID); j.ID != r.ID {
					t.Fatalf("job %d of %s unreadable: %+v", r.ID, tok, j)
				}
			}
		}
		switch {
		case s.answered && len(found) != len(s.tokens):
			t.Fatalf("an acknowledged enqueue (%v, ids %v) was lost: found %v", s.tokens, s.ids, found)
		case s.answered && fmt.Sprint(found) != fmt.Sprint(s.ids):
			t.Fatalf("an acknowledged enqueue (%v) is held by other jobs: %v, answered %v", s.tokens, found, s.ids)
		case !s.answered && len(found) != 0 && len(found) != len(s.tokens):
			t.Fatalf("an unanswered batch (%v) exists in part: %v", s.tokens, found)
		}
		if len(found) == len(s.tokens) {
			s.answered, s.ids = true, found // known now: it must stay
		}
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("verifying server: %v\n%s", err, srv.stderr.String())
	}
}
