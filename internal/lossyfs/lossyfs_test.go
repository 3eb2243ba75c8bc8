package lossyfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	ServeIfAsked()
	os.Exit(m.Run())
}

// TestCutKeepsWhatWasSynced: after a cut a file holds what it held at its
// last sync (size too), whatever was written after; a file never synced is
// empty; names stay.
func TestCutKeepsWhatWasSynced(t *testing.T) {
	f := MountT(t)
	path := filepath.Join(f.Dir, "sub", "a")
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte("s"), 10_000)
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write(synced)
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	fh.WriteAt(bytes.Repeat([]byte("u"), 20_000), 5000) // over synced blocks, and past the end
	fh.Close()
	never := filepath.Join(f.Dir, "never")
	if err := os.WriteFile(never, []byte("gone"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 25_000 {
		t.Fatalf("before the cut the file has %d bytes, want 25000", len(b))
	}
	if _, err := f.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, synced) {
		t.Fatalf("after the cut: %d bytes (%v), want the %d synced", len(b), err, len(synced))
	}
	if b, err := os.ReadFile(never); err != nil || len(b) != 0 {
		t.Fatalf("a file never synced: %q (%v), want it empty", b, err)
	}
}

// TestFailSyncs: a sync fails with EIO while told to, and works after.
func TestFailSyncs(t *testing.T) {
	f := MountT(t)
	fh, err := os.Create(filepath.Join(f.Dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fh.WriteString("x")
	if err := f.FailSyncs(true); err != nil {
		t.Fatal(err)
	}
	if err := fh.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("sync while failing: %v, want EIO", err)
	}
	if err := f.FailSyncs(false); err != nil {
		t.Fatal(err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatalf("sync after: %v", err)
	}
}

// TestBoltSurvivesCuts: bbolt on the mount keeps every committed
// transaction across cuts, and its file checks; a transaction committed
// without its sync (NoSync) is lost at the cut.
func TestBoltSurvivesCuts(t *testing.T) {
	f := MountT(t)
	path := filepath.Join(f.Dir, "b.bolt")
	committed := 0
	put := func(db *bolt.DB, n int) error {
		return db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("k"))
			if err != nil {
				return err
			}
			return b.Put(fmt.Appendf(nil, "key-%06d", n), bytes.Repeat([]byte("v"), 3000))
		})
	}
	for round := range 8 {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatalf("round %d: open after a cut: %v", round, err)
		}
		db.View(func(tx *bolt.Tx) error {
			n := 0
			if b := tx.Bucket([]byte("k")); b != nil {
				n = b.Stats().KeyN
			}
			if n != committed {
				t.Fatalf("round %d: %d transactions committed, %d keys found", round, committed, n)
			}
			for err := range tx.Check() {
				t.Fatalf("round %d: %v", round, err)
			}
			return nil
		})
		for range 20 {
			if err := put(db, committed); err != nil {
				t.Fatal(err)
			}
			committed++
		}
		db.NoSync = true
		if err := put(db, committed); err != nil { // written, never synced
			t.Fatal(err)
		}
		db.Close()
		if _, err := f.Cut(0, uint64(round)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMountFailureSaysWhy: a mount that fails is ErrUnavailable, with the
// reason and the place (what the tests' skip message shows).
func TestMountFailureSaysWhy(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse (%v): the server never gets as far as mounting", err)
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Mount(notADir)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), notADir) {
		t.Fatalf("Mount on a file: %v, want ErrUnavailable naming it", err)
	}
	t.Log(err)
}
