package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"conveyor/data"
)

// cmdRestore rebuilds a data directory from its replica: the SQLite database
// (litestream) and the queue (its latest snapshot). It never overwrites: a
// directory that already holds a database or a queue is refused.
func cmdRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataFlag := fs.String("data", "", "data directory to rebuild (env CONVEYOR_DATA, default ./var); it must not hold a database or a queue")
	replicaFlag := fs.String("replica", "", "replica to restore from: file:///abs/dir or s3://bucket/prefix?… (env CONVEYOR_REPLICA_URL; default <data>/replica)")
	lsFlag := fs.String("litestream-config", "", "take the replica from this litestream.yml (env CONVEYOR_LITESTREAM_CONFIG)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor restore [--data DIR] [--replica URL | --litestream-config FILE]\n\n"+
			"Rebuilds DIR's database from the replica and its queue from the latest queue snapshot.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("restore takes no arguments (got %q)", fs.Args())}
	}
	dir := first(*dataFlag, getenv("CONVEYOR_DATA"), defaultDataDir)
	replica := first(*replicaFlag, getenv("CONVEYOR_REPLICA_URL"))
	lsPath := first(*lsFlag, getenv("CONVEYOR_LITESTREAM_CONFIG"))
	switch {
	case replica == "off":
		return &usageError{"restore needs a replica: --replica off names none"}
	case replica != "" && lsPath != "":
		return &usageError{"--replica and --litestream-config both name a replica: give one"}
	case lsPath != "":
		lc, err := data.LoadLitestreamConfig(lsPath)
		if err != nil {
			return err
		}
		replica = lc.ReplicaURL
		exportReplicaKeys(lc.AccessKeyID, lc.SecretAccessKey, newLogger("text", 0, io.Discard))
	case replica == "":
		u, err := data.FileReplicaURL(filepath.Join(dir, replicaDir))
		if err != nil {
			return err
		}
		replica = u
	}
	return restore(ctx, dir, replica, stdout)
}

// restoreTargetError is returned when the data directory already holds what
// a restore would write.
type restoreTargetError struct{ dir, path string }

func (e *restoreTargetError) Error() string {
	return fmt.Sprintf("refusing to restore into %s: it already holds %s. Restore never overwrites: move the data "+
		"directory aside (or delete what is in the way) and run restore again, or restore into a new directory "+
		"with --data", e.dir, filepath.Base(e.path))
}

func (e *restoreTargetError) Unwrap() error { return os.ErrExist }

// restore rebuilds dir from replica, writing progress to out. The queue
// snapshot is fetched and checked first, the database restored next, and
// the queue moved into place last. A failed restore leaves nothing behind:
// the files it wrote are removed, and so are the directories it created.
func restore(ctx context.Context, dir, replica string, out io.Writer) (err error) {
	start := time.Now()
	dbPath := filepath.Join(dir, dbFile)
	qPath := filepath.Join(dir, queueFile)
	if err := data.CheckReplicaURL(replica); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Every path restore may write; none may exist yet.
	ours := []string{dbPath, dbPath + "-wal", dbPath + "-shm", filepath.Join(dir, "."+dbFile+"-litestream"), qPath}
	for _, p := range ours {
		if _, err := os.Lstat(p); err == nil {
			return &restoreTargetError{dir: dir, path: p}
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	created, err := mkdirAllCreated(dir)
	defer func() {
		if err == nil {
			return
		}
		for _, p := range ours {
			os.RemoveAll(p)
		}
		for i := len(created) - 1; i >= 0; i-- {
			os.Remove(created[i]) // only when empty: what others put there stays
		}
	}()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(out, "restoring %s from %s\n", dir, data.RedactReplicaURL(replica))

	// The queue snapshot, into a temporary file, checked.
	tmp := qPath + ".restoring"
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	haveQueue, err := fetchQueueSnapshot(ctx, replica, tmp, out)
	if err != nil {
		return err
	}

	// The database, with its integrity check.
	if err := data.Restore(ctx, replica, dbPath, out); err != nil {
		if errors.Is(err, data.ErrNoReplica) {
			return fmt.Errorf("the replica %s holds no backup of the database: nothing was restored", data.RedactReplicaURL(replica))
		}
		return err
	}
	db, err := data.Open(ctx, dbPath, data.Options{ReadConns: 1})
	if err != nil {
		return fmt.Errorf("restored database: %w", err)
	}
	failures, exact, ferr := db.CountFailures(ctx, data.FailureFilter{})
	_, issues, ierr := db.FindIssues(ctx, data.IssueFilter{Status: data.IssueOpen, Limit: 1})
	if err := errors.Join(ferr, ierr, db.Close()); err != nil {
		return fmt.Errorf("restored database: %w", err)
	}
	more := ""
	if !exact {
		more = " or more"
	}
	fmt.Fprintf(out, "database: %d failures%s, %d open issues\n", failures, more, issues)

	if haveQueue {
		if err := os.Rename(tmp, qPath); err != nil {
			return fmt.Errorf("restore the queue: %w", err)
		}
		if err := data.SyncDir(dir); err != nil {
			return fmt.Errorf("restore the queue: %w", err)
		}
		fmt.Fprintf(out, "queue: restored to %s\n", qPath)
	}
	fmt.Fprintf(out, "restore finished in %s: start conveyor serve --data %s with the same replica to go on replicating into it\n",
		time.Since(start).Round(time.Millisecond), dir)
	return nil
}

// mkdirAllCreated is os.MkdirAll(dir, 0o700) that returns the directories
// it created, outermost first (also when it fails part way).
func mkdirAllCreated(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var missing []string
	for p := abs; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil {
			return created, err
		}
		created = append(created, missing[i])
	}
	return created, nil
}

// fetchQueueSnapshot copies the queue snapshot beside the replica to path
// and checks it (bbolt's consistency check, read-only). It reports false,
// and says so, when the replica holds none.
func fetchQueueSnapshot(ctx context.Context, replica, path string, out io.Writer) (bool, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false, fmt.Errorf("restore the queue: %w", err)
	}
	err = data.GetReplicaFile(ctx, replica, queueSnapshotName, f)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	switch {
	case errors.Is(err, data.ErrNotFound):
		fmt.Fprintln(out, "queue: the replica holds no queue snapshot; the queue starts empty")
		return false, nil
	case errors.Is(err, data.ErrUnsupportedReplica):
		fmt.Fprintln(out, "queue: this replica holds no queue snapshots (only file:// replicas do); the queue starts empty")
		return false, nil
	case err != nil:
		return false, fmt.Errorf("restore the queue: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	snapAt := ""
	if dir := data.ReplicaSnapshotDir(replica); dir != "" {
		if si, err := os.Stat(filepath.Join(dir, queueSnapshotName)); err == nil {
			snapAt = " taken at " + si.ModTime().UTC().Format(time.RFC3339)
		}
	}
	fmt.Fprintf(out, "queue: fetched the snapshot%s (%d bytes); checking it\n", snapAt, fi.Size())
	if err := checkBolt(path); err != nil {
		return false, fmt.Errorf("the queue snapshot in the replica is damaged (%w): nothing was restored", err)
	}
	return true, nil
}

// checkBolt runs bbolt's consistency check on a file no one else has open.
func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() { // drained to the end: the check reads the tx's pages
			if len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
}
