package data

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenMakesTheDatabasePrivate: a new database and its -wal and -shm are
// 0600 whatever the umask lets through; an existing one at 0644 (an older
// Conveyor created them so) loses the permissions of group and others.
func TestOpenMakesTheDatabasePrivate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "conveyor.db")
	db, err := Open(ctx, path, Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantModes(t, 0o600, path, path+"-wal", path+"-shm")
	wantModes(t, 0o700|os.ModeDir, dir)
	db.Close()

	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	db, err = Open(ctx, path, Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wantModes(t, 0o600, path, path+"-wal", path+"-shm")
}

func wantModes(t *testing.T, want os.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got := fi.Mode() & (os.ModeDir | os.ModePerm); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), got, want)
		}
	}
}
