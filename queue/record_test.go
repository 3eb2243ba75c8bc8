package queue

import (
	"bytes"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleJob() *Job {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return &Job{
		ID: 42, Class: "ProfileRefreshJob", Queue: "profiles", Args: []byte(`{"account_id":7,"tags":["a","b"]}`),
		Attempt: 3, MaxAttempts: 25, Orphans: 1, CreatedAt: at, RunAt: at.Add(time.Minute),
		StartedAt: at.Add(2 * time.Minute), FinishedAt: time.Time{}, UniqueKey: "refresh:7", UniqueUntil: at.Add(time.Hour),
		Context: map[string]string{CtxAccountID: "7", CtxStep: "refresh"},
		Errors: []AttemptError{
			{Attempt: 1, Class: "Timeout", Message: "timed out after 30s", At: at.Add(time.Second)},
			{Attempt: 2, Class: "Panic", Message: "panic: x", Backtrace: "goroutine 1 [running]:\n...", At: at.Add(2 * time.Second)},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, j := range []*Job{sampleJob(), {ID: 1, Class: "A", Queue: "q"}} {
		b := encodeRecord(nil, j)
		got, err := decodeRecord(j.ID, b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, j) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, j)
		}
		// The decoded job owns its memory.
		for i := range b {
			b[i] = 0xFF
		}
		if got.Class != j.Class || !bytes.Equal(got.Args, j.Args) {
			t.Fatal("decoded job shares the record's bytes")
		}
	}
}

func TestRecordRejectsCorruption(t *testing.T) {
	t.Parallel()
	good := encodeRecord(nil, sampleJob())
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)/2]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"huge length", []byte{recordFormat1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}},
	} {
		if _, err := decodeRecord(1, tc.b); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("%s: err %v, want ErrCorruptRecord", tc.name, err)
		}
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder: it never
// panics, and whatever it accepts encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, sampleJob()))
	f.Add(encodeRecord(nil, &Job{Class: "A", Queue: "q"}))
	f.Add([]byte{recordFormat1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := decodeRecord(1, b)
		if err != nil {
			if !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("error %v is not ErrCorruptRecord", err)
			}
			return
		}
		again, err := decodeRecord(1, encodeRecord(nil, j))
		if err != nil || !reflect.DeepEqual(again, j) {
			t.Fatalf("re-encoding changed the job: %v\n%+v\n%+v", err, j, again)
		}
		// The head-only reader (acks, retention) agrees with the full decoder.
		if key, err := recordUniqueKey(b); err != nil || key != j.UniqueKey {
			t.Fatalf("recordUniqueKey = %q, %v; the record holds %q", key, err, j.UniqueKey)
		}
	})
}

// TestRecordChecksumCatchesAFlipThatStillDecodes: a record carries a
// checksum, so a bit flip inside the args (opaque bytes: the layout still
// decodes) is caught; a record of format 1, written before checksums, still
// reads, and checksummed turns it into what encodeRecord writes.
func TestRecordChecksumCatchesAFlipThatStillDecodes(t *testing.T) {
	t.Parallel()
	j := sampleJob()
	good := encodeRecord(nil, j)
	at := bytes.Index(good, j.Args)
	if good[0] != recordFormat2 || at < 0 {
		t.Fatalf("record of format %d, args at %d", good[0], at)
	}
	flipped := bytes.Clone(good)
	flipped[at+1] ^= 0x01
	if _, err := decodeRecord(1, flipped); !errors.Is(err, ErrCorruptRecord) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a flip inside the args: %v, want a checksum mismatch", err)
	}
	if _, err := recordUniqueKey(flipped); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("recordUniqueKey of a flipped record: %v", err)
	}
	old := append([]byte{recordFormat1}, good[1:len(good)-recordSumLen]...)
	if got, err := decodeRecord(1, old); err != nil || !reflect.DeepEqual(got, mustDecode(t, good)) {
		t.Fatalf("a format-1 record: %+v %v", got, err)
	}
	if !bytes.Equal(checksummed(old), good) || !bytes.Equal(checksummed(good), good) {
		t.Fatal("checksummed does not turn a format-1 record into the format-2 one")
	}
}

func mustDecode(t *testing.T, b []byte) *Job {
	t.Helper()
	j, err := decodeRecord(1, b)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// BenchmarkRecordChecksum is what the checksum costs a job: encoding and
// decoding a typical record with it, against format 1's without.
func BenchmarkRecordChecksum(b *testing.B) {
	j := &Job{ID: 1, Class: "ProfileRefreshJob", Queue: "profiles", Args: benchArgs, MaxAttempts: 25,
		CreatedAt: time.Now(), RunAt: time.Now(), Context: map[string]string{CtxAccountID: "123456"}}
	rec := encodeRecord(nil, j)
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			encodeRecord(nil, j)
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			decodeRecord(1, rec)
		}
	})
	b.Run("crc32c", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			crc32.Checksum(rec, castagnoli)
		}
	})
}
