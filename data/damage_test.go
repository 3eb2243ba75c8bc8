package data

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"conveyor/internal/testlog"
)

// TestDamagedDatabaseStopsTheStart: a truncated database, one with a page
// flipped, and a file that is not a database stop Open with ErrDamaged,
// naming the file and `conveyor restore`; the file is left as it was.
func TestDamagedDatabaseStopsTheStart(t *testing.T) {
	t.Parallel()
	good := filepath.Join(t.TempDir(), "conveyor.db")
	db, err := Open(t.Context(), good, Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(t.Context(), "CREATE TABLE pad(x TEXT)"); err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		if _, err := db.w.ExecContext(t.Context(), "INSERT INTO pad VALUES(?)", strings.Repeat("p", 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) < 40*4096 {
		t.Fatalf("the database is only %d bytes", len(orig))
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"page flipped", func(b []byte) []byte {
			p := len(b) / 4096 / 2 * 4096 // a page of the pad table: its b-tree page type
			b[p] ^= 0xff
			return b
		}},
		{"not a database", func(b []byte) []byte { return bytes.Repeat([]byte("conveyor"), 1024) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "conveyor.db")
			if err := os.WriteFile(path, tc.damage(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			before := sha(t, path)
			db, err := Open(t.Context(), path, Options{Logger: testlog.New(t)})
			if err == nil {
				db.Close()
				t.Fatal("a damaged database opened")
			}
			t.Log(err)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "conveyor restore") {
				t.Fatalf("error %q: want ErrDamaged naming the file and conveyor restore", err)
			}
			if sha(t, path) != before {
				t.Fatal("the damaged file was changed")
			}
			for _, suffix := range []string{"-wal", "-shm"} {
				if _, err := os.Stat(path + suffix); err == nil {
					t.Fatalf("%s was made beside a damaged file", suffix)
				}
			}
		})
	}
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
