package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDiskFull runs the server on a data directory on a tmpfs of 8 MiB it
// mounts, and fills it with jobs until enqueues fail: each failure is a 507
// saying the disk is full, /readyz goes red naming it, nothing acknowledged is
// missing; once space is freed (a ballast file the test wrote first is
// removed), enqueues succeed again without a restart and /readyz is green, and
// after a restart every acknowledged job is there. Mounting needs root: the
// test skips, saying so, without it.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	mnt := mountTmpfs(t, "8m")
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := deadline(t)
	data := filepath.Join(mnt, "data")
	// The replica (the database's, and the queue's snapshots) lives on another
	// disk, as it should.
	args := []string{"--schedule", emptySchedule(t), "--replica", "file://" + filepath.Join(t.TempDir(), "replica")}
	srv := startServer(t, data, args...)
	if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/avatars/pause", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("pause: %d %v", code, err)
	}
	pad := strings.Repeat("x", 32<<10)
	enqueue := func() (int, string, uint64) {
		return srv.tryEnqueue(ctx, t, map[string]any{"class": "NoopJob", "queue": "avatars", "args": map[string]string{"pad": pad}})
	}
	var acked []uint64
	for {
		code, body, id := enqueue()
		if code == http.StatusCreated {
			acked = append(acked, id)
			if len(acked) > 1000 {
				t.Fatal("8 MiB never filled up")
			}
			continue
		}
		if code != http.StatusInsufficientStorage || !strings.Contains(body, "disk is full") {
			t.Fatalf("enqueue on a full disk: %d %s", code, body)
		}
		break
	}
	t.Logf("%d jobs of 32 KiB acknowledged before the disk was full", len(acked))
	for range 3 { // it stays so, and says so
		if code, body, _ := enqueue(); code != http.StatusInsufficientStorage {
			t.Fatalf("enqueue on a full disk: %d %s", code, body)
		}
	}
	var ready string
	if code, err := srv.raw(ctx, "/readyz", &ready); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(ready, "no space left") {
		t.Fatalf("/readyz on a full disk: %d %v %s", code, err, ready)
	}
	for _, id := range acked {
		srv.job(ctx, t, id)
	}
	// Space again: writes resume without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	code, body, id := enqueue()
	if code != http.StatusCreated {
		t.Fatalf("enqueue once space is freed: %d %s", code, body)
	}
	acked = append(acked, id)
	if code, err := srv.raw(ctx, "/readyz", &ready); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz once space is freed: %d %v %s", code, err, ready)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("stop: %v\n%s", err, srv.stderr.String())
	}
	srv = startServer(t, data, args...)
	for _, id := range acked {
		if j := srv.job(ctx, t, id); j.State != "ready" {
			t.Fatalf("job %d after the restart: %+v", id, j)
		}
	}
	srv.terminate()
}

// TestDiskFullDatabase fills the database's disk while jobs fail: the data
// directory is on an 8 MiB tmpfs and the queue file on another filesystem
// (a symlink), so that the queue still commits claims and acks while SQLite
// cannot write (on one disk a full disk stops the claims first and no job
// fails). Failure rows that cannot be written are counted ("not written" on
// /readyz), the lanes go on running jobs, the server does not crash, and
// once space is freed failures are recorded again without a restart.
// Mounting needs root: the test skips, saying so, without it.
func TestDiskFullDatabase(t *testing.T) {
	t.Parallel()
	mnt := mountTmpfs(t, "8m")
	ctx := deadline(t)
	data := filepath.Join(mnt, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), queueFile), filepath.Join(data, queueFile)); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, data, "--schedule", emptySchedule(t), "--replica", "off")
	fail := func(tag string) uint64 {
		return srv.enqueueJob(ctx, t, map[string]any{"class": "FailJob", "max_attempts": 1,
			"args": map[string]string{"kind": "runtime", "message": tag + strings.Repeat(" padding", 500)}})
	}
	// Some failures are recorded while there is room.
	for i := range 5 {
		srv.pollJob(ctx, t, fail(fmt.Sprintf("room-%d", i)), func(j jobJSON) bool { return j.State == "dead" })
	}
	st := srv.failureCapture(ctx, t)
	if st.recorded == 0 {
		t.Fatalf("no failure recorded with room on the disk: %+v", st)
	}
	// Fill the disk to the last byte.
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	// Jobs keep failing; their rows cannot be written.
	var failed []uint64
	for i := 0; ; i++ {
		id := fail(fmt.Sprintf("full-%d", i))
		failed = append(failed, id)
		srv.pollJob(ctx, t, id, func(j jobJSON) bool { return j.State == "dead" })
		if now := srv.failureCapture(ctx, t); now.notWritten > 0 {
			st = now
			break
		}
		if i == 1000 {
			t.Fatalf("1000 failures on a full disk and none failed to be written: %+v", srv.failureCapture(ctx, t))
		}
	}
	t.Logf("full disk: %+v", st)
	// The lanes go on: a job runs and finishes while the database cannot write.
	srv.pollJob(ctx, t, srv.enqueueJob(ctx, t, map[string]any{"class": "NoopJob"}), func(j jobJSON) bool { return j.State == "done" })
	// Space again: failures are recorded again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		srv.pollJob(ctx, t, fail(fmt.Sprintf("again-%d", i)), func(j jobJSON) bool { return j.State == "dead" })
		if now := srv.failureCapture(ctx, t); now.recorded > st.recorded {
			t.Logf("space again: %+v", now)
			break
		}
		if i == 100 {
			t.Fatalf("no failure recorded once space was freed: %+v", srv.failureCapture(ctx, t))
		}
	}
	select {
	case err := <-srv.exited:
		t.Fatalf("the server died: %v\n%s", err, srv.stderr.String())
	default:
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("stop: %v\n%s", err, srv.stderr.String())
	}
}

// mountTmpfs mounts a tmpfs of the given size for the test, or skips saying
// why it cannot.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("mounting a small tmpfs needs root (running as uid %d): the disk-full test did not run", os.Geteuid())
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs at %s (%v): the disk-full test did not run", mnt, err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}

// fillDisk writes path until its filesystem has no byte left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{1}, 64<<10)
	for len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			buf = buf[:len(buf)/2]
		}
	}
}

// captureRe reads the failure writer's counters in /readyz's
// failure_capture check.
var captureRe = regexp.MustCompile(`\((\d+) waiting in the writer.*; (\d+) recorded, (\d+) dropped, (\d+) not written`)

// captureStats are the failure writer's counters from /readyz.
type captureStats struct{ recorded, pending, dropped, notWritten int }

func (s *server) failureCapture(ctx context.Context, t *testing.T) captureStats {
	t.Helper()
	var ready struct {
		Checks []struct {
			Name   string `json:"name"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	if _, err := s.api(ctx, http.MethodGet, "/readyz", nil, &ready); err != nil {
		t.Fatal(err)
	}
	for _, c := range ready.Checks {
		if c.Name == "failure_capture" {
			var st captureStats
			m := captureRe.FindStringSubmatch(c.Detail)
			if m == nil {
				t.Fatalf("failure_capture %q: not as expected (%s)", c.Detail, captureRe)
			}
			for i, p := range []*int{&st.pending, &st.recorded, &st.dropped, &st.notWritten} {
				*p, _ = strconv.Atoi(m[i+1])
			}
			return st
		}
	}
	t.Fatalf("/readyz has no failure_capture check: %+v", ready)
	return captureStats{}
}

// tryEnqueue posts one job and returns the answer's status and body, and the
// new job's id (0 when it was refused).
func (s *server) tryEnqueue(ctx context.Context, t *testing.T, job map[string]any) (int, string, uint64) {
	t.Helper()
	code, body, err := s.call(ctx, http.MethodPost, "/api/v1/jobs", job)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID uint64 `json:"id"`
	}
	json.Unmarshal(body, &out)
	return code, string(body), out.ID
}
