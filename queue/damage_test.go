package queue

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDamagedFileStopsTheStart: a truncated file, one with a page header or a
// record flipped, stops Open with ErrDamaged, naming the file and `conveyor
// restore`, and leaves the file as it was, byte for byte.
func TestDamagedFileStopsTheStart(t *testing.T) {
	t.Parallel()
	// A store with some jobs, closed.
	good := filepath.Join(t.TempDir(), "queue.bolt")
	e := setupAt(t, good, func(o *Options) { o.NoSync = true })
	var ids []uint64
	for i := range 200 {
		ids = append(ids, e.enqueue(NewJob{Args: rawJSON(`{"n":` + strings.Repeat("1", 1+i%50) + `}`)}).ID)
	}
	e.reopen()
	e.s.Close()
	e.s = nil
	orig, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Where the jobs' records and a leaf page of them lie in the file.
	var recordAt, argsAt, pageAt int
	db, err := bolt.Open(good, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(u64(ids[100]))
		recordAt = bytes.Index(orig, v)
		argsAt = recordAt + len(v) - recordSumLen - 3 // a digit of {"n":1…1}
		return nil
	})
	db.Close()
	pageAt = recordAt / 4096 * 4096
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:pageAt] }},                       // in the middle of the jobs
		{"page header flipped", func(b []byte) []byte { b[pageAt+8] ^= 0x40; return b }}, // the page's flags
		{"record flipped", func(b []byte) []byte { b[recordAt+1] ^= 0x80; return b }},    // the class's length
		{"args flipped", func(b []byte) []byte { b[argsAt] ^= 0x01; return b }},          // '1' to '0': decodes, the checksum differs
		{"meta pages zeroed", func(b []byte) []byte { clear(b[:2*4096]); return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.bolt")
			if err := os.WriteFile(path, tc.damage(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			before := sum(t, path)
			s, err := Open(path, Options{NoSync: true, LockTimeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("a damaged file opened")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "conveyor restore") {
				t.Fatalf("error %q: want ErrDamaged naming the file and conveyor restore", err)
			}
			t.Log(err)
			if sum(t, path) != before {
				t.Fatal("the damaged file was changed")
			}
			if _, err := os.Stat(path + ".running"); err == nil {
				t.Fatal("a journal was made beside a damaged file")
			}
		})
	}
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
