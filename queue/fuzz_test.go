package queue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzEnqueue feeds the store's enqueue arbitrary jobs, as the API and the
// CLI hand them over from outside: each is refused with a ValidationError
// naming a field, or stored and read back as it was given (args as JSON of
// the same meaning, the rest byte for byte), and the store's check passes.
func FuzzEnqueue(f *testing.F) {
	f.Add("NoopJob", "default", []byte(`{"n":1}`), "", int64(0), "account_id", "7", 0)
	f.Add("SleepJob", "sync", []byte(` {"ms": 5} `), "key-1", int64(time.Hour), "", "", 3)
	f.Add("Bad Class", "no spaces", []byte(`{`), strings.Repeat("k", 600), int64(-1), "bad key", "\xff", -1)
	f.Add("C", "q:1.x-y_z", []byte(`null`), "k", int64(0), "step", "", 1001)
	s, err := Open(filepath.Join(f.TempDir(), "queue.bolt"), Options{NoSync: true, JanitorInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, class, queue string, args []byte, key string, uniqueFor int64, ck, cv string, attempts int) {
		nj := NewJob{Class: class, Queue: queue, Args: args, UniqueKey: key, UniqueFor: time.Duration(uniqueFor), MaxAttempts: attempts}
		if ck != "" || cv != "" {
			nj.Context = map[string]string{ck: cv}
		}
		r, err := s.Enqueue(context.Background(), nj)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" || ve.Reason == "" {
				t.Fatalf("enqueue %+v: %v, want a ValidationError naming a field", nj, err)
			}
			return
		}
		if r.Duplicate {
			return
		}
		j, err := s.Get(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Class != class || j.Queue != queue || j.UniqueKey != key || (attempts > 0 && j.MaxAttempts != attempts) {
			t.Fatalf("stored %+v for %+v", j, nj)
		}
		if len(j.Args) > 0 {
			var in, out any
			if json.Unmarshal(args, &in) != nil || json.Unmarshal(j.Args, &out) != nil || !jsonEqual(in, out) {
				t.Fatalf("args %q stored as %q", args, j.Args)
			}
		}
		if nj.Context != nil && j.Context[ck] != cv {
			t.Fatalf("context %v stored as %v", nj.Context, j.Context)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// FuzzJournalIDs feeds the running journal's reader arbitrary files (it reads
// what a dead process left): it never panics, and reads ids only from a
// journal of this boot.
func FuzzJournalIDs(f *testing.F) {
	boot := []byte("0123456789abcdef")
	good := make([]byte, journalHeader+8*4)
	copy(good, journalMagic)
	copy(good[8:24], boot)
	binary.LittleEndian.PutUint64(good[journalHeader+8:], 42)
	f.Add(good)
	f.Add([]byte(journalMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < journalHeader {
			b = append(b, make([]byte, journalHeader-len(b))...)
		}
		ids := journalIDs(b, boot)
		if len(ids) > 0 && (string(b[:4]) != journalMagic || string(b[8:24]) != string(boot)) {
			t.Fatalf("ids %v read from a journal of another boot", ids)
		}
		for _, id := range ids {
			if id == 0 {
				t.Fatal("an empty slot read as an id")
			}
		}
	})
}
