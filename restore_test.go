package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/ops/failures"
)

// restoreRig is one data directory and its replica outside it, so that the
// directory can be lost and rebuilt.
type restoreRig struct {
	t       *testing.T
	data    string // data directory
	replica string // file:// URL
}

func newRestoreRig(t *testing.T) *restoreRig {
	dir := t.TempDir()
	u, err := data.FileReplicaURL(filepath.Join(dir, "replica"))
	if err != nil {
		t.Fatal(err)
	}
	return &restoreRig{t: t, data: filepath.Join(dir, "data"), replica: u}
}

func (r *restoreRig) start() *server {
	return startServer(r.t, r.data, "--replica", r.replica, "--queue-snapshot-interval", "100ms")
}

// lose deletes the data directory, as a lost machine would.
func (r *restoreRig) lose() {
	r.t.Helper()
	if err := os.RemoveAll(r.data); err != nil {
		r.t.Fatal(err)
	}
}

// restore runs `conveyor restore` in the test process.
func (r *restoreRig) restore() string {
	r.t.Helper()
	var out, errOut bytes.Buffer
	err := run(r.t.Context(), []string{"restore", "--data", r.data, "--replica", r.replica}, func(string) string { return "" }, &out, &errOut)
	if err != nil {
		r.t.Fatalf("restore: %v\n%s%s", err, out.String(), errOut.String())
	}
	return out.String()
}

// restored opens the restored database, checks it (PRAGMA integrity_check,
// foreign keys, the failure roll-ups) and returns the job ids of its
// failures and the number of issues.
func (r *restoreRig) restored() (jobIDs map[uint64]int, issues int, db *data.DB) {
	r.t.Helper()
	ctx := r.t.Context()
	db, err := data.Open(ctx, filepath.Join(r.data, dbFile), data.Options{ReadConns: 2})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { db.Close() })
	if err := db.IntegrityCheck(ctx); err != nil {
		r.t.Fatalf("restored database: %v", err)
	}
	var ok string
	if err := dbPragma(db, &ok); err != nil || ok != "ok" {
		r.t.Fatalf("PRAGMA integrity_check = %q (%v)", ok, err)
	}
	jobIDs = map[uint64]int{}
	for offset := 0; ; offset += data.MaxFailureLimit {
		fs, _, err := db.FindFailures(ctx, data.FailureFilter{Sort: []data.SortKey{{Field: data.FieldID}}, Offset: offset, Limit: data.MaxFailureLimit})
		if err != nil {
			r.t.Fatal(err)
		}
		for _, f := range fs {
			jobIDs[f.JobID]++
		}
		if len(fs) < data.MaxFailureLimit {
			break
		}
	}
	_, issues, err = db.FindIssues(ctx, data.IssueFilter{Limit: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	return jobIDs, issues, db
}

// dbPragma runs PRAGMA integrity_check on a restored file through a plain
// read-only connection, as an operator would.
func dbPragma(db *data.DB, out *string) error {
	c, err := sql.Open("sqlite", "file:"+db.Path()+"?mode=ro")
	if err != nil {
		return err
	}
	defer c.Close()
	return c.QueryRow("PRAGMA integrity_check").Scan(out)
}

// enqueueFail enqueues a FailJob over HTTP and returns its id (0 when the
// server did not accept it).
func enqueueFail(ctx context.Context, s *server, msg string) uint64 {
	var out struct {
		ID uint64 `json:"id"`
	}
	body := map[string]any{"class": "FailJob", "max_attempts": 1, "args": map[string]string{"kind": "transient", "message": msg}}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", body, &out); err != nil || code != http.StatusCreated {
		return 0
	}
	return out.ID
}

// failureTotal is the failures list's total.
func failureTotal(ctx context.Context, s *server) (int, error) {
	var page struct {
		Total int `json:"total"`
	}
	code, err := s.api(ctx, http.MethodGet, "/api/v1/failures?size=1", nil, &page)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d", code)
	}
	return page.Total, err
}

// waitFailures waits until the server lists at least n failures.
func waitFailures(t *testing.T, s *server, n int) {
	t.Helper()
	ctx := deadline(t)
	for {
		got, err := failureTotal(ctx, s)
		if err == nil && got >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d failures listed, want %d (%v)\n%s", got, n, err, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRestoreEndToEnd writes failures, issues, cursors and queued jobs,
// stops, loses the data directory, restores it with `conveyor restore`, and
// finds everything; then it repeats stop → lose → restore under write load
// (SIGTERM: nothing acknowledged is lost), and once with SIGKILL after the
// replica and the queue snapshot caught up (nothing synced is lost).
func TestRestoreEndToEnd(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t)
	s := r.start()
	ctx := deadline(t)

	// Failures (three fingerprints, hence three issues), cursors, and jobs
	// waiting in the queue.
	acked := map[uint64]bool{}
	for i := range 30 {
		id := enqueueFail(ctx, s, fmt.Sprintf("dependency %s is down (try %d)", []string{"alpha", "beta", "gamma"}[i%3], i))
		if id == 0 {
			t.Fatal("enqueue refused")
		}
		acked[id] = true
	}
	var scheduled []uint64
	for range 5 {
		var out struct {
			ID uint64 `json:"id"`
		}
		if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "NoopJob", "in_seconds": 86400}, &out); err != nil || code != http.StatusCreated {
			t.Fatalf("enqueue scheduled: %d %v", code, err)
		}
		scheduled = append(scheduled, out.ID)
	}
	writeCursors(t, filepath.Join(r.data, dbFile))
	waitFailures(t, s, len(acked))
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.stderr.String())
	}

	r.lose()
	out := r.restore()
	for _, want := range []string{"restoring ", "integrity_check ok", "database: 30 failures, 3 open issues", "queue: restored"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore output lacks %q:\n%s", want, out)
		}
	}
	jobs, issues, db := r.restored()
	if len(jobs) != 30 || issues != 3 {
		t.Fatalf("restored %d failed jobs and %d issues, want 30 and 3", len(jobs), issues)
	}
	for id := range acked {
		if jobs[id] != 1 {
			t.Errorf("job %d has %d failures after the restore", id, jobs[id])
		}
	}
	cur, err := db.Cursor(ctx, 1, "followers")
	if err != nil || cur.Cursor != "page-7" {
		t.Errorf("restored cursor %+v %v", cur, err)
	}
	db.Close()
	// A second restore into the restored directory is refused.
	var refused bytes.Buffer
	if err := run(ctx, []string{"restore", "--data", r.data, "--replica", r.replica}, func(string) string { return "" }, &refused, &refused); err == nil ||
		!strings.Contains(err.Error(), "refusing to restore") {
		t.Errorf("restore over a database: %v", err)
	}

	// The restored server has its scheduled jobs back, and replicates on.
	s = r.start()
	for _, id := range scheduled {
		var j struct {
			State string `json:"state"`
		}
		if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != 200 || j.State != "scheduled" {
			t.Errorf("scheduled job %d after the restore: %d %v %+v", id, code, err, j)
		}
	}

	// Stop → lose → restore, under write load.
	for cycle := range 3 {
		var mu sync.Mutex
		loadCtx, stopLoad := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for p := range 2 {
			wg.Go(func() {
				for n := 0; loadCtx.Err() == nil; n++ {
					if id := enqueueFail(loadCtx, s, fmt.Sprintf("cycle %d producer %d", cycle, p)); id != 0 {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					}
				}
			})
		}
		// Let the load run, then stop the server under it.
		waitFailures(t, s, len(acked)+20)
		if err, _ := s.terminate(); err != nil {
			t.Fatalf("cycle %d: stop: %v\n%s", cycle, err, s.stderr.String())
		}
		stopLoad()
		wg.Wait()
		r.lose()
		r.restore()
		if _, _, db := r.restored(); db != nil {
			db.Close()
		}
		// Jobs acknowledged but not run before the stop come back with the
		// queue, run, and fail: every acknowledged job has its failure.
		s = r.start()
		waitFailures(t, s, len(acked))
		if err, _ := s.terminate(); err != nil {
			t.Fatalf("cycle %d: stop: %v", cycle, err)
		}
		jobs, _, db := r.restored()
		for id := range acked {
			if jobs[id] == 0 {
				t.Errorf("cycle %d: acknowledged job %d has no failure", cycle, id)
			}
		}
		db.Close()
		s = r.start()
	}

	// SIGKILL once everything is in the replica and the queue snapshot.
	for i := range 20 {
		if id := enqueueFail(ctx, s, fmt.Sprintf("before the crash %d", i)); id != 0 {
			acked[id] = true
		}
	}
	var later []uint64
	for range 3 {
		var out struct {
			ID uint64 `json:"id"`
		}
		if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "NoopJob", "in_seconds": 86400}, &out); err != nil || code != 201 {
			t.Fatalf("enqueue: %d %v", code, err)
		}
		later = append(later, out.ID)
	}
	waitFailures(t, s, len(acked))
	// Bring the replica and the queue snapshot up to date, then crash.
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/backup", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("backup: %d %v", code, err)
	}
	s.kill()
	r.lose()
	r.restore()
	jobs, _, db = r.restored()
	for id := range acked {
		if jobs[id] == 0 {
			t.Errorf("after the crash: acknowledged job %d has no failure", id)
		}
	}
	db.Close()
	s = r.start()
	for _, id := range append(scheduled, later...) {
		var j struct {
			State string `json:"state"`
		}
		if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != 200 || j.State != "scheduled" {
			t.Errorf("scheduled job %d after the crash and restore: %d %v %+v", id, code, err, j)
		}
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("final stop: %v", err)
	}
}

// writeCursors writes an account and its follow-graph cursor into the
// server's database from this process, as another writer would.
func writeCursors(t *testing.T, path string) {
	t.Helper()
	ctx := t.Context()
	db, err := data.Open(ctx, path, data.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := &data.Account{Username: "restore-test"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.SetCursor(ctx, data.SyncCursor{AccountID: a.ID, Kind: "followers", Cursor: "page-7", StartedFromStart: true}); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefusesAndExplains covers restore's refusals: a directory that
// holds a queue, an empty replica, and usage mistakes.
func TestRestoreRefusesAndExplains(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t)
	ctx := t.Context()
	env := func(string) string { return "" }
	var out bytes.Buffer
	// An empty replica: nothing to restore, nothing written.
	err := run(ctx, []string{"restore", "--data", r.data, "--replica", r.replica}, env, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "holds no backup") {
		t.Errorf("empty replica: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.data, dbFile)); !os.IsNotExist(err) {
		t.Errorf("a failed restore left a database: %v", err)
	}
	if _, err := os.Stat(r.data); !os.IsNotExist(err) {
		t.Errorf("a failed restore left its data directory: %v", err)
	}
	if err := os.MkdirAll(r.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.data, queueFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"restore", "--data", r.data, "--replica", r.replica}, env, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "already holds queue.bolt") {
		t.Errorf("directory with a queue: %v", err)
	}
	for _, args := range [][]string{
		{"restore", "--replica", "off"},
		{"restore", "--replica", r.replica, "--litestream-config", "litestream.yml"},
		{"restore", "extra"},
	} {
		var usage *usageError
		if err := run(ctx, args, env, &out, &out); !asUsage(err, &usage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func asUsage(err error, target **usageError) bool {
	u, ok := err.(*usageError)
	if ok {
		*target = u
	}
	return ok
}

// TestLitestreamYMLMatchesTheDefaultLayout: the top-level litestream.yml
// names the database and replica serve uses by default, and serve accepts
// it.
func TestLitestreamYMLMatchesTheDefaultLayout(t *testing.T) {
	t.Parallel()
	lc, err := data.LoadLitestreamConfig("litestream.yml")
	if err != nil {
		t.Fatal(err)
	}
	wantDB, _ := filepath.Abs(filepath.Join(defaultDataDir, dbFile))
	wantReplica, err := data.FileReplicaURL(filepath.Join(defaultDataDir, replicaDir))
	if err != nil {
		t.Fatal(err)
	}
	if lc.DBPath != wantDB || lc.ReplicaURL != wantReplica {
		t.Errorf("litestream.yml: %s → %s, want %s → %s", lc.DBPath, lc.ReplicaURL, wantDB, wantReplica)
	}
	var s storageSettings
	s.flagLitestream = "litestream.yml"
	if err := s.resolve(storageFile{}, func(string) string { return "" }, defaultDataDir); err != nil || s.ReplicaURL != wantReplica {
		t.Errorf("serve --litestream-config litestream.yml: %v, replica %s", err, s.ReplicaURL)
	}
	s = storageSettings{flagLitestream: "litestream.yml"}
	if err := s.resolve(storageFile{}, func(string) string { return "" }, t.TempDir()); err == nil || !strings.Contains(err.Error(), "set --data") {
		t.Errorf("another data directory: %v", err)
	}
}

// TestFailureSettings covers the replica, snapshot and file settings
// (storageSettings and failureSettings).
func TestFailureSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	def, _ := data.FileReplicaURL(filepath.Join(dir, replicaDir))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		name    string
		s       storageSettings
		env     map[string]string
		file    string
		replica string
		snap    time.Duration
		err     string
	}{
		{name: "defaults", replica: def, snap: time.Minute},
		{name: "flag", s: storageSettings{flagReplica: "s3://b/p?region=x", flagSnapshots: "5s"}, replica: "s3://b/p?region=x", snap: 5 * time.Second},
		{name: "env", env: map[string]string{"CONVEYOR_REPLICA_URL": "off", "CONVEYOR_QUEUE_SNAPSHOT_INTERVAL": "0"}, replica: "", snap: 0},
		{name: "flag beats env", s: storageSettings{flagReplica: "file:///x"}, env: map[string]string{"CONVEYOR_REPLICA_URL": "off"}, replica: "file:///x", snap: time.Minute},
		{name: "file", file: "replica: file:///y\nqueue_snapshot_interval: 2m\nqueue_health: {max_latency: 10m, queues: {sync: {max_size: 5}}}\nfailure_retry: {batch_size: 7}\nfailure_write_rate: 500\n",
			replica: "file:///y", snap: 2 * time.Minute},
		{name: "both", s: storageSettings{flagReplica: "file:///x", flagLitestream: "litestream.yml"}, err: "both name a replica"},
		{name: "bad interval", s: storageSettings{flagSnapshots: "soon"}, err: "--queue-snapshot-interval"},
		{name: "bad retry", file: "failure_retry: {max_retries: -1}\n", err: "failure_retry"},
		{name: "bad size", file: "queue_health: {max_size: -1}\n", err: "max_size"},
		{name: "bad rate", file: "failure_write_rate: -1\n", err: "failure_write_rate"},
		{name: "unknown key", file: "queue_health: {max_wait: 1m}\n", err: "max_wait"},
	} {
		var fc fileConfig
		if c.file != "" {
			if err := decodeConfig([]byte(c.file), &fc); err != nil {
				if c.err == "" || !strings.Contains(err.Error(), c.err) {
					t.Errorf("%s: %v", c.name, err)
				}
				continue
			}
		}
		s := c.s
		var fs failureSettings
		err := errors.Join(s.resolve(fc.storageFile, env(c.env), dir), fs.resolve(fc.failuresFile))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error about %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case s.ReplicaURL != c.replica || s.QueueSnapshotInterval != c.snap:
			t.Errorf("%s: replica %q snapshots %v, want %q %v", c.name, s.ReplicaURL, s.QueueSnapshotInterval, c.replica, c.snap)
		}
		if c.name == "file" && (fs.QueueHealth.Default.MaxLatency != 10*time.Minute || fs.QueueHealth.Queues["sync"].MaxSize != 5 ||
			fs.AutoRetry.BatchSize != 7 || fs.FailureWriteRate != 500) {
			t.Errorf("file settings not read: %+v %+v %d", fs.QueueHealth, fs.AutoRetry, fs.FailureWriteRate)
		}
		if c.name == "defaults" && fs.FailureWriteRate != failures.DefaultFailureWriteRate {
			t.Errorf("default write rate %d", fs.FailureWriteRate)
		}
	}
}

// TestQueueSnapshotOnStop: serve writes a queue snapshot when it stops, so a
// clean stop loses nothing of the queue.
func TestQueueSnapshotOnStop(t *testing.T) {
	t.Parallel()
	r := newRestoreRig(t)
	// Snapshots every hour: only the first (at start) and the last (at stop).
	s := startServer(t, r.data, "--replica", r.replica, "--queue-snapshot-interval", "1h")
	ctx := deadline(t)
	var out struct {
		ID uint64 `json:"id"`
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/jobs", map[string]any{"class": "NoopJob", "in_seconds": 3600}, &out); err != nil || code != 201 {
		t.Fatalf("enqueue: %d %v", code, err)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatal(err)
	}
	r.lose()
	r.restore()
	s = r.start()
	var j struct {
		State string `json:"state"`
	}
	if code, err := s.api(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", out.ID), nil, &j); err != nil || code != 200 || j.State != "scheduled" {
		t.Errorf("job after restore: %d %v %+v", code, err, j)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatal(err)
	}
}
