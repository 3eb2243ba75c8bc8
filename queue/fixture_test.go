package queue

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestWriteFixture writes testdata/store-format<N>.txt, a dump of a store of
// today's format N with the fixture's jobs (see fixtureHeader), when
// CONVEYOR_WRITE_FIXTURE=1. Run it once when a format is released, before
// the next one changes the code: TestOpensAndMigratesFormat* then keep that
// release's files opening.
func TestWriteFixture(t *testing.T) {
	if os.Getenv("CONVEYOR_WRITE_FIXTURE") != "1" {
		t.Skip("writes a fixture only when CONVEYOR_WRITE_FIXTURE=1")
	}
	path := filepath.Join(t.TempDir(), "queue.bolt")
	e := setupAt(t, path)
	ctx := context.Background()
	e.enqueue(NewJob{Class: "FixtureJob", Args: rawJSON(`{"n":1}`), Context: map[string]string{"account_id": "7"}})
	e.enqueue(NewJob{Class: "FixtureJob", Args: rawJSON(`{"n":2}`), UniqueKey: "fixture-dead", UniqueFor: 10 * 24 * time.Hour})
	e.enqueue(NewJob{Class: "FixtureJob", Args: rawJSON(`{"n":3}`)})
	c := e.consumer("default")
	for _, fin := range []Outcome{Ack(), Kill(AttemptError{Class: "FixtureError", Message: "killed for the fixture"}),
		Fail(AttemptError{Class: "FixtureError", Message: "failed for the fixture"}, e.clock.Now().Add(time.Hour))} {
		if err := take(t, c).Finish(fin); err != nil {
			t.Fatal(err)
		}
	}
	e.flush()
	c.Close(ctx)
	e.clock.Advance(time.Second)
	e.enqueue(NewJob{Class: "FixtureJob", Args: rawJSON(`{"n":4}`), UniqueKey: "fixture-ready"})
	e.enqueue(NewJob{Class: "FixtureJob", Args: rawJSON(`{"n":5}`), RunAt: e.clock.Now().Add(24 * time.Hour)})
	if err := e.s.Pause(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	e.enqueue(NewJob{Class: "FixtureJob", Queue: "paused", Args: rawJSON(`{"n":6}`)})
	e.enqueue(NewJob{Class: "FixtureJob", Queue: "running", Args: rawJSON(`{"n":7}`)})
	// Two more done, finished together a second later: one finish-time entry.
	e.enqueue(NewJob{Class: "FixtureJob", Queue: "later", Args: rawJSON(`{"n":8}`)})
	e.enqueue(NewJob{Class: "FixtureJob", Queue: "later", Args: rawJSON(`{"n":9}`)})
	e.clock.Advance(time.Second)
	lc, err := e.s.Consume(ConsumerConfig{Name: "later", Queues: []string{"later"}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, b := take(t, lc), take(t, lc)
	a.Finish(Ack())
	b.Finish(Ack())
	e.flush()
	lc.Close(ctx)
	rc := e.consumer("running")
	take(t, rc) // running when the store closes
	if err := e.s.Check(); err != nil {
		t.Fatal(err)
	}
	e.s.Close()
	e.s = nil
	out := filepath.Join("testdata", fmt.Sprintf("store-format%d.txt", storeFormat))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, fixtureHeader, storeFormat)
	if err := dumpStore(path, f); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

const fixtureHeader = `# A queue store of format %d, as a dump of its buckets: "seq <bucket path> <n>"
# and "kv <bucket path> <key hex> <value hex>"; nested buckets are paths joined
# by '/' with hex names. Written by TestWriteFixture (that release's own code)
# with a fixed clock (2026-03-01 12:00 UTC): job 1 done, 2 dead (unique key
# held 10 days), 3 retrying, 4 ready (unique key), 5 scheduled, 6 ready in the
# paused queue "paused", 7 running when its process stopped, 8 and 9 done
# together in queue "later" two seconds after job 1.
`

// dumpStore writes every bucket of a store file as the fixtures' text.
func dumpStore(path string, w io.Writer) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	var dump func(b *bolt.Bucket, name string) error
	dump = func(b *bolt.Bucket, name string) error {
		fmt.Fprintf(w, "seq %s %d\n", name, b.Sequence())
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				return dump(b.Bucket(k), name+"/"+hex.EncodeToString(k))
			}
			_, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(fmt.Sprintf("kv %s %x %x", name, k, v)))
			return err
		})
	}
	return db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return dump(b, string(name)) })
	})
}
