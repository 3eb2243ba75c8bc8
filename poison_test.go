package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"conveyor/lanes"
	"conveyor/queue"
)

// Poison pills: job classes that harm the process running them, registered in
// the server the end-to-end tests start (TestMain sets extraClasses). Their
// queue is `maintenance`, in the default lane.
const (
	poisonExit      = "PoisonExit"  // calls os.Exit(3)
	poisonCrash     = "PoisonCrash" // panics in a goroutine of its own: nothing can recover it
	poisonPanic     = "PoisonPanic" // panics in the handler (the lanes recover it)
	poisonHang      = "PoisonHang"  // never returns, ignoring its context (timeout 300 ms)
	poisonAlloc     = "PoisonAlloc" // allocates until the process dies
	poisonHangAfter = 300 * time.Millisecond
	poisonExitCode  = 3
)

func registerPoisonPills(r *lanes.Registry) error {
	block := make(chan struct{}) // never closed
	var hoard [][]byte
	return errors.Join(
		r.Register(lanes.Class{Name: poisonExit, Queue: "maintenance", Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			os.Exit(poisonExitCode)
			return nil
		})}),
		r.Register(lanes.Class{Name: poisonCrash, Queue: "maintenance", Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			go panic("poison pill: a panic nobody recovers")
			<-block
			return nil
		})}),
		r.Register(lanes.Class{Name: poisonPanic, Queue: "maintenance", Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			panic("poison pill: a panic in the handler")
		})}),
		r.Register(lanes.Class{Name: poisonHang, Queue: "maintenance", Timeout: poisonHangAfter,
			Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
				<-block
				return nil
			})}),
		r.Register(lanes.Class{Name: poisonAlloc, Queue: "maintenance", Handler: lanes.HandlerFunc(func(context.Context, *queue.Job) error {
			for {
				b := make([]byte, 16<<20)
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1 // touch every page: resident, not just reserved
				}
				hoard = append(hoard, b)
			}
		})}),
	)
}

// jobJSON is the part of GET /api/v1/jobs/{id} the crash tests read.
type jobJSON struct {
	ID      uint64 `json:"id"`
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
	Orphans int    `json:"orphans"`
	Stuck   bool   `json:"stuck"`
	Errors  []struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (s *server) job(ctx context.Context, t *testing.T, id uint64) jobJSON {
	t.Helper()
	var j jobJSON
	if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != http.StatusOK {
		t.Fatalf("get job %d: %d %v", id, code, err)
	}
	return j
}

func (s *server) enqueueJob(ctx context.Context, t *testing.T, body map[string]any) uint64 {
	t.Helper()
	var out struct {
		ID uint64 `json:"id"`
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", body, &out); err != nil || code != http.StatusCreated {
		t.Fatalf("enqueue %v: %d %v", body, code, err)
	}
	return out.ID
}

// waitStarted waits until the exec log shows a start of each job.
func waitStarted(ctx context.Context, t *testing.T, execLog string, ids ...uint64) {
	t.Helper()
	for {
		b, _ := os.ReadFile(execLog)
		missing := 0
		for _, id := range ids {
			if !strings.Contains(string(b), fmt.Sprintf("start %d ", id)) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jobs %v never started", ids)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestCrashGuardBlamesOnlyTheCulprit runs a job that kills the process (os.Exit)
// while long innocent jobs run beside it, restarting the server after each
// death. The culprit must go to dead after exactly three crashes, and no
// innocent job may: they ran beside it once, and a struck job then runs alone.
func TestCrashGuardBlamesOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	ctx := deadline(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	execLog := filepath.Join(dir, "exec.log")
	args := []string{"--exec-log", execLog, "--schedule", emptySchedule(t)}
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)

	srv := startServer(t, data, args...)
	var innocents []uint64
	for range 3 {
		innocents = append(innocents, srv.enqueueJob(ctx, t, map[string]any{"class": "SleepJob", "queue": "sync", "args": map[string]int{"ms": 700}}))
	}
	waitStarted(ctx, t, execLog, innocents...)
	culprit := srv.enqueueJob(ctx, t, map[string]any{"class": poisonExit})

	// Restart after each death until the culprit is dead. The culprit may kill
	// a server at any moment, before it serves or while it answers.
	crashes := 0
	for {
		var j jobJSON
		code, err := srv.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", culprit), nil, &j)
		if err == nil && code == http.StatusOK && j.State == "dead" {
			break
		}
		select {
		case err := <-srv.exited:
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("exit status %d", poisonExitCode)) {
				t.Fatalf("server exited with %v, want the poison pill's status %d\n%s", err, poisonExitCode, srv.stderr.String())
			}
			if crashes++; crashes > 10 {
				t.Fatalf("%d crashes and counting", crashes)
			}
			checkStoreFile(t, data)
			// On an early death launchServer leaves the exit on srv.exited.
			srv, _ = launchServer(t, data, env, args...)
		case <-ctx.Done():
			t.Fatalf("the culprit is not dead after %d crashes: %+v", crashes, j)
		case <-time.After(50 * time.Millisecond):
		}
	}
	srv.waitDrained(t)
	j := srv.job(ctx, t, culprit)
	if crashes != 3 || j.Orphans != 3 || j.Errors[len(j.Errors)-1].Message != "crashed the worker 3 times" {
		t.Fatalf("the culprit went to dead after %d crashes: %+v", crashes, j)
	}
	for _, id := range innocents {
		if j := srv.job(ctx, t, id); j.State != "done" || j.Orphans > 1 {
			t.Errorf("innocent job %d ran beside the culprit: %+v", id, j)
		}
	}
	if dead, err := srv.deadCount(ctx); err != nil || dead != 1 {
		t.Errorf("%d jobs dead, want only the culprit (%v)", dead, err)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// checkStoreFile runs the store's full check (bbolt's own, and every job in
// exactly one index with counters that match) on the queue file of a dead
// server, read-only: the next server finds the file as the crash left it.
func checkStoreFile(t *testing.T, dataDir string) {
	t.Helper()
	if err := queue.CheckFile(filepath.Join(dataDir, queueFile)); err != nil {
		t.Fatalf("store check after a crash: %v", err)
	}
}
