package data

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// migrationFS is the source Open uses: the migrations embedded in the binary.
var migrationFS migrationSource = mustSub(embeddedMigrations, "migrations")

// migrationSource is a directory of NNNN_name.sql files.
type migrationSource = fs.FS

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// migration is one versioned SQL script.
type migration struct {
	version int
	name    string // file name, e.g. 0001_init.sql
	sql     string
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads and orders the scripts of src. Versions must start at
// 1 and have no gaps, so that "the newest version this binary knows" is
// simply the count.
func loadMigrations(src fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(src, ".")
	if err != nil {
		return nil, fmt.Errorf("data: read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("data: migration %s: name must look like 0001_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(src, e.Name())
		if err != nil {
			return nil, fmt.Errorf("data: read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("data: migration %s: expected version %04d (versions start at 1 with no gaps or duplicates)", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the newest migration version embedded in this binary.
func SchemaVersion() int {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		panic(err) // the embedded set is checked by the tests
	}
	return len(ms)
}

// beforeMigrationCommit, when set (crash tests only; nil in production),
// runs after a migration's statements and before its commit.
var beforeMigrationCommit func(name string)

// migrate applies every migration of src that the database has not
// recorded, in order. Each runs in its own transaction together with its
// schema_migrations row, so a crash (or an error) half-way through a script
// leaves the database at the previous version and the next Open retries it.
func migrate(ctx context.Context, db *DB, src fs.FS) error {
	ms, err := loadMigrations(src)
	if err != nil {
		return err
	}
	latest := len(ms)
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("data: %s: create schema_migrations: %w", db.path, err)
	}

	applied := map[int]string{}
	rows, err := db.w.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("data: %s: read schema_migrations: %w", db.path, err)
	}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			rows.Close()
			return fmt.Errorf("data: %s: read schema_migrations: %w", db.path, err)
		}
		applied[v] = name
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("data: %s: read schema_migrations: %w", db.path, err)
	}
	rows.Close()

	for v, name := range applied {
		if v > latest || v < 1 {
			return &SchemaError{Path: db.path, Version: v, Latest: latest, Err: ErrSchemaTooNew,
				Reason: fmt.Sprintf("the database records migration %s, which this binary does not have; run a newer Conveyor or restore an older backup", name)}
		}
		if ms[v-1].name != name {
			return &SchemaError{Path: db.path, Version: v, Latest: latest,
				Reason: fmt.Sprintf("the database records migration %s where this binary has %s", name, ms[v-1].name)}
		}
	}

	for _, m := range ms {
		if _, ok := applied[m.version]; ok {
			continue
		}
		err := db.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, db.nowUTC().UnixMilli())
			if err == nil && beforeMigrationCommit != nil {
				beforeMigrationCommit(m.name)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("data: %s: migration %s: %w", db.path, m.name, err)
		}
		db.logger.Info("applied migration", "db", db.path, "migration", m.name)
	}
	return nil
}
