package data

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver that litestream uses too
)

// Defaults for Options.
const (
	// DefaultReadConns sizes the read pool like the seed's RAILS_MAX_THREADS
	// (40 for about 34 workers).
	DefaultReadConns = 40
	// DefaultSearchWindow is how many of the newest matching failures a
	// substring search (FailureFilter.Q, or like on error_message) looks at.
	DefaultSearchWindow = 20_000
	// DefaultCountCap is where counts that no roll-up can answer stop
	// counting; see CountFailures.
	DefaultCountCap = 10_000
	// DefaultBusyTimeout is how long a connection waits for a lock held by
	// another connection (litestream takes the write lock briefly when it
	// checkpoints) before SQLITE_BUSY.
	DefaultBusyTimeout = 5 * time.Second
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// ReadConns is the size of the read-only connection pool
	// (DefaultReadConns when zero).
	ReadConns int
	// SearchWindow bounds substring searches over failures
	// (DefaultSearchWindow when zero); see FailureFilter.
	SearchWindow int
	// CountCap bounds failure counts that the roll-ups cannot answer
	// (DefaultCountCap when zero); see CountFailures.
	CountCap int
	// Now is the clock for every timestamp the store sets itself
	// (time.Now when nil). Results are stored in UTC, to the millisecond.
	Now func() time.Time
	// Logger receives migration and maintenance messages (discarded when nil).
	Logger *slog.Logger
}

// DB is the SQLite store: one writer connection, a read-only pool, and the
// repositories as methods. It is safe for concurrent use.
type DB struct {
	path         string
	w            *sql.DB // exactly one connection, BEGIN IMMEDIATE
	r            *sql.DB // read-only pool
	now          func() time.Time
	logger       *slog.Logger
	searchWindow int
	countCap     int
}

// Open opens (creating it and its directory if needed, mode 0600 and 0700;
// an existing database and its -wal and -shm lose any group and other
// permission) the database at path, applies the embedded
// migrations in order and returns the store. It refuses a database whose
// schema is newer than this binary (*SchemaError wrapping ErrSchemaTooNew).
//
// Connection settings live in the DSN so that every pooled connection gets
// them: WAL, busy_timeout(5000), foreign_keys(ON), synchronous(NORMAL) and
// wal_autocheckpoint(0) — litestream owns checkpoints, so run Replicate
// against the same path (and never checkpoint by hand).
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	return open(ctx, path, opts, migrationFS)
}

func open(ctx context.Context, path string, opts Options, migrations migrationSource) (*DB, error) {
	if path == "" {
		return nil, &FieldError{Field: "path", Reason: "must not be empty"}
	}
	if opts.ReadConns < 0 {
		return nil, &FieldError{Field: "Options.ReadConns", Reason: "must not be negative"}
	}
	if opts.SearchWindow < 0 {
		return nil, &FieldError{Field: "Options.SearchWindow", Reason: "must not be negative"}
	}
	if opts.CountCap < 0 {
		return nil, &FieldError{Field: "Options.CountCap", Reason: "must not be negative"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("data: resolve %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("data: open %s: %w", abs, err)
	}
	if err := makePrivate(abs); err != nil {
		return nil, err
	}
	db := &DB{
		path:         abs,
		now:          opts.Now,
		logger:       opts.Logger,
		searchWindow: cmp.Or(opts.SearchWindow, DefaultSearchWindow),
		countCap:     cmp.Or(opts.CountCap, DefaultCountCap),
	}
	if db.logger == nil {
		db.logger = slog.New(slog.DiscardHandler)
	}
	if db.now == nil {
		db.now = time.Now
	}

	if err := checkFile(ctx, abs); err != nil {
		return nil, err
	}
	db.w, err = sql.Open("sqlite", writerDSN(abs))
	if err != nil {
		return nil, fmt.Errorf("data: open %s: %w", abs, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxLifetime(0)
	db.w.SetConnMaxIdleTime(0)
	if err := db.w.PingContext(ctx); err != nil {
		_ = db.w.Close()
		return nil, fmt.Errorf("data: open %s: %w", abs, err)
	}
	if err := migrate(ctx, db, migrations); err != nil {
		_ = db.w.Close()
		return nil, err
	}
	// Refresh the planner's statistics where they are missing or stale
	// (cheap: analysis_limit bounds the work).
	if _, err := db.w.ExecContext(ctx, "PRAGMA optimize=0x10002"); err != nil {
		_ = db.w.Close()
		return nil, fmt.Errorf("data: optimize %s: %w", abs, err)
	}

	// The read pool opens after the writer created the file and switched
	// it to WAL: mode=ro cannot create either.
	db.r, err = sql.Open("sqlite", readerDSN(abs))
	if err != nil {
		_ = db.w.Close()
		return nil, fmt.Errorf("data: open %s read-only: %w", abs, err)
	}
	n := cmp.Or(opts.ReadConns, DefaultReadConns)
	db.r.SetMaxOpenConns(n)
	db.r.SetMaxIdleConns(n)
	db.r.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.r.PingContext(ctx); err != nil {
		_ = db.r.Close()
		_ = db.w.Close()
		return nil, fmt.Errorf("data: open %s read-only: %w", abs, err)
	}
	return db, nil
}

// Path is the absolute path of the database file.
func (db *DB) Path() string { return db.path }

// Close closes the read pool and the writer. When a Replicator replicates
// this database, close the DB first and the Replicator after it: litestream
// must outlive every application connection.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Optimize refreshes the query planner's statistics for tables that changed
// a lot since they were last analysed (PRAGMA optimize, bounded by
// analysis_limit). Open runs it; long-running processes should run it every
// few hours (a maintenance cron entry) so that filters on the failures table
// keep picking the right index as the table grows.
func (db *DB) Optimize(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, "PRAGMA optimize"); err != nil {
		return fmt.Errorf("data: optimize: %w", err)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and PRAGMA foreign_key_check and
// verifies that the failure roll-ups (failure_counts, failure_hours) agree
// with the failures table. It
// returns nil only when all three are clean. It reads the whole database:
// seconds for a million failures.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var problems []string
	rows, err := db.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("data: integrity_check: %w", err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("data: integrity_check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("data: integrity_check: %w", err)
	}

	rows, err = db.r.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("data: foreign_key_check: %w", err)
	}
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			rows.Close()
			return fmt.Errorf("data: foreign_key_check: %w", err)
		}
		problems = append(problems, fmt.Sprintf("foreign key: %s row %d references a missing %s", table, rowid.Int64, parent))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("data: foreign_key_check: %w", err)
	}

	for _, r := range []struct{ table, cols string }{
		{"failure_counts", "kind, queue, class, error_class, retry_status, retryable"},
		{"failure_hours", "occurred_at / 3600000 * 3600000, kind, queue, class, error_class, retry_status, retryable"},
	} {
		var drift, negative int
		var rolled, counted int64
		err := db.r.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM (SELECT `+r.cols+`, count(*) FROM failures GROUP BY `+r.cols+`
			                       EXCEPT SELECT * FROM `+r.table+` WHERE n != 0)),
			(SELECT count(*) FROM `+r.table+` WHERE n < 0),
			(SELECT coalesce(sum(n), 0) FROM `+r.table+`),
			(SELECT count(*) FROM failures)`).Scan(&drift, &negative, &rolled, &counted)
		if err != nil {
			return fmt.Errorf("data: %s check: %w", r.table, err)
		}
		if drift != 0 || negative != 0 || rolled != counted {
			problems = append(problems, fmt.Sprintf("%s disagrees with failures (%d groups differ, %d negative, %d rolled up vs %d rows)",
				r.table, drift, negative, rolled, counted))
		}
	}

	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("… %d more", len(problems)-10))
		}
		return fmt.Errorf("data: %s: integrity check failed: %s", db.path, strings.Join(problems, "; "))
	}
	return nil
}

// writerDSN is the DSN of the single writer connection.
// ErrDamaged is returned by Open for a database file that SQLite finds damaged
// (not a database, truncated, a page that does not check). The file is left
// as it was.
var ErrDamaged = errors.New("data: the database file is damaged")

// checkFile runs SQLite's quick_check on an existing database before anything
// is written to it: opened immutable (no lock, no journal, no change), so a
// damaged file stops the start with ErrDamaged, naming it and the way back,
// and is not touched. It reads the whole file once.
func checkFile(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return nil // nothing there yet
	}
	bad := func(cause string) error {
		return fmt.Errorf("%w: %s: %s. It was left as it is; restore the data directory from its replica with `conveyor restore` (see `conveyor restore --help`)",
			ErrDamaged, path, cause)
	}
	c, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro&immutable=1")
	if err != nil {
		return fmt.Errorf("data: open %s: %w", path, err)
	}
	defer c.Close()
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return bad(err.Error())
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return bad(err.Error())
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return bad(err.Error())
	}
	if len(problems) > 0 {
		return bad(strings.Join(problems, "; "))
	}
	return nil
}

func writerDSN(path string) string {
	return "file:" + escapePath(path) + "?" + strings.Join([]string{
		"_pragma=busy_timeout(" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) + ")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(ON)",
		"_pragma=wal_autocheckpoint(0)",
		"_pragma=analysis_limit(1000)",
		"_pragma=cache_size(-32768)",
		"_txlock=immediate",
	}, "&")
}

// readerDSN is the DSN of the read-only pool.
func readerDSN(path string) string {
	return "file:" + escapePath(path) + "?" + strings.Join([]string{
		"mode=ro",
		"_pragma=busy_timeout(" + fmt.Sprint(DefaultBusyTimeout.Milliseconds()) + ")",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(ON)",
		"_pragma=cache_size(-8192)",
		"_pragma=query_only(1)",
	}, "&")
}

// escapePath escapes the characters that end the path part of an SQLite URI.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it; an error from fn rolls back.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("data: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("data: commit: %w", err)
	}
	return nil
}

// read runs fn in one read transaction on the read pool, so that every
// query in fn sees the same snapshot.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("data: begin read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// nowUTC is the store's clock in UTC, truncated to what is stored.
func (db *DB) nowUTC() time.Time { return db.now().UTC().Truncate(time.Millisecond) }

// ms converts a time to stored unix milliseconds; the zero time is NULL.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS converts stored unix milliseconds back to a UTC time; NULL is the
// zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// nullID stores 0 as NULL for optional references.
func nullID(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// nullText stores "" as NULL.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// boolInt stores a bool as 0 or 1.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// notFound maps sql.ErrNoRows to ErrNotFound with a message naming what.
func notFound(err error, what string, id any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("data: %s %v: %w", what, id, ErrNotFound)
	}
	return fmt.Errorf("data: %s %v: %w", what, id, err)
}
