package queue

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// TestInconsistentCountersSurfaceOnce: a commit that finds a counter about to
// go below zero holds it at zero and reports the inconsistency through Err,
// once; every other write goes on (it used to fail every caller of that commit
// and of every commit after, every 100 ms, for ever). The next start recounts.
func TestInconsistentCountersSurfaceOnce(t *testing.T) {
	t.Parallel()
	logged := &errorLog{}
	e := setup(t, func(o *Options) { o.Logger = slog.New(logged) })
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
	// Found again, in another counter: the commit still succeeds, and the
	// one error stays as it was, logged once.
	aerr := e.s.admin(ctx, func(tx *txn) error {
		q, _ := tx.queueByName("other", false)
		tx.delta(q.id, StateReady, -4) // 3 ready
		return nil
	})
	if aerr != nil {
		t.Fatalf("a commit that found the counters inconsistent again failed: %v", aerr)
	}
	if again := e.s.Err(); again != err {
		t.Fatalf("Err changed from %v to %v", err, again)
	}
	if n := logged.count("store inconsistency"); n != 1 {
		t.Fatalf("the inconsistency was logged %d times, want once", n)
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

// errorLog is a slog handler that keeps the messages of error records.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *errorLog) WithGroup(string) slog.Handler                { return h }

func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

// count returns how many error records' messages hold s.
func (h *errorLog) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}
