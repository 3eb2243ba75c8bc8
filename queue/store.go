package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults for Options.
const (
	DefaultMaxArgsBytes       = 1 << 20
	DefaultMaxAttempts        = 25
	DefaultDoneRetention      = 24 * time.Hour
	DefaultDoneLimit          = 100_000
	DefaultDeadRetention      = 180 * 24 * time.Hour
	DefaultDeadLimit          = 10_000
	DefaultStatsRetention     = 48 * time.Hour
	DefaultMaxOrphans         = 3
	DefaultClaimBatch         = 1024
	DefaultLockTimeout        = time.Second
	DefaultJanitorInterval    = time.Minute
	DefaultCompactAt          = 64 << 20
	defaultFinishBatch        = 16384
	defaultPromoteBatch       = 4096
	defaultTrimBatch          = 10_000
	DefaultInitialMmapSize    = 1 << 30
	maxQueueNameLen           = 64
	maxClassNameLen           = 200
	maxUniqueKeyLen           = 512
	maxContextEntries         = 32
	maxContextValueLen        = 1024
	maxBacktraceLen           = 16 << 10
	maxErrorMessageLen        = 8 << 10
	maxEnqueueBatch           = 100_000
	defaultSubscriberOpsLimit = 64
)

// Options configure a Store. The zero value is usable: every field has a default.
type Options struct {
	// MaxArgsBytes limits the size of a job's JSON args (default 1 MiB).
	MaxArgsBytes int
	// DefaultMaxAttempts is used when an enqueue does not say (default 25).
	DefaultMaxAttempts int
	// Done jobs are kept for DoneRetention or the newest DoneLimit, whichever is
	// fewer (defaults 24 h and 100,000); dead jobs likewise (180 days, 10,000).
	DoneRetention time.Duration
	DoneLimit     int
	DeadRetention time.Duration
	DeadLimit     int
	// StatsRetention is how long per-minute processed/failed counters are kept
	// (default 48 h).
	StatsRetention time.Duration
	// MaxOrphans is how many times a crash may interrupt a job before it goes to
	// dead (default 3).
	MaxOrphans int
	// ClaimBatch caps the jobs claimed for one consumer in one transaction.
	ClaimBatch int
	// LockTimeout is how long Open waits for the file lock (default 1 s).
	LockTimeout time.Duration
	// JanitorInterval is how often the writer looks for jobs that aged out
	// while nothing committed (default 1 min); commits trim as they go.
	JanitorInterval time.Duration
	// InitialMmapSize is the address space the file is mapped with at first
	// (default 1 GiB; address space, not memory). While the file fits, a
	// commit never has to remap it, which would wait for every open read
	// transaction (a long List, a snapshot's compaction).
	InitialMmapSize int
	// CompactAt: at Open, a file of at least this size whose live data is
	// under half of it is compacted first (default 64 MiB; negative: never).
	CompactAt int64
	// NoSync turns off fsync. Unsafe: for tests and bulk loads only.
	NoSync bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the store's logs (default: discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.MaxArgsBytes = cmp.Or(o.MaxArgsBytes, DefaultMaxArgsBytes)
	o.DefaultMaxAttempts = cmp.Or(o.DefaultMaxAttempts, DefaultMaxAttempts)
	o.DoneRetention = cmp.Or(o.DoneRetention, DefaultDoneRetention)
	o.DoneLimit = cmp.Or(o.DoneLimit, DefaultDoneLimit)
	o.DeadRetention = cmp.Or(o.DeadRetention, DefaultDeadRetention)
	o.DeadLimit = cmp.Or(o.DeadLimit, DefaultDeadLimit)
	o.StatsRetention = cmp.Or(o.StatsRetention, DefaultStatsRetention)
	o.MaxOrphans = cmp.Or(o.MaxOrphans, DefaultMaxOrphans)
	o.ClaimBatch = cmp.Or(o.ClaimBatch, DefaultClaimBatch)
	o.LockTimeout = cmp.Or(o.LockTimeout, DefaultLockTimeout)
	o.JanitorInterval = cmp.Or(o.JanitorInterval, DefaultJanitorInterval)
	o.InitialMmapSize = cmp.Or(o.InitialMmapSize, DefaultInitialMmapSize)
	o.CompactAt = cmp.Or(o.CompactAt, DefaultCompactAt)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxArgsBytes", int64(o.MaxArgsBytes)},
		{"DefaultMaxAttempts", int64(o.DefaultMaxAttempts)},
		{"DoneRetention", int64(o.DoneRetention)},
		{"DoneLimit", int64(o.DoneLimit)},
		{"DeadRetention", int64(o.DeadRetention)},
		{"DeadLimit", int64(o.DeadLimit)},
		{"StatsRetention", int64(o.StatsRetention)},
		{"MaxOrphans", int64(o.MaxOrphans)},
		{"ClaimBatch", int64(o.ClaimBatch)},
		{"LockTimeout", int64(o.LockTimeout)},
		{"JanitorInterval", int64(o.JanitorInterval)},
	} {
		if f.v < 0 {
			return fmt.Errorf("queue: Options.%s must not be negative (got %d)", f.name, f.v)
		}
	}
	return nil
}

// Errors returned by the store.
var (
	// ErrNotFound is returned when no job has the given id.
	ErrNotFound = errors.New("queue: job not found")
	// ErrClosed is returned by calls made after Close began.
	ErrClosed = errors.New("queue: store closed")
	// ErrRunning is returned when an operation needs a job that is not running
	// (discard, retry now) and the job is running.
	ErrRunning = errors.New("queue: job is running")
	// ErrWrongState is returned by RetryNow for a job that is ready or done
	// (a running job gets ErrRunning).
	ErrWrongState = errors.New("queue: job is not in a state that allows this")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("queue: the queue file is in use by another process")
)

// ValidationError is returned by Enqueue when a job is malformed. Field names the
// offending field as the HTTP API spells it.
type ValidationError struct {
	Index  int // position in the batch
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("queue: invalid job: %s: %s", e.Field, e.Reason)
}

// queueState is the in-memory mirror of one queue's counters, kept in step with
// the database by the writer after every commit.
type queueState struct {
	name      string
	id        uint16
	paused    bool
	counts    [numStates]int64
	headSince int64 // when the next ready job became ready (0: none ready)
}

// Store is the durable job store. It is safe for concurrent use. One writer
// goroutine performs every write; see writer.go.
type Store struct {
	db   *bolt.DB
	jn   *journal
	opts Options
	log  *slog.Logger
	now  func() time.Time
	path string

	// mu guards the in-memory mirror below (written by the writer only).
	mu      sync.RWMutex
	queues  map[string]*queueState
	qByID   map[uint16]*queueState
	nextDue time.Time

	// pmu guards what producers hand to the writer.
	pmu     sync.Mutex
	pend    pending
	closing bool
	wake    chan struct{}

	trimDue    bool          // retention work is due (writer only; see maintain)
	enqCallers int           // enqueue calls a commit can expect (writer only; see linger)
	lastCommit time.Duration // how long the last main transaction took (writer only)
	wstats     writerStats

	// consumers are read and written by the writer; cmu guards registration.
	cmu       sync.Mutex
	consumers []*Consumer

	subs   subscribers
	health health

	stop      chan struct{}
	writerEnd chan struct{}
	janEnd    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store at path, rescues jobs left running by
// a previous process, and starts the writer. The caller must Close it.
func Open(path string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if failpointNoSync() {
		opts.NoSync = true
		opts.Logger.Warn("the queue file is opened without fsync (a test build told so)", "env", EnvFailpointNoSync)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, err
	}
	if db, err = compactSparse(db, path, opts); err != nil {
		return nil, err
	}
	jn, crashed, err := openJournal(path + ".running")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	s := &Store{
		db:        db,
		jn:        jn,
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		path:      path,
		queues:    map[string]*queueState{},
		qByID:     map[uint16]*queueState{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		writerEnd: make(chan struct{}),
		janEnd:    make(chan struct{}),
	}
	if err := s.init(crashed); err != nil {
		jn.close(false)
		db.Close()
		return nil, err
	}
	go s.writer()
	go s.janitor()
	return s, nil
}

// ErrDamaged is returned by Open for a queue file that is not whole: bbolt
// cannot open it, its structure does not check, or a record does not decode.
// The file is left as it was.
var ErrDamaged = errors.New("queue: the queue file is damaged")

// openBolt opens the file for the store. An existing file is first checked
// whole, opened read-only (verifyFile): a damaged file stops the start with
// ErrDamaged, naming the file and the way back, and is not touched.
func openBolt(path string, opts Options) (*bolt.DB, error) {
	if _, err := os.Stat(path); err == nil {
		if err := verifyFile(path, opts); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  true,
		InitialMmapSize: opts.InitialMmapSize,
		NoSync:          opts.NoSync,
	})
	if err != nil {
		if isTimeout(err) {
			return nil, fmt.Errorf("%w: %s (is another conveyor running on this data directory?)", ErrLocked, path)
		}
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	return db, nil
}

func damaged(path string, cause error) error {
	return fmt.Errorf("%w: %s: %v. It was left as it is; restore the data directory from its replica with `conveyor restore` (see `conveyor restore --help`)",
		ErrDamaged, path, cause)
}

// verifyFile opens an existing file read-only and walks all of it in this
// goroutine: every bucket and key (so every page in use: bbolt asserts each
// page's type as it goes), and every job record decoded. bbolt's own checks
// run in goroutines of their own, where a damaged page's panic would kill the
// process; here a panic, or a fault on a mapping past a truncated file's end,
// is caught and reported. It costs a read of the file at each start.
func verifyFile(path string, opts Options) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = damaged(path, fmt.Errorf("%v", r))
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout})
	if err != nil {
		if isTimeout(err) {
			return fmt.Errorf("%w: %s (is another conveyor running on this data directory?)", ErrLocked, path)
		}
		return damaged(path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("the file ends at %d bytes, its pages at %d (truncated?)", fi.Size(), tx.Size())
		}
		if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walkBucket(b) }); err != nil {
			return err
		}
		jobs, dead := tx.Bucket(bucketJobs), tx.Bucket(bucketDead)
		if jobs == nil {
			return nil // a file this store never wrote: init makes the buckets
		}
		return jobs.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("a job key of %d bytes", len(k))
			}
			if _, err := decodeRecord(getU64(k), v); err != nil && (dead == nil || dead.Get(k) == nil) {
				// (A record found unreadable before was quarantined in dead:
				// known, kept for inspection.)
				return fmt.Errorf("job %d: %w", getU64(k), err)
			}
			return nil
		})
	})
	if err != nil {
		return damaged(path, err)
	}
	return nil
}

// walkBucket visits every key of b and of the buckets nested in it.
func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			nb := b.Bucket(k)
			if nb == nil {
				return fmt.Errorf("key %x is neither a value nor a bucket", k)
			}
			return walkBucket(nb)
		}
		return nil
	})
}

// compactSparse compacts the file at start-up when it is at least CompactAt
// bytes and its live data is under half of it (bbolt never shrinks a file: a
// burst's peak stays allocated): a compacted copy replaces it, atomically.
func compactSparse(db *bolt.DB, path string, opts Options) (*bolt.DB, error) {
	fi, err := os.Stat(path)
	if err != nil || opts.CompactAt < 0 || fi.Size() < opts.CompactAt {
		return db, nil
	}
	var size int64
	db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	live := size - int64(db.Stats().FreeAlloc)
	if live*2 >= fi.Size() {
		return db, nil
	}
	start := time.Now()
	tmp := path + ".compact"
	if err := compactFile(db, tmp); err != nil {
		os.Remove(tmp)
		opts.Logger.Warn("compacting the queue file failed; going on with it as it is", "file", path, "err", err)
		return db, nil
	}
	if err := db.Close(); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("queue: compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("queue: compact %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	after, _ := os.Stat(path)
	opts.Logger.Info("compacted the queue file", "file", path, "bytes_before", fi.Size(), "bytes_after", after.Size(),
		"took", time.Since(start))
	return openBolt(path, opts)
}

// init creates the buckets, checks the format, loads the counters and rescues
// orphans: the process holds the file lock, so every running job is an orphan.
// crashed are the jobs the running journal says were running when the previous
// process died.
func (s *Store) init(crashed []uint64) error {
	crashedSet := make(map[uint64]bool, len(crashed))
	for _, id := range crashed {
		crashedSet[id] = true
	}
	var rescued, struck, killed int
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketJobs, bucketQueues, bucketReady, bucketRunning,
			bucketScheduled, bucketRetry, bucketDone, bucketDead, bucketDoneAt, bucketDeadAt, bucketUnique, bucketUniqueExp,
			bucketCounts, bucketStats} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if f := meta.Get(keyFormat); f == nil {
			if err := meta.Put(keyFormat, []byte{storeFormat}); err != nil {
				return err
			}
		} else if len(f) != 1 || f[0] == 0 || f[0] > storeFormat {
			return fmt.Errorf("queue: %s has store format %v; this conveyor reads formats 1 to %d (a newer conveyor wrote it?)", s.path, f, storeFormat)
		} else if f[0] < storeFormat {
			if err := migrate(tx, f[0]); err != nil {
				return err
			}
			if err := meta.Put(keyFormat, []byte{storeFormat}); err != nil {
				return err
			}
			s.log.Info("migrated the queue file to a new format", "from", f[0], "to", storeFormat)
		}
		if meta.Get(keyRecount) != nil {
			if err := recount(tx); err != nil {
				return err
			}
			s.log.Warn("recounted the queue's counters from its indexes (a commit had found them inconsistent)")
		}
		if err := s.loadQueues(tx); err != nil {
			return err
		}
		t := s.newTxn(tx, s.now())
		var err error
		rescued, struck, killed, err = t.rescueOrphans(s.opts.MaxOrphans, crashedSet)
		if err != nil {
			return err
		}
		if err := t.flushCounts(); err != nil {
			return err
		}
		s.applyTxn(t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", s.path, err)
	}
	if rescued > 0 {
		s.log.Warn("rescued jobs left running by a previous process", "jobs", rescued, "interrupted", struck, "dead", killed)
	}
	return nil
}

func (s *Store) loadQueues(tx *bolt.Tx) error {
	counts := tx.Bucket(bucketCounts)
	ready := tx.Bucket(bucketReady)
	return tx.Bucket(bucketQueues).ForEach(func(k, v []byte) error {
		if len(v) < 3 {
			return fmt.Errorf("corrupt queue entry %q", k)
		}
		q := &queueState{name: string(k), id: getQid(v), paused: v[2]&1 != 0}
		for _, st := range States {
			if c := counts.Get(countKey(q.id, st)); c != nil {
				q.counts[st] = int64(getU64(c))
			}
		}
		if b := ready.Bucket(qidKey(q.id)); b != nil {
			if k, v := b.Cursor().First(); k != nil {
				q.headSince = parseReady(v).since
			}
		}
		s.queues[q.name] = q
		s.qByID[q.id] = q
		return nil
	})
}

// Close commits everything handed to the writer before it — finished attempts
// too, however young — stops the writer and the janitor, and closes the file.
// Calls after Close began get ErrClosed. Consumers should be closed first: jobs
// they still hold stay running in the file and go back to ready, untouched, at
// the next Open (a clean close is not a crash: nobody is struck).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.pmu.Lock()
		s.closing = true
		s.pmu.Unlock()
		close(s.stop)
		<-s.writerEnd
		<-s.janEnd
		s.subs.closeAll()
		s.closeErr = errors.Join(s.jn.close(true), s.db.Close())
	})
	return s.closeErr
}

// MaxArgsBytes returns the largest args the store accepts.
func (s *Store) MaxArgsBytes() int { return s.opts.MaxArgsBytes }

// Size returns the bytes of the file in use (bbolt's high-water mark; the file
// itself is grown in larger steps ahead of need).
func (s *Store) Size() int64 {
	var n int64
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.path }

// Backup writes a consistent snapshot of the whole store to w while the store
// keeps running, and returns its size. The snapshot is compacted first into a
// temporary file beside the store (bbolt's Compact, under one read
// transaction: it copies the live data only, so the snapshot has the store's
// live size, not its file's peak), then streamed to w with no transaction
// open: a slow w never holds back a commit. Where there is no room for the
// copy (a full disk), the file is streamed as it is under a read transaction,
// which needs none. ctx ends a stream in progress.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	tmp, err := s.compactTo(filepath.Dir(s.path))
	if err != nil {
		s.log.Warn("no room for a compacted snapshot: streaming the queue file as it is", "err", err)
		var n int64
		err := s.db.View(func(tx *bolt.Tx) error {
			var err error
			n, err = tx.WriteTo(ctxWriter{ctx, w})
			return err
		})
		if err != nil {
			return n, fmt.Errorf("queue: backup: %w", err)
		}
		return n, nil
	}
	defer os.Remove(tmp)
	f, err := os.Open(tmp)
	if err != nil {
		return 0, fmt.Errorf("queue: backup: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(ctxWriter{ctx, w}, f)
	if err != nil {
		return n, fmt.Errorf("queue: backup: %w", err)
	}
	return n, nil
}

// compactTo writes a compacted copy of the store into a new temporary file in
// dir and returns its path; the caller removes it.
func (s *Store) compactTo(dir string) (string, error) {
	f, err := os.CreateTemp(dir, filepath.Base(s.path)+".snapshot-*")
	if err != nil {
		return "", fmt.Errorf("queue: backup: %w", err)
	}
	tmp := f.Name()
	f.Close()
	if err := compactFile(s.db, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("queue: backup: %w", err)
	}
	return tmp, nil
}

// compactFile copies src's live data into a new bbolt file at dst (replacing
// any file there), fsynced.
func compactFile(src *bolt.DB, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	db, err := bolt.Open(dst, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	if err := bolt.Compact(db, src, 64<<20); err != nil {
		db.Close()
		return err
	}
	return errors.Join(db.Sync(), db.Close())
}

// ctxWriter is a writer that stops once ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// FileStats describes the store's file.
type FileStats struct {
	// Allocated is the file's size on disk: bbolt grows it ahead of need and
	// never shrinks it.
	Allocated int64
	// Live is what its pages in use hold; the rest are free pages, reused
	// before the file grows again (a snapshot, or a compaction at start-up,
	// has about this size).
	Live int64
}

// FileStats returns the file's allocated and live sizes.
func (s *Store) FileStats() FileStats {
	var fs FileStats
	s.db.View(func(tx *bolt.Tx) error {
		fs.Live = tx.Size()
		return nil
	})
	fs.Live -= int64(s.db.Stats().FreeAlloc)
	if fi, err := os.Stat(s.path); err == nil {
		fs.Allocated = fi.Size()
	}
	return fs
}

// QueueInfo describes one queue.
type QueueInfo struct {
	Name    string
	Paused  bool
	Size    int64         // ready jobs
	Latency time.Duration // how long the next job to run has been waiting
	Counts  map[State]int64
}

// Queues returns every queue the store knows, by name. It reads counters kept in
// memory in step with the file: it never scans.
func (s *Store) Queues() []QueueInfo {
	now := s.now()
	s.mu.RLock()
	out := make([]QueueInfo, 0, len(s.queues))
	for _, q := range s.queues {
		out = append(out, q.info(now))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b QueueInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Queue returns one queue's info; ok is false when the store has never seen it.
func (s *Store) Queue(name string) (QueueInfo, bool) {
	now := s.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	q, ok := s.queues[name]
	if !ok {
		return QueueInfo{Name: name, Counts: map[State]int64{}}, false
	}
	return q.info(now), true
}

func (q *queueState) info(now time.Time) QueueInfo {
	qi := QueueInfo{Name: q.name, Paused: q.paused, Size: q.counts[StateReady], Counts: make(map[State]int64, numStates)}
	for _, st := range States {
		qi.Counts[st] = q.counts[st]
	}
	if q.headSince != 0 && q.counts[StateReady] > 0 {
		qi.Latency = max(0, now.Sub(fromNano(q.headSince)))
	}
	return qi
}

// Counts returns the number of jobs in each state across all queues.
func (s *Store) Counts() map[State]int64 {
	out := make(map[State]int64, numStates)
	s.mu.RLock()
	for _, q := range s.queues {
		for _, st := range States {
			out[st] += q.counts[st]
		}
	}
	s.mu.RUnlock()
	return out
}

// NextDue returns when the earliest scheduled or retrying job becomes due (zero
// when there is none).
func (s *Store) NextDue() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nextDue
}

func isTimeout(err error) bool {
	return errors.Is(err, berrors.ErrTimeout)
}

// Flush returns once everything handed to the writer before the call (enqueues,
// acks, failures) is committed.
func (s *Store) Flush(ctx context.Context) error {
	return s.admin(ctx, nil)
}
