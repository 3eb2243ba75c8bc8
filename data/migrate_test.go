package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"conveyor/internal/testlog"
)

// nextVersion is the version after the embedded migrations: the extra
// scripts of these tests are named with it (nextName), so adding a migration
// to data/migrations does not collide with them.
var nextVersion = SchemaVersion() + 1

func nextName(name string) string { return fmt.Sprintf("%04d_%s.sql", nextVersion, name) }

// withMigration returns the embedded migrations plus extra scripts.
func withMigration(extra map[string]string) fs.FS {
	m := fstest.MapFS{}
	err := fs.WalkDir(migrationFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrationFS, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		panic(err)
	}
	for name, sql := range extra {
		m[name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return m
}

func tableExists(t testing.TB, path, table string) bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func schemaVersion(t testing.TB, db *DB) int {
	t.Helper()
	var v int
	if err := db.r.QueryRowContext(t.Context(), `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) || ms[0].name != "0001_init.sql" {
		t.Fatalf("migrations = %d, SchemaVersion = %d", len(ms), SchemaVersion())
	}
}

func TestMigrationNamesChecked(t *testing.T) {
	t.Parallel()
	for name, files := range map[string]fstest.MapFS{
		"gap":      {"0001_a.sql": {Data: []byte("SELECT 1")}, "0003_c.sql": {Data: []byte("SELECT 1")}},
		"bad name": {"0001_a.sql": {Data: []byte("SELECT 1")}, "2_b.sql": {Data: []byte("SELECT 1")}},
		"dup":      {"0001_a.sql": {Data: []byte("SELECT 1")}, "0001_b.sql": {Data: []byte("SELECT 1")}},
	} {
		if _, err := loadMigrations(files); err == nil {
			t.Errorf("%s: loadMigrations accepted %v", name, files)
		}
	}
}

// A migration that fails half-way leaves the database at the previous
// version with nothing of the failed script; fixing the script and
// reopening applies it.
func TestMigrationFailingHalfwayIsRolledBackAndRetried(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	bad := withMigration(map[string]string{nextName("half"): `
		CREATE TABLE half_done (x INTEGER);
		INSERT INTO half_done VALUES (1);
		ALTER TABLE failures ADD COLUMN half_col TEXT;
		INSERT INTO no_such_table VALUES (2);
		CREATE TABLE never (y INTEGER);`})
	_, err := open(t.Context(), p, Options{Logger: testlog.New(t)}, bad)
	if err == nil || !strings.Contains(err.Error(), nextName("half")) {
		t.Fatalf("open with a failing migration = %v, want an error naming it", err)
	}
	if tableExists(t, p, "half_done") {
		t.Fatal("half of the failed migration was committed")
	}

	good := withMigration(map[string]string{nextName("half"): `
		CREATE TABLE half_done (x INTEGER);
		INSERT INTO half_done VALUES (1);
		ALTER TABLE failures ADD COLUMN half_col TEXT;`})
	db, err := open(t.Context(), p, Options{Logger: testlog.New(t)}, good)
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	if v := schemaVersion(t, db); v != nextVersion {
		t.Fatalf("schema version = %d, want %d", v, nextVersion)
	}
	var n int
	if err := db.r.QueryRowContext(t.Context(), `SELECT count(*) FROM half_done`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("half_done rows = %d, %v", n, err)
	}
}

const crashEnv = "CONVEYOR_DATA_CRASH_DB"

// crashChild is the subprocess of TestMigrationCrashBeforeCommit: it applies
// a second migration and exits abruptly just before that commit.
func crashChild() bool {
	p := os.Getenv(crashEnv)
	if p == "" {
		return false
	}
	beforeMigrationCommit = func(name string) {
		if name == nextName("crash") {
			os.Exit(3) // no rollback, no close: the process just dies
		}
	}
	_, err := open(context.Background(), p, Options{}, withMigration(map[string]string{nextName("crash"): crashScript}))
	fmt.Fprintf(os.Stderr, "child: open returned %v instead of dying at the commit boundary\n", err)
	os.Exit(4)
	return true
}

const crashScript = `
	CREATE TABLE crash_tbl (x INTEGER);
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
	INSERT INTO crash_tbl SELECT i FROM n;`

func TestMigrationCrashBeforeCommit(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	// The embedded migrations first, so that the crash hits only the extra one.
	db, err := Open(t.Context(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+p)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child = %v, want exit 3 at the commit boundary; output:\n%s", err, out)
	}

	db, err = open(t.Context(), p, Options{Logger: testlog.New(t)}, migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, db); v != SchemaVersion() {
		t.Fatalf("schema version after the crash = %d, want %d", v, SchemaVersion())
	}
	if tableExists(t, p, "crash_tbl") {
		t.Fatal("the crashed migration's table survived")
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Rerunning the migration now applies it whole.
	db, err = open(t.Context(), p, Options{Logger: testlog.New(t)}, withMigration(map[string]string{nextName("crash"): crashScript}))
	if err != nil {
		t.Fatal(err)
	}
	cleanupCheck(t, db)
	var n int
	if err := db.r.QueryRowContext(t.Context(), `SELECT count(*) FROM crash_tbl`).Scan(&n); err != nil || n != 20000 {
		t.Fatalf("crash_tbl rows = %d, %v", n, err)
	}
}

func TestSchemaNewerThanBinaryIsRefused(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	newer := withMigration(map[string]string{nextName("future"): `CREATE TABLE future (x INTEGER);`})
	db, err := open(t.Context(), p, Options{}, newer)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(t.Context(), p, Options{})
	var se *SchemaError
	if !errors.Is(err, ErrSchemaTooNew) || !errors.As(err, &se) || se.Version != nextVersion || se.Latest != SchemaVersion() {
		t.Fatalf("Open of a newer database = %v, want a SchemaError wrapping ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), nextName("future")) {
		t.Errorf("error does not name the unknown migration: %v", err)
	}
}

func TestSchemaWithDifferentMigrationNameIsRefused(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "conveyor.db")
	db, err := open(t.Context(), p, Options{}, withMigration(map[string]string{nextName("mine"): `SELECT 1;`}))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.IntegrityCheck(t.Context()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = open(t.Context(), p, Options{}, withMigration(map[string]string{nextName("theirs"): `SELECT 1;`}))
	var se *SchemaError
	if !errors.As(err, &se) || se.Version != nextVersion {
		t.Fatalf("open = %v, want a SchemaError for version %d", err, nextVersion)
	}
}
