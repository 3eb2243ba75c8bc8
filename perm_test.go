package main

import (
	"bytes"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// walkModes lists every file and directory under dir (dir included) whose
// mode lets its group or others in.
func walkModes(t *testing.T, dir string) []string {
	t.Helper()
	var open []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			open = append(open, fi.Mode().Perm().String()+" "+p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return open
}

// TestDataDirectoryIsPrivate: the failure table holds job args, messages and
// backtraces, so everything serve writes — the database with its -wal and
// -shm, litestream's files, the file replica's LTX files and queue
// snapshots — is 0600 in 0700 directories, and a data directory that
// already existed at 0755 is made 0700.
func TestDataDirectoryIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	s := startServer(t, dir, "--queue-snapshot-interval", "1h")
	ctx := deadline(t)
	for i := range 3 {
		if enqueueFail(ctx, s, "boom "+string(rune('a'+i))) == 0 {
			t.Fatal("enqueue failed")
		}
	}
	waitFailures(t, s, 3)
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/backup", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("backup: %d %v", code, err)
	}
	for _, want := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", replicaDir} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("expected %s while serving: %v", want, err)
		}
	}
	ltx := 0
	filepath.WalkDir(filepath.Join(dir, replicaDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ltx") {
			ltx++
		}
		return nil
	})
	if ltx == 0 {
		t.Error("the replica holds no LTX file: nothing was checked there")
	}
	if open := walkModes(t, dir); len(open) > 0 {
		t.Errorf("readable by others while serving:\n%s", strings.Join(open, "\n"))
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.stderr.String())
	}
	if open := walkModes(t, dir); len(open) > 0 {
		t.Errorf("readable by others after serving:\n%s", strings.Join(open, "\n"))
	}
	if log := s.stderr.String(); !strings.Contains(log, "made the data directory private") {
		t.Errorf("tightening the data directory was not logged:\n%s", log)
	}
}

// TestReadableTokenFileIsRefused: a token file others can read may have been
// read: serve refuses it, naming the file and both ways out.
func TestReadableTokenFileIsRefused(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		dir := t.TempDir()
		path := filepath.Join(dir, tokenFile)
		if err := os.WriteFile(path, []byte("abcdefghijklmnopqrstuvwxyz012345\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := loadToken(dir, "", &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") ||
			!strings.Contains(err.Error(), "delete") {
			t.Errorf("mode %v: err = %v, want a refusal naming %s, chmod 600 and delete", mode, err, path)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, tokenFile)
	if err := os.WriteFile(path, []byte("abcdefghijklmnopqrstuvwxyz012345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := loadToken(dir, "", &bytes.Buffer{}); err != nil || tok != "abcdefghijklmnopqrstuvwxyz012345" {
		t.Errorf("a 0600 token file: %q, %v", tok, err)
	}
}
