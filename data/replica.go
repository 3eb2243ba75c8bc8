package data

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	"github.com/benbjohnson/litestream/file" // registers file:// replica URLs
)

// ReplicaOptions tunes the embedded litestream replicator. Zero fields take
// litestream's defaults (those of a stock `litestream replicate`); tests
// shorten the intervals.
type ReplicaOptions struct {
	// MonitorInterval is how often the WAL is copied into LTX files (1s).
	MonitorInterval time.Duration
	// SyncInterval is how often new LTX files are uploaded to the replica (1s).
	SyncInterval time.Duration
	// CheckpointInterval is the time between passive checkpoints (1m).
	CheckpointInterval time.Duration
	// MinCheckpointPageN is the WAL size, in pages, that triggers a passive
	// checkpoint (1000).
	MinCheckpointPageN int
	// TruncatePageN is the WAL size, in pages, that forces a blocking
	// TRUNCATE checkpoint (about 500 MB of 4 KiB pages). Lower it when disk
	// use matters more than write latency.
	TruncatePageN int
	// CompactionIntervals are the intervals of compaction levels 1, 2, …
	// ({30s, 5m, 1h}).
	CompactionIntervals []time.Duration
	// SnapshotInterval is how often a full snapshot is written (24h), and
	// SnapshotRetention how long snapshots are kept (24h).
	SnapshotInterval  time.Duration
	SnapshotRetention time.Duration
	// ShutdownSyncTimeout bounds the retries of the final upload in Close
	// (30s); Close's context bounds it too.
	ShutdownSyncTimeout time.Duration
	// Logger receives litestream's messages (discarded when nil).
	Logger *slog.Logger
}

func (o ReplicaOptions) validate() error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"MonitorInterval", o.MonitorInterval}, {"SyncInterval", o.SyncInterval},
		{"CheckpointInterval", o.CheckpointInterval}, {"SnapshotInterval", o.SnapshotInterval},
		{"SnapshotRetention", o.SnapshotRetention}, {"ShutdownSyncTimeout", o.ShutdownSyncTimeout},
	} {
		if f.v < 0 {
			return &FieldError{Field: "ReplicaOptions." + f.name, Reason: "must not be negative"}
		}
	}
	if o.MinCheckpointPageN < 0 {
		return &FieldError{Field: "ReplicaOptions.MinCheckpointPageN", Reason: "must not be negative"}
	}
	if o.TruncatePageN < 0 {
		return &FieldError{Field: "ReplicaOptions.TruncatePageN", Reason: "must not be negative"}
	}
	if len(o.CompactionIntervals) > litestream.SnapshotLevel-1 {
		return &FieldError{Field: "ReplicaOptions.CompactionIntervals", Reason: fmt.Sprintf("at most %d levels", litestream.SnapshotLevel-1)}
	}
	for i, d := range o.CompactionIntervals {
		if d <= 0 {
			return &FieldError{Field: fmt.Sprintf("ReplicaOptions.CompactionIntervals[%d]", i), Reason: "must be positive"}
		}
	}
	return nil
}

// Replicator replicates one SQLite database with the embedded litestream.
//
// Shutdown order: close every application connection first ((*DB).Close),
// then the Replicator (Close), which uploads what is left. litestream must
// outlive the application's connections.
type Replicator struct {
	store     *litestream.Store
	db        *litestream.DB
	url       string
	closeOnce sync.Once
	closeErr  error
}

// Replicate starts replicating the database at dbPath to replicaURL
// (file:///abs/dir, or s3://bucket/prefix?… when the binary links the s3
// backend) in background goroutines, and returns once the replica client is
// initialised. The database may be opened (data.Open) before or after; it
// is picked up within MonitorInterval of existing. Never run a stock
// `litestream replicate` on the same database at the same time.
func Replicate(ctx context.Context, dbPath, replicaURL string, opts ReplicaOptions) (*Replicator, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, fmt.Errorf("data: resolve %s: %w", dbPath, err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, err := replicaClient(replicaURL, logger)
	if err != nil {
		return nil, err
	}

	lsdb := litestream.NewDB(abs)
	setIf(&lsdb.MonitorInterval, opts.MonitorInterval)
	setIf(&lsdb.CheckpointInterval, opts.CheckpointInterval)
	setIf(&lsdb.MinCheckpointPageN, opts.MinCheckpointPageN)
	setIf(&lsdb.TruncatePageN, opts.TruncatePageN)
	lsdb.BusyTimeout = DefaultBusyTimeout
	replica := litestream.NewReplicaWithClient(lsdb, client)
	setIf(&replica.SyncInterval, opts.SyncInterval)
	if fc, ok := client.(*file.ReplicaClient); ok {
		fc.Replica = replica // copies the database's owner and mode to replica files
	}
	lsdb.Replica = replica

	levels := litestream.CompactionLevels{{Level: 0}}
	intervals := opts.CompactionIntervals
	if len(intervals) == 0 {
		intervals = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}
	}
	for i, d := range intervals {
		levels = append(levels, &litestream.CompactionLevel{Level: i + 1, Interval: d})
	}
	store := litestream.NewStore([]*litestream.DB{lsdb}, levels)
	setIf(&store.SnapshotInterval, opts.SnapshotInterval)
	setIf(&store.SnapshotRetention, opts.SnapshotRetention)
	store.Logger = logger.With("system", "litestream")
	lsdb.SetLogger(store.Logger.With("db", filepath.Base(abs)))
	if opts.ShutdownSyncTimeout > 0 {
		store.ShutdownSyncTimeout = opts.ShutdownSyncTimeout
		lsdb.ShutdownSyncTimeout = opts.ShutdownSyncTimeout
	}

	if err := store.Open(ctx); err != nil {
		_ = store.Close(ctx)
		return nil, fmt.Errorf("data: replicate %s to %s: %w", abs, redactURL(replicaURL), err)
	}
	return &Replicator{store: store, db: lsdb, url: replicaURL}, nil
}

func setIf[T int | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// Sync blocks until everything committed to the database so far is in the
// replica: WAL to LTX files, then LTX files uploaded.
func (r *Replicator) Sync(ctx context.Context) error {
	if err := r.db.SyncAndWait(ctx); err != nil {
		return fmt.Errorf("data: sync replica %s: %w", redactURL(r.url), err)
	}
	return nil
}

// LastSync is when the replica last caught up (zero before the first time).
func (r *Replicator) LastSync() time.Time { return r.db.LastSuccessfulSyncAt() }

// Close uploads what is left and stops replicating. Close the application's
// connections first. Calling Close again returns the first result.
func (r *Replicator) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		if err := r.store.Close(ctx); err != nil {
			r.closeErr = fmt.Errorf("data: close replicator: %w", err)
		}
	})
	return r.closeErr
}

// replicaClient builds the litestream client for a replica URL. Only the
// file backend is linked into this package; other schemes work when the
// binary imports their litestream backend package (which registers it).
func replicaClient(replicaURL string, logger *slog.Logger) (litestream.ReplicaClient, error) {
	scheme, err := checkReplicaURL(replicaURL)
	if err != nil {
		return nil, err
	}
	client, err := litestream.NewReplicaClientFromURL(replicaURL)
	if err != nil {
		if strings.Contains(err.Error(), "unsupported replica URL scheme") {
			return nil, fmt.Errorf("%w: %q replicas (this binary links file:// and s3:// only)", ErrUnsupportedReplica, scheme)
		}
		return nil, fmt.Errorf("data: replica %s: %w", redactURL(replicaURL), err)
	}
	clearCABundle(client.Type(), logger)
	client.SetLogger(logger)
	return client, nil
}

// CheckReplicaURL reports whether Replicate and Restore understand every
// part of replicaURL, without touching the replica. A part litestream would
// ignore or misread is refused, naming it, rather than letting it name
// another replica: a fragment (litestream reads file:///r#f as the
// directory "/r#f"), a query or a user on a file URL, a query key the s3
// backend does not know.
func CheckReplicaURL(replicaURL string) error {
	_, err := checkReplicaURL(replicaURL)
	return err
}

// s3QueryKeys are the query keys litestream's s3 backend reads.
var s3QueryKeys = []string{
	"endpoint", "region", "forcePathStyle", "force-path-style", "skipVerify", "skip-verify",
	"signPayload", "sign-payload", "signAcceptEncoding", "sign-accept-encoding",
	"requireContentMD5", "require-content-md5", "putObjectContentMD5", "put-object-content-md5",
	"concurrency", "partSize", "part-size", "storageClass", "storage-class",
	"sseCustomerAlgorithm", "sse-customer-algorithm", "sseCustomerKey", "sse-customer-key",
	"sseCustomerKeyMD5", "sse-customer-key-md5", "sseKmsKeyId", "sse-kms-key-id",
}

// checkReplicaURL parses a replica URL and returns its scheme (see
// CheckReplicaURL). A file URL must be file:///abs/dir: litestream would
// read file://dir/x as /dir/x.
func checkReplicaURL(replicaURL string) (string, error) {
	bad := func(reason string) (string, error) {
		return "", &FieldError{Field: "replica URL", Reason: reason}
	}
	scheme, _, p, err := litestream.ParseReplicaURL(replicaURL)
	if err != nil {
		return bad(err.Error())
	}
	rest, fragment, hasFragment := strings.Cut(replicaURL, "#")
	_, rawQuery, hasQuery := strings.Cut(rest, "?")
	var parts []string // not understood
	if scheme == "file" && hasQuery {
		parts = append(parts, fmt.Sprintf("a query (?%s)", rawQuery))
	}
	if hasFragment {
		parts = append(parts, fmt.Sprintf("a fragment (#%s)", fragment))
	}
	if len(parts) > 0 {
		return bad(fmt.Sprintf("%s is not understood: a %s replica URL takes none (a directory whose name holds ? or # cannot be a replica)",
			strings.Join(parts, " and "), scheme))
	}
	switch scheme {
	case "file":
		u, err := url.Parse(replicaURL)
		switch {
		case err != nil || (u.Host != "" && u.Host != "localhost") || p == "" || !filepath.IsAbs(filepath.FromSlash(p)):
			return bad("a file replica needs an absolute path: file:///abs/dir")
		case u.User != nil:
			return bad("a file replica URL takes no user (file:///abs/dir)")
		}
	case "s3":
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return bad("the query does not parse: " + err.Error())
		}
		for k := range q {
			if !slices.Contains(s3QueryKeys, k) {
				return bad(fmt.Sprintf("unknown s3 query key %q (known: %s)", k, strings.Join(s3QueryKeys, ", ")))
			}
		}
	}
	return scheme, nil
}

// clearCABundle unsets AWS_CA_BUNDLE before an s3 client initialises:
// litestream hands the AWS SDK a plain *http.Client, and the SDK then fails
// with "unable to add custom RootCAs HTTPClient" whenever the variable is
// set. The variable is process-wide, so this is logged. Other replica types
// ignore it.
func clearCABundle(replicaType string, logger *slog.Logger) bool {
	if replicaType != "s3" || os.Getenv("AWS_CA_BUNDLE") == "" {
		return false
	}
	logger.Warn("unsetting AWS_CA_BUNDLE: litestream's s3 client cannot use a custom CA bundle", "replica", replicaType)
	_ = os.Unsetenv("AWS_CA_BUNDLE")
	return true
}

// redactURL drops credentials and the query (which may carry keys) from a
// replica URL for messages.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "://"); i >= 0 {
		host := s[i+3:]
		if j := strings.IndexByte(host, '/'); j >= 0 {
			host = host[:j]
		}
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			s = s[:i+3] + s[i+3+at+1:]
		}
	}
	return s
}

// isNoBackup reports whether err is litestream's "nothing to restore".
func isNoBackup(err error) bool {
	return errors.Is(err, litestream.ErrTxNotAvailable) || errors.Is(err, litestream.ErrNoSnapshots)
}
