package ui

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/queue"
)

// TestReadyzNamesStoreInconsistency: when a commit finds the queue's
// counters disagreeing with its indexes, /readyz goes red (503) naming the
// inconsistency and what to do, and stays so with the same one error while
// writes go on (no outage); after a restart, which recounts, it is green.
//
// The inconsistency is made on the file: two ready jobs whose stored
// counters are then wiped (the store's "counts" bucket), so discarding them
// takes the ready count below zero.
func TestReadyzNamesStoreInconsistency(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.bolt")
	st, err := queue.Open(path, queue.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for range 2 {
		res, err := st.Enqueue(context.Background(), queue.NewJob{Queue: "default", Class: "NoopJob"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	wipeCounters(t, path)

	r := inconsistentRig(t, path)
	if got := into[readyJSON](t, r.call("GET", "/readyz", ""), http.StatusOK); !got.Ready {
		t.Fatalf("readyz before any commit found it: %+v", got)
	}
	into[actionJSON](t, r.call("POST", "/api/v1/jobs/"+strconv.FormatUint(ids[0], 10)+"/discard", ""), http.StatusOK)
	first := into[readyJSON](t, r.call("GET", "/readyz", ""), http.StatusServiceUnavailable)
	q := first.Checks[1]
	if first.Ready || q.Name != "queue" || q.OK || !strings.Contains(q.Detail, queue.ErrInconsistent.Error()) ||
		!strings.Contains(q.Detail, `ready jobs in queue "default"`) {
		t.Fatalf("readyz after the inconsistency: %+v", first)
	}
	// It is found again: the same one error stays, and writes go on.
	into[actionJSON](t, r.call("POST", "/api/v1/jobs/"+strconv.FormatUint(ids[1], 10)+"/discard", ""), http.StatusOK)
	into[enqueuedJSON](t, r.call("POST", "/api/v1/jobs", `{"class":"NoopJob"}`), http.StatusCreated)
	again := into[readyJSON](t, r.call("GET", "/readyz", ""), http.StatusServiceUnavailable)
	if again.Checks[1] != q {
		t.Errorf("readyz changed its error: %+v, was %+v", again.Checks[1], q)
	}
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}

	// The restart recounts: green, and the counters agree with the jobs.
	r = inconsistentRig(t, path)
	if got := into[readyJSON](t, r.call("GET", "/readyz", ""), http.StatusOK); !got.Ready {
		t.Fatalf("readyz after the restart: %+v", got)
	}
	if n := r.store.Counts()[queue.StateReady]; n != 1 {
		t.Errorf("ready count after the recount: %d, want 1", n)
	}
	if err := r.store.Check(); err != nil {
		t.Error(err)
	}
}

// wipeCounters deletes every stored counter of the closed queue file at
// path, as if they had been lost: the store reads them as zero.
func wipeCounters(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("counts"))
		if b == nil {
			t.Fatal(`the queue file has no "counts" bucket`)
		}
		var keys [][]byte
		if err := b.ForEach(func(k, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
			return err
		}
		if len(keys) == 0 {
			t.Fatal("no counter to wipe")
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
}

// inconsistentRig opens the store at path and serves it, as newRig does
// for a fresh store. The test closes the store.
func inconsistentRig(t *testing.T, path string) *rig {
	t.Helper()
	st, err := queue.Open(path, queue.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &rig{t: t, store: st, reg: lanes.NewRegistry(), topo: lanes.DefaultTopology()}
	if err := lanes.RegisterBuiltins(r.reg); err != nil {
		t.Fatal(err)
	}
	r.ts = httptest.NewUnstartedServer(nil)
	r.host = r.ts.Listener.Addr().String()
	r.srv, err = New(Config{Store: st, Registry: r.reg, Topology: r.topo, Token: testToken,
		AllowedHosts: HostsFor(r.host), Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.ts.Config.Handler = r.srv
	r.ts.Start()
	t.Cleanup(r.ts.Close)
	return r
}
