package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestInconsistentCountersSurfaceOnce: a commit that finds a counter about to
// go below zero holds it at zero and reports the inconsistency through Err,
// once; every other write goes on (it used to fail every caller of that commit
// and of every commit after, every 100 ms, for ever). The next start recounts.
func TestInconsistentCountersSurfaceOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	r := e.enqueue(NewJob{})
	c := e.consumer("default")
	if err := take(t, c).Finish(Ack()); err != nil {
		t.Fatal(err)
	}
	e.flush()
	// Break the counters: the done job is no longer counted, on disk or in
	// memory.
	err := e.s.admin(ctx, func(tx *txn) error {
		q, _ := tx.queueByName("default", false)
		tx.delta(q.id, StateDone, -1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Err(); err != nil {
		t.Fatalf("Err before anything went wrong: %v", err)
	}
	if err := e.s.Discard(ctx, r.ID); err != nil { // takes the count below zero
		t.Fatal(err)
	}
	for range 3 {
		e.enqueue(NewJob{Queue: "other"}) // writes go on
	}
	e.flush()
	err = e.s.Err()
	if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), `done jobs in queue "default"`) {
		t.Fatalf("Err: %v", err)
	}
	// The counter was held at zero, the index is empty: they agree again,
	// and a restart recounts all of them anyway.
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	e.open()
	if err := e.s.Err(); err != nil {
		t.Fatalf("Err after the restart: %v", err)
	}
	if q, _ := e.s.Queue("other"); q.Counts[StateReady] != 3 {
		t.Fatalf("recounted %+v", q)
	}
}
