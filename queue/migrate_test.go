package queue

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// loadDump builds a bbolt file from a text dump of its buckets (the format of
// testdata/store-format*.txt), with bbolt alone: the fixture says what an old
// release wrote, byte for byte, and owes nothing to today's code.
func loadDump(t *testing.T, dump, path string) {
	t.Helper()
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bucket := func(p string) (*bolt.Bucket, error) {
			parts := strings.Split(p, "/")
			b, err := tx.CreateBucketIfNotExists([]byte(parts[0]))
			for _, part := range parts[1:] {
				if err != nil {
					return nil, err
				}
				name, herr := hex.DecodeString(part)
				if herr != nil {
					return nil, herr
				}
				b, err = b.CreateBucketIfNotExists(name)
			}
			return b, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) == 0 || strings.HasPrefix(fs[0], "#") {
				continue
			}
			b, err := bucket(fs[1])
			if err != nil {
				return err
			}
			switch fs[0] {
			case "seq":
				n, err := strconv.ParseUint(fs[2], 10, 64)
				if err != nil {
					return err
				}
				if err := b.SetSequence(n); err != nil {
					return err
				}
			case "kv":
				k, err := hex.DecodeString(fs[2])
				if err != nil {
					return err
				}
				var v []byte
				if len(fs) > 3 {
					if v, err = hex.DecodeString(fs[3]); err != nil {
						return err
					}
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatalf("load %s: %v", dump, err)
	}
}

// TestOpensAndMigratesOldFormats opens a store written by each released
// format and finds every job where it was, with the indexes and record
// checksums of today's format: format 1 (the first release: no finish-time
// indexes), format 2 (a finish-time key per job, no checksums) and format 3.
func TestOpensAndMigratesOldFormats(t *testing.T) {
	t.Parallel()
	for _, fx := range []struct {
		format int
		jobs   map[uint64]State
		done   []uint64 // newest first
	}{
		{1, map[uint64]State{1: StateDone, 2: StateDead, 3: StateRetry, 4: StateReady, 5: StateScheduled, 6: StateReady,
			7: StateReady}, []uint64{1}},
		{2, map[uint64]State{1: StateDone, 2: StateDead, 3: StateRetry, 4: StateReady, 5: StateScheduled, 6: StateReady,
			7: StateReady, 8: StateDone, 9: StateDone}, []uint64{9, 8, 1}},
		{3, map[uint64]State{1: StateDone, 2: StateDead, 3: StateRetry, 4: StateReady, 5: StateScheduled, 6: StateReady,
			7: StateReady, 8: StateDone, 9: StateDone}, []uint64{9, 8, 1}},
	} {
		t.Run(fmt.Sprintf("format%d", fx.format), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "queue.bolt")
			loadDump(t, filepath.Join("testdata", fmt.Sprintf("store-format%d.txt", fx.format)), path)
			e := setupAt(t, path)
			e.clock.Advance(time.Minute)
			// 7 was running: a clean stop, nobody is struck.
			for id, st := range fx.jobs {
				j := e.wantState(id, st)
				if want := `{"n":` + strconv.FormatUint(id, 10) + `}`; string(j.Args) != want || j.Class != "FixtureJob" {
					t.Fatalf("job %d: %+v", id, j)
				}
				if j.Orphans != 0 {
					t.Fatalf("job %d struck by the upgrade: %+v", id, j)
				}
			}
			if j := e.get(1); j.Context["account_id"] != "7" || j.Attempt != 1 {
				t.Fatalf("done job %+v", j)
			}
			if j := e.get(2); len(j.Errors) != 1 || j.Errors[0].Message != "killed for the fixture" {
				t.Fatalf("dead job %+v", j)
			}
			if q, _ := e.s.Queue("paused"); !q.Paused {
				t.Fatal("the paused queue is not paused")
			}
			for key, holder := range map[string]uint64{"fixture-dead": 2, "fixture-ready": 4} {
				if r := e.enqueue(NewJob{UniqueKey: key, Queue: "other"}); !r.Duplicate || r.ID != holder {
					t.Fatalf("key %q: %+v, want held by %d", key, r, holder)
				}
			}
			for st, want := range map[State][]uint64{StateDone: fx.done, StateDead: {2}} {
				page, err := e.s.List(ListFilter{State: st})
				var got []uint64
				for _, j := range page.Jobs {
					got = append(got, j.ID)
				}
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("list %s: %v %v, want %v", st, got, err, want)
				}
			}
			// Every record carries its checksum now.
			e.s.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
					if v[0] != recordFormat2 {
						t.Errorf("job %d: record of format %d after the migration", getU64(k), v[0])
					}
					return nil
				})
			})
			// The migrated store works on: run the ready jobs, trim by age.
			c := e.consumer("default", "running")
			for range 2 {
				if err := take(t, c).Finish(Ack()); err != nil {
					t.Fatal(err)
				}
			}
			e.flush()
			e.wantState(4, StateDone)
			e.wantState(7, StateDone)
			e.clock.Advance(DefaultDoneRetention + time.Hour)
			if _, err := e.s.Trim(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := e.s.Counts()[StateDone]; n != 0 {
				t.Fatalf("%d done jobs left after their retention", n)
			}
			e.reopen()
		})
	}
}
