package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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
	if os.Geteuid() != 0 {
		t.Skipf("mounting a small tmpfs needs root (running as uid %d): the disk-full test did not run", os.Geteuid())
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs at %s (%v): the disk-full test did not run", mnt, err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
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
		code, body, err := srv.call(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "NoopJob", "queue": "avatars", "args": map[string]string{"pad": pad}})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			ID uint64 `json:"id"`
		}
		json.Unmarshal(body, &out)
		return code, string(body), out.ID
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
