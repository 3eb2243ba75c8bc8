package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/benbjohnson/litestream"
)

// Restore restores the newest state of the replica at replicaURL into a new
// database at outPath, then runs PRAGMA integrity_check on it. It never
// overwrites: when outPath, its -wal or -shm file, or its litestream meta
// directory (.<name>-litestream beside it) exists it returns a
// *TargetExistsError. A replica without any backup gives ErrNoReplica.
// Progress lines go to progress (nil discards them).
//
// The result is an ordinary database: open it with Open and replicate it
// with Replicate; replication continues in the same replica.
func Restore(ctx context.Context, replicaURL, outPath string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	abs, err := filepath.Abs(outPath)
	if err != nil {
		return fmt.Errorf("data: resolve %s: %w", outPath, err)
	}
	dir, name := filepath.Split(abs)
	for _, p := range []string{abs, abs + "-wal", abs + "-shm", filepath.Join(dir, "."+name+litestream.MetaDirSuffix)} {
		if _, err := os.Lstat(p); err == nil {
			return &TargetExistsError{Path: p}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("data: restore: %w", err)
		}
	}
	logger := slog.New(slog.DiscardHandler)
	client, err := replicaClient(replicaURL, logger)
	if err != nil {
		return err
	}
	if err := client.Init(ctx); err != nil {
		return fmt.Errorf("data: restore from %s: %w", redactURL(replicaURL), err)
	}
	start := time.Now()
	plan, err := litestream.CalcRestorePlan(ctx, client, 0, time.Time{}, logger)
	if isNoBackup(err) {
		return fmt.Errorf("data: restore from %s: %w", redactURL(replicaURL), ErrNoReplica)
	}
	if err != nil {
		return fmt.Errorf("data: restore from %s: %w", redactURL(replicaURL), err)
	}
	fmt.Fprintf(progress, "restoring %s to %s: %d LTX files up to transaction %s\n",
		redactURL(replicaURL), abs, len(plan), plan[len(plan)-1].MaxTXID)

	r := litestream.NewReplicaWithClient(nil, client)
	opt := litestream.NewRestoreOptions()
	opt.OutputPath = abs
	if err := r.Restore(ctx, opt); err != nil {
		if isNoBackup(err) {
			return fmt.Errorf("data: restore from %s: %w", redactURL(replicaURL), ErrNoReplica)
		}
		return fmt.Errorf("data: restore from %s: %w", redactURL(replicaURL), err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("data: restore: %w", err)
	}
	fmt.Fprintf(progress, "restored %d bytes in %s; checking integrity\n", fi.Size(), time.Since(start).Round(time.Millisecond))
	if err := checkFileIntegrity(ctx, abs); err != nil {
		for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
			_ = os.Remove(p)
		}
		return fmt.Errorf("data: restored database %s failed its check and was removed: %w", abs, err)
	}
	fmt.Fprintf(progress, "integrity_check ok: %s is ready\n", abs)
	return nil
}

// checkFileIntegrity runs PRAGMA integrity_check on a database file that no
// one else has open.
func checkFileIntegrity(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	return nil
}
