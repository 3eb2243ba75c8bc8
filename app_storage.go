package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/queue"
	"conveyor/ui"
)

// Files and timings of the storage every feature uses.
const (
	// dbFile is the SQLite database in the data directory.
	dbFile = "conveyor.db"
	// replicaDir is the default file replica, in the data directory.
	replicaDir = "replica"
	// queueSnapshotName is the queue snapshot's name beside the replica.
	queueSnapshotName = "queue.bolt"
	// defaultQueueSnapshotInterval is how often the queue is snapshotted.
	defaultQueueSnapshotInterval = time.Minute
	// replicaStaleAfter: /readyz reports the replica as failing when it has
	// not caught up for this long.
	replicaStaleAfter = 5 * time.Minute
	// replicaSyncTimeout bounds the syncs at start and stop.
	replicaSyncTimeout = 30 * time.Second
)

// storagePart is the storage every feature uses: the SQLite database, its
// replication, and the queue snapshots written beside a file replica.
type storagePart struct {
	db    *data.DB
	repl  *data.Replicator
	snaps *queueSnapshots
}

// storageSettings say where the database and the queue are replicated:
// flags, then the environment, then the configuration file.
type storageSettings struct {
	// ReplicaURL is where the database and the queue snapshots are
	// replicated; "" when replication is off.
	ReplicaURL string
	// ReplicaFrom says where ReplicaURL came from, for messages.
	ReplicaFrom string
	// ReplicaKeys are s3 credentials read from a litestream.yml.
	ReplicaKeys struct{ ID, Secret string }
	// QueueSnapshotInterval is how often the queue is snapshotted into a
	// file replica; 0 turns the snapshots off.
	QueueSnapshotInterval time.Duration

	flagReplica, flagLitestream, flagSnapshots string
}

func (s *storageSettings) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.flagReplica, "replica", "", "where the database and queue snapshots are replicated: file:///abs/dir or "+
		"s3://bucket/prefix?region=…&endpoint=…, or off (env CONVEYOR_REPLICA_URL; default <data>/replica)")
	fs.StringVar(&s.flagLitestream, "litestream-config", "", "take the replica from this litestream.yml, the file a stock "+
		"`litestream restore -config` reads (env CONVEYOR_LITESTREAM_CONFIG)")
	fs.StringVar(&s.flagSnapshots, "queue-snapshot-interval", "", "how often the queue is snapshotted into a file replica "+
		"(env CONVEYOR_QUEUE_SNAPSHOT_INTERVAL; default 1m; 0 turns it off)")
}

// resolve picks the replica and the snapshot interval.
func (s *storageSettings) resolve(fc storageFile, getenv func(string) string, dataDir string) error {
	if err := s.resolveReplica(fc, getenv, dataDir); err != nil {
		return err
	}
	s.QueueSnapshotInterval = defaultQueueSnapshotInterval
	if fc.QueueSnapshotInterval != nil {
		s.QueueSnapshotInterval = time.Duration(*fc.QueueSnapshotInterval)
	}
	if v := first(s.flagSnapshots, getenv("CONVEYOR_QUEUE_SNAPSHOT_INTERVAL")); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return &usageError{"--queue-snapshot-interval: " + err.Error()}
		}
		s.QueueSnapshotInterval = d
	}
	return nil
}

// resolveReplica picks the replica: --replica (or its environment variable
// or file key), or the one a litestream.yml names, or <data>/replica.
func (s *storageSettings) resolveReplica(fc storageFile, getenv func(string) string, dataDir string) error {
	replica, replicaFrom := s.flagReplica, "--replica"
	if replica == "" {
		replica, replicaFrom = getenv("CONVEYOR_REPLICA_URL"), "CONVEYOR_REPLICA_URL"
	}
	if replica == "" {
		replica, replicaFrom = fc.Replica, "config replica"
	}
	lsPath, lsFrom := s.flagLitestream, "--litestream-config"
	if lsPath == "" {
		lsPath, lsFrom = getenv("CONVEYOR_LITESTREAM_CONFIG"), "CONVEYOR_LITESTREAM_CONFIG"
	}
	if lsPath == "" {
		lsPath, lsFrom = fc.LitestreamConfig, "config litestream_config"
	}
	dbPath, err := filepath.Abs(filepath.Join(dataDir, dbFile))
	if err != nil {
		return err
	}
	switch {
	case replica != "" && lsPath != "":
		return &usageError{fmt.Sprintf("%s and %s both name a replica: give one", replicaFrom, lsFrom)}
	case lsPath != "":
		lc, err := data.LoadLitestreamConfig(lsPath)
		if err != nil {
			return fmt.Errorf("%s: %w", lsFrom, err)
		}
		if lc.DBPath != dbPath {
			return fmt.Errorf("%s: %s replicates %s, but conveyor's database is %s: set --data to %s, or change dbs[0].path",
				lsFrom, lsPath, lc.DBPath, dbPath, filepath.Dir(lc.DBPath))
		}
		s.ReplicaURL, s.ReplicaFrom = lc.ReplicaURL, lsPath
		s.ReplicaKeys.ID, s.ReplicaKeys.Secret = lc.AccessKeyID, lc.SecretAccessKey
	case replica == "off":
		s.ReplicaURL, s.ReplicaFrom = "", replicaFrom
	case replica != "":
		if err := data.CheckReplicaURL(replica); err != nil {
			return fmt.Errorf("%s: %w", replicaFrom, err)
		}
		s.ReplicaURL, s.ReplicaFrom = replica, replicaFrom
	default:
		u, err := data.FileReplicaURL(filepath.Join(dataDir, replicaDir))
		if err != nil {
			return fmt.Errorf("the default replica beside the data directory: %w (set --replica)", err)
		}
		s.ReplicaURL, s.ReplicaFrom = u, "default"
	}
	return nil
}

// openStorage opens the SQLite database (first: every feature uses it),
// starts replicating it, and prepares the queue snapshots (started by
// start).
func (a *app) openStorage(ctx context.Context) error {
	log := a.log.With("part", "storage")
	dbPath := filepath.Join(a.st.DataDir, dbFile)
	db, err := data.Open(ctx, dbPath, data.Options{Logger: a.log.With("part", "data")})
	if err != nil {
		return err
	}
	f := &a.storage
	f.db = db
	// One part: the database closes first, then the replica catches up and
	// stops (see closeStorage).
	a.opened.Push(lifecycle.Hooks{Name: "database and replica", OnStop: a.closeStorage})
	st := a.st.Storage
	if st.ReplicaURL != "" {
		exportReplicaKeys(st.ReplicaKeys.ID, st.ReplicaKeys.Secret, log)
		f.repl, err = data.Replicate(ctx, dbPath, st.ReplicaURL, data.ReplicaOptions{Logger: quieter(a.log, a.st.LogLevel).With("part", "litestream")})
		if err != nil {
			return fmt.Errorf("replication (%s): %w", st.ReplicaFrom, err)
		}
		// A first sync now: litestream takes its first snapshot on its own
		// only at its first monitor tick, and a process stopped before it
		// would leave an empty replica.
		sctx, cancel := context.WithTimeout(ctx, replicaSyncTimeout)
		if err := f.repl.Sync(sctx); err != nil {
			log.Warn("the first sync to the replica failed; litestream keeps trying", "error", err)
		}
		cancel()
		log.Info("replicating the database", "replica", data.RedactReplicaURL(st.ReplicaURL))
	} else {
		log.Warn("replication is off: the database and the queue have no backup")
	}
	if st.ReplicaURL != "" && st.QueueSnapshotInterval > 0 {
		if data.ReplicaSnapshotDir(st.ReplicaURL) == "" {
			log.Warn("the queue is not snapshotted: only file:// replicas hold queue snapshots",
				"replica", data.RedactReplicaURL(st.ReplicaURL))
		} else {
			f.snaps = newQueueSnapshots(a.store, st.ReplicaURL, st.QueueSnapshotInterval, log)
		}
	}
	a.ready = append(a.ready, a.storageChecks)
	return nil
}

// exportReplicaKeys makes the s3 credentials of a litestream.yml visible to
// litestream's s3 client, which reads them from the environment; like the
// litestream CLI, the file's keys win.
func exportReplicaKeys(id, secret string, log *slog.Logger) {
	if id == "" && secret == "" {
		return
	}
	if id != "" {
		os.Setenv("AWS_ACCESS_KEY_ID", id)
	}
	if secret != "" {
		os.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	}
	log.Info("using the s3 credentials of the litestream config")
}

// storageUI hands POST /api/v1/backup its part when there is a replica.
func (a *app) storageUI(cfg *ui.Config) {
	if a.storage.repl != nil {
		cfg.Backup = a.backupNow
	}
}

// backupNow brings the replica up to date with every write made so far and
// writes a queue snapshot beside it (POST /api/v1/backup).
func (a *app) backupNow(ctx context.Context) (ui.BackupReport, error) {
	f := &a.storage
	var rep ui.BackupReport
	if err := f.repl.Sync(ctx); err != nil {
		return rep, err
	}
	rep.ReplicaSyncedAt = time.Now().UTC()
	if f.snaps != nil {
		if err := f.snaps.snapshot(ctx); err != nil {
			return rep, err
		}
		f.snaps.mu.Lock()
		at, size := f.snaps.last.UTC(), f.snaps.size
		f.snaps.mu.Unlock()
		rep.QueueSnapshotAt, rep.QueueSnapshotBytes = &at, size
	}
	return rep, nil
}

// storageChecks are the storage's /readyz checks: the replica keeps up,
// and the queue snapshots are written.
func (a *app) storageChecks(ctx context.Context) []ui.Check {
	f := &a.storage
	var out []ui.Check
	if f.repl == nil {
		out = append(out, ui.Check{Name: "replica", OK: true, Detail: "replication is off"})
	} else {
		last := f.repl.LastSync()
		c := ui.Check{Name: "replica", OK: !last.IsZero() && time.Since(last) < replicaStaleAfter}
		switch {
		case last.IsZero():
			c.Detail = "not synced yet to " + data.RedactReplicaURL(a.st.Storage.ReplicaURL)
			c.OK = true // the first sync follows start-up within seconds
		default:
			c.Detail = fmt.Sprintf("last sync at %s to %s", last.UTC().Format(time.RFC3339Nano), data.RedactReplicaURL(a.st.Storage.ReplicaURL))
		}
		out = append(out, c)
	}
	if f.snaps != nil {
		out = append(out, f.snaps.check())
	}
	return out
}

// closeStorage closes the database, then brings the replica up to date and
// stops replicating. It runs after every part that writes to the database
// (the failure writer and capture among them) has closed.
func (a *app) closeStorage(ctx context.Context) error {
	f := &a.storage
	var errs []error
	if f.db != nil {
		errs = append(errs, f.db.Close())
		f.db = nil
	}
	if f.repl != nil {
		// Sync first: Close uploads only when litestream has initialised,
		// which a short run may not have done.
		sctx, cancel := context.WithTimeout(ctx, replicaSyncTimeout)
		errs = append(errs, f.repl.Sync(sctx))
		cancel()
		errs = append(errs, f.repl.Close(ctx))
		f.repl = nil
	}
	return errors.Join(errs...)
}

// queueSnapshots writes consistent hot snapshots of the queue (bbolt's copy
// under a read transaction) beside a file replica, every interval when the
// queue changed, and once more when stopped.
type queueSnapshots struct {
	store    *queue.Store
	url      string
	interval time.Duration
	log      *slog.Logger
	sub      *queue.Subscription
	loop     lifecycle.Loop

	snapMu sync.Mutex // serialises snapshots

	mu      sync.Mutex
	last    time.Time // of the last snapshot written
	lastErr error
	size    int64
}

func newQueueSnapshots(store *queue.Store, url string, interval time.Duration, log *slog.Logger) *queueSnapshots {
	return &queueSnapshots{store: store, url: url, interval: interval, log: log}
}

// Start writes a first snapshot and then one per interval in which the
// queue changed, until Stop (or ctx ends, which abandons a snapshot in
// flight).
func (q *queueSnapshots) Start(ctx context.Context) error {
	q.sub = q.store.Subscribe()
	q.loop.Go(ctx, q.run)
	return nil
}

// run is the snapshot loop; Stop cancels ctx, abandoning a snapshot in
// flight.
func (q *queueSnapshots) run(ctx context.Context) {
	dirty := true
	tick := time.NewTicker(q.interval)
	defer tick.Stop()
	for {
		if dirty {
			if q.snapshot(ctx) == nil {
				dirty = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-q.sub.C:
			if !ok {
				return
			}
			// Note the change; the snapshot waits for the next tick.
			dirty = true
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		case <-tick.C:
		}
	}
}

// snapshot writes one snapshot; one at a time (the loop and POST
// /api/v1/backup may ask together).
func (q *queueSnapshots) snapshot(ctx context.Context) error {
	q.snapMu.Lock()
	defer q.snapMu.Unlock()
	start := time.Now()
	pr, pw := io.Pipe()
	var n int64
	var backupErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, backupErr = q.store.Backup(ctx, pw)
		pw.CloseWithError(backupErr)
	}()
	err := data.PutReplicaFile(ctx, q.url, queueSnapshotName, pr)
	pr.CloseWithError(errors.New("snapshot abandoned"))
	<-done
	err = errors.Join(err, backupErr)
	q.mu.Lock()
	q.lastErr = err
	if err == nil {
		q.last, q.size = time.Now(), n
	}
	q.mu.Unlock()
	if err != nil {
		q.log.Warn("queue snapshot failed", "error", err)
		return err
	}
	q.log.Debug("queue snapshot written", "bytes", n, "took", time.Since(start))
	return nil
}

// Stop ends the loop and, when it ran, writes a last snapshot.
func (q *queueSnapshots) Stop(ctx context.Context) error {
	if q.sub == nil {
		return nil
	}
	err := q.loop.Stop(ctx)
	q.sub.Close()
	return errors.Join(err, q.snapshot(ctx))
}

func (q *queueSnapshots) check() ui.Check {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := ui.Check{Name: "queue_snapshot", OK: q.lastErr == nil}
	switch {
	case q.lastErr != nil:
		c.Detail = "the last queue snapshot failed: " + q.lastErr.Error()
	case q.last.IsZero():
		c.Detail = "no queue snapshot yet"
	default:
		c.Detail = fmt.Sprintf("last queue snapshot at %s (%d bytes) in %s", q.last.UTC().Format(time.RFC3339Nano), q.size,
			strings.TrimSuffix(data.ReplicaSnapshotDir(q.url), string(os.PathSeparator)))
	}
	return c
}
