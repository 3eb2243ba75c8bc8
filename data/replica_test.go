package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/internal/testlog"
)

// fastReplica shortens litestream's intervals for tests.
func fastReplica(t testing.TB) ReplicaOptions {
	return ReplicaOptions{
		MonitorInterval:     20 * time.Millisecond,
		SyncInterval:        20 * time.Millisecond,
		CheckpointInterval:  200 * time.Millisecond,
		MinCheckpointPageN:  64,
		CompactionIntervals: []time.Duration{time.Second},
		ShutdownSyncTimeout: 10 * time.Second,
		Logger:              testlog.New(t),
	}
}

func mustFileURL(t testing.TB, abs string) string {
	t.Helper()
	u, err := fileURL(abs)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// removeDB deletes a database the way a lost disk does: the file, -wal,
// -shm and litestream's meta directory.
func removeDB(t testing.TB, path string) {
	t.Helper()
	dir, name := filepath.Split(path)
	for _, p := range []string{path, path + "-wal", path + "-shm", filepath.Join(dir, "."+name+"-litestream")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplicateRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	dbPath := filepath.Join(root, "data", "conveyor.db")
	replica := mustFileURL(t, filepath.Join(root, "replica"))
	clk := newClock()

	db, err := Open(ctx, dbPath, Options{Now: clk.Now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Replicate(ctx, dbPath, replica, fastReplica(t))
	if err != nil {
		t.Fatal(err)
	}
	fs := genFailures(200, 30, clk.Now())
	if err := db.InsertFailures(ctx, fs); err != nil {
		t.Fatal(err)
	}
	issue, _, err := db.UpsertIssue(ctx, IssueEvent{Fingerprint: "fp-1", Source: SourceQueueHealth, Title: "sync latency", Context: json.RawMessage(`{"latency_ms":900}`)})
	if err != nil {
		t.Fatal(err)
	}
	acct := &Account{Username: "restored"}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	cur := SyncCursor{AccountID: acct.ID, Kind: CursorFollowers, Cursor: "QVFEabc", StartedFromStart: true, StartedAt: clk.Now()}
	if err := db.SetCursor(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if r.LastSync().IsZero() {
		t.Error("LastSync is zero after Sync")
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown order: application connections, then the replicator.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Lose the whole data directory: database, -wal, -shm and meta dir.
	if err := os.RemoveAll(filepath.Dir(dbPath)); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	if err := Restore(ctx, replica, dbPath, &progress); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "integrity_check ok") {
		t.Errorf("progress = %q", progress.String())
	}

	db, err = Open(ctx, dbPath, Options{Now: clk.Now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	got, total, err := db.FindFailures(ctx, FailureFilter{Sort: []SortKey{{Field: FieldID}}, Limit: 1000})
	if err != nil || total != 200 || !equalFailure(got[17], fs[17]) {
		t.Fatalf("restored failures: %d, %v", total, err)
	}
	if is, err := db.IssueByID(ctx, issue.ID); err != nil || is.Fingerprint != "fp-1" || string(is.LastContext) != `{"latency_ms":900}` {
		t.Fatalf("restored issue = %+v, %v", is, err)
	}
	if c, err := db.Cursor(ctx, acct.ID, CursorFollowers); err != nil || c.Cursor != "QVFEabc" || !c.StartedFromStart {
		t.Fatalf("restored cursor = %+v, %v", c, err)
	}
}

// Stop → restore cycles while a writer keeps writing: every restore holds
// at least everything committed before the last Sync, as a consistent
// prefix, and each cycle continues in the same replica.
func TestRestoreCyclesUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	dbPath := filepath.Join(root, "data", "conveyor.db")
	replica := mustFileURL(t, filepath.Join(root, "replica"))
	base := newClock().Now()
	var final int64
	for cycle := range 3 {
		if cycle > 0 {
			removeDB(t, dbPath)
			if err := Restore(ctx, replica, dbPath, nil); err != nil {
				t.Fatalf("cycle %d: restore: %v", cycle, err)
			}
		}
		db, err := Open(ctx, dbPath, Options{Logger: testlog.New(t)})
		if err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db); n != final {
			t.Fatalf("cycle %d starts with %d failures, want the %d written before the last stop", cycle, n, final)
		}
		opts := fastReplica(t)
		opts.MonitorInterval = 100 * time.Millisecond
		r, err := Replicate(ctx, dbPath, replica, opts)
		if err != nil {
			t.Fatal(err)
		}

		var committed, budget atomic.Int64
		committed.Store(final)
		progress := make(chan struct{}, 1)
		more := make(chan struct{}, 1) // the budget grew
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writeErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Paced like a busy application rather than a tight loop that
			// never lets litestream take its brief write lock, and bounded
			// by a budget of rows per round so that the database stays
			// small (under -race every SQLite call is many times slower).
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				for committed.Load() >= budget.Load() {
					select {
					case <-stop:
						return
					case <-more:
					}
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				batch := genFailures(3, uint64(cycle*1_000_000+i), base)
				if err := db.InsertFailures(ctx, batch); err != nil {
					writeErr = err
					return
				}
				committed.Store(batch[2].ID)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()

		for round := range 2 {
			// The writer may write 150 more rows; Sync and Restore run
			// after the first 60 while it writes the rest.
			budget.Store(committed.Load() + 150)
			select {
			case more <- struct{}{}:
			default:
			}
			for target := committed.Load() + 60; committed.Load() < target; {
				<-progress
			}
			synced := committed.Load()
			if err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			// Restore elsewhere while the writer and the replicator go on.
			out := filepath.Join(root, fmt.Sprintf("check-%d-%d", cycle, round), "conveyor.db")
			if err := Restore(ctx, replica, out, nil); err != nil {
				t.Fatalf("cycle %d round %d: restore: %v", cycle, round, err)
			}
			check, err := Open(ctx, out, Options{})
			if err != nil {
				t.Fatal(err)
			}
			n, maxID := countRows(t, check), maxFailureID(t, check)
			if n < synced || n != maxID {
				t.Fatalf("cycle %d round %d: restore holds %d failures (max id %d), want a prefix of at least %d", cycle, round, n, maxID, synced)
			}
			if err := check.IntegrityCheck(ctx); err != nil {
				t.Fatal(err)
			}
			check.Close()
		}
		close(stop)
		wg.Wait()
		if writeErr != nil {
			t.Fatal(writeErr)
		}
		final = committed.Load()
		if err := db.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func countRows(t testing.TB, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.r.QueryRowContext(t.Context(), `SELECT count(*) FROM failures`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func maxFailureID(t testing.TB, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.r.QueryRowContext(t.Context(), `SELECT coalesce(max(id), 0) FROM failures`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRestoreRefusals(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	empty := mustFileURL(t, filepath.Join(root, "empty-replica"))
	if err := Restore(ctx, empty, filepath.Join(root, "out.db"), nil); !errors.Is(err, ErrNoReplica) {
		t.Fatalf("restore from an empty replica = %v, want ErrNoReplica", err)
	}

	for _, leftover := range []string{"out.db", "out.db-wal", "out.db-shm", ".out.db-litestream"} {
		dir := filepath.Join(root, "case-"+strings.Trim(leftover, "."))
		if err := os.MkdirAll(filepath.Join(dir, leftover), 0o755); err != nil {
			t.Fatal(err)
		}
		err := Restore(ctx, empty, filepath.Join(dir, "out.db"), nil)
		var te *TargetExistsError
		if !errors.As(err, &te) || te.Path != filepath.Join(dir, leftover) || !errors.Is(err, fs.ErrExist) {
			t.Errorf("restore over %s = %v, want TargetExistsError", leftover, err)
		}
	}
}

func TestReplicaURLs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "x.db")
	// s3:// is linked (data/s3.go): the URL builds a client without touching
	// the network.
	c, err := replicaClient("s3://bucket/conveyor?region=eu-west-1&endpoint=127.0.0.1:1", slog.New(slog.DiscardHandler))
	if err != nil || c.Type() != "s3" {
		t.Errorf("s3 replica client = %v, %v", c, err)
	}
	for _, u := range []string{"gs://bucket/x", "sftp://host/x"} {
		_, err := Replicate(ctx, db, u, ReplicaOptions{})
		if !errors.Is(err, ErrUnsupportedReplica) || !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Replicate(%s) = %v, want ErrUnsupportedReplica", u, err)
		}
		if err := Restore(ctx, u, db, nil); !errors.Is(err, ErrUnsupportedReplica) {
			t.Errorf("Restore(%s) = %v", u, err)
		}
	}
	for _, u := range []string{"", "replica-dir", "file://relative/dir"} {
		if _, err := Replicate(ctx, db, u, ReplicaOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Replicate(%q) = %v, want an invalid-URL error", u, err)
		}
	}
	if _, err := Replicate(ctx, db, mustFileURL(t, t.TempDir()), ReplicaOptions{SyncInterval: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative interval accepted: %v", err)
	}
	if _, err := Replicate(ctx, db, mustFileURL(t, t.TempDir()), ReplicaOptions{CompactionIntervals: []time.Duration{0}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero compaction interval accepted: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"s3://key:secret@bucket/path?access-key=x": "s3://bucket/path",
		"file:///var/lib/a@b/replica":              "file:///var/lib/a@b/replica",
		"webdav://user@host/dir#frag":              "webdav://host/dir",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// AWS_CA_BUNDLE breaks litestream's s3 client; it is cleared for s3
// replicas only.
func TestCABundleClearedOnlyForS3(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", "/etc/ssl/bundle.pem")
	logger := testlog.New(t)
	if clearCABundle("file", logger) || os.Getenv("AWS_CA_BUNDLE") == "" {
		t.Fatal("cleared for a file replica")
	}
	// A file replica works with the variable set.
	root := t.TempDir()
	r, err := Replicate(t.Context(), filepath.Join(root, "x.db"), mustFileURL(t, filepath.Join(root, "rep")), fastReplica(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !clearCABundle("s3", logger) || os.Getenv("AWS_CA_BUNDLE") != "" {
		t.Fatal("not cleared for an s3 replica")
	}
}

func TestReplicaFiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	replica := mustFileURL(t, filepath.Join(root, "replica"))
	snap := bytes.Repeat([]byte("bbolt page "), 10_000)
	if err := PutReplicaFile(ctx, replica, "queue.db", bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if err := PutReplicaFile(ctx, replica, "queue.db", bytes.NewReader(snap[:100])); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := GetReplicaFile(ctx, replica, "queue.db", &got); err != nil || !bytes.Equal(got.Bytes(), snap[:100]) {
		t.Fatalf("get = %d bytes, %v", got.Len(), err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "replica", "snapshots"))
	if len(entries) != 1 {
		t.Fatalf("snapshots dir holds %d entries (temporary files left?)", len(entries))
	}
	if err := GetReplicaFile(ctx, replica, "other.db", &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing = %v", err)
	}
	for _, name := range []string{"", ".hidden", "../escape", "a/b", strings.Repeat("n", 201)} {
		if err := PutReplicaFile(ctx, replica, name, strings.NewReader("x")); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutReplicaFile(%q) = %v", name, err)
		}
	}
	if err := PutReplicaFile(ctx, "s3://bucket/x", "queue.db", strings.NewReader("x")); !errors.Is(err, ErrUnsupportedReplica) {
		t.Fatalf("s3 put = %v", err)
	}
	if err := GetReplicaFile(ctx, "s3://bucket/x", "queue.db", &got); !errors.Is(err, ErrUnsupportedReplica) {
		t.Fatalf("s3 get = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := PutReplicaFile(cancelled, replica, "queue.db", bytes.NewReader(snap)); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a cancelled context = %v", err)
	}
	got.Reset()
	if err := GetReplicaFile(ctx, replica, "queue.db", &got); err != nil || got.Len() != 100 {
		t.Fatalf("a cancelled put replaced the file: %d bytes, %v", got.Len(), err)
	}
}
