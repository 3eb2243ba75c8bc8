package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"conveyor/internal/testlog"
	"conveyor/ops/fault"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkLeaks fails the run when goroutines of this package, litestream or
// database/sql outlive the tests (a DB, FailureWriter or Replicator left
// open).
func checkLeaks() error {
	var stacks string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "conveyor/data.checkLeaks") {
				continue
			}
			if strings.Contains(g, "conveyor/data.") || strings.Contains(g, "litestream.") || strings.Contains(g, "database/sql.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		stacks = strings.Join(leaked, "\n\n")
	}
	return fmt.Errorf("goroutines leaked after the tests:\n%s", stacks)
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// setup opens a fresh database in t.TempDir() with a test clock. On cleanup
// it runs the integrity check, then closes the database.
func setup(t testing.TB, opts ...func(*Options)) (*DB, *clock) {
	t.Helper()
	c := newClock()
	o := Options{Now: c.Now, Logger: testlog.New(t), ReadConns: 4}
	for _, f := range opts {
		f(&o)
	}
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "conveyor.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	return db, c
}

// cleanupCheck registers Close and, before it, the integrity check.
func cleanupCheck(t testing.TB, db *DB) {
	t.Helper()
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Cleanup(func() {
		if err := db.IntegrityCheck(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("integrity: %v", err)
		}
	})
}

func TestOpenConnectionSettings(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	ctx := t.Context()

	check := func(t *testing.T, label string, get func(string) string, want map[string]string) {
		t.Helper()
		for name, w := range want {
			if got := get(name); got != w {
				t.Errorf("%s: PRAGMA %s = %s, want %s", label, name, got, w)
			}
		}
	}
	writer := func(name string) string {
		var v string
		if err := db.w.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("writer PRAGMA %s: %v", name, err)
		}
		return v
	}
	check(t, "writer", writer, map[string]string{
		"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "1",
		"wal_autocheckpoint": "0", "query_only": "0",
	})

	// Hold several reader connections at once so that the check covers more
	// than one pooled connection.
	var conns []interface{ Close() error }
	for i := range 4 {
		conn, err := db.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		get := func(name string) string {
			var v string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
				t.Fatalf("reader PRAGMA %s: %v", name, err)
			}
			return v
		}
		check(t, fmt.Sprintf("reader %d", i), get, map[string]string{
			"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "query_only": "1",
		})
		if _, err := conn.ExecContext(ctx, "INSERT INTO health_checks (service, ok, checked_at) VALUES ('x', 1, 0)"); err == nil {
			t.Errorf("reader %d accepted a write", i)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if got := db.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool max = %d, want 1", got)
	}
	if got := db.r.Stats().MaxOpenConnections; got != 4 {
		t.Errorf("reader pool max = %d, want 4", got)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		opts  Options
		path  string
		field string
	}{
		{Options{ReadConns: -1}, "a.db", "Options.ReadConns"},
		{Options{SearchWindow: -5}, "a.db", "Options.SearchWindow"},
		{Options{}, "", "path"},
	} {
		p := tc.path
		if p != "" {
			p = filepath.Join(dir, p)
		}
		_, err := Open(t.Context(), p, tc.opts)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%q, %+v) = %v, want a FieldError naming %s", tc.path, tc.opts, err, tc.field)
		}
	}
}

func TestOpenPathWithURIMetacharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "we?ird #dir%41")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "conveyor.db")
	db, err := Open(t.Context(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("database not created at the literal path: %v", err)
	}
	if err := db.RecordHealthCheck(t.Context(), &HealthCheck{Service: "local_ai", OK: true}); err != nil {
		t.Fatal(err)
	}
	got, err := db.LatestHealth(t.Context())
	if err != nil || len(got) != 1 {
		t.Fatalf("LatestHealth = %v, %v", got, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	db, err := Open(t.Context(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.InsertFailures(t.Context(), []*Failure{{Class: "A", Queue: "q", Kind: fault.Runtime}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(t.Context(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	_, n, err := db.FindFailures(t.Context(), FailureFilter{})
	if err != nil || n != 1 {
		t.Fatalf("after reopen: %d failures, %v", n, err)
	}
}
