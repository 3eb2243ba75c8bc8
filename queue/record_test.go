package queue

import (
	"bytes"
	"errors"
	"reflect"
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
