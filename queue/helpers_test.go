package queue

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"conveyor/internal/testlog"
)

// fakeClock is the injectable clock of the tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	s     *Store
	clock *fakeClock
	path  string
	opts  Options
}

// setup opens a store on a real file in a temp dir, with a fake clock. On
// cleanup it runs the store check, then closes the store.
func setup(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	return setupAt(t, filepath.Join(t.TempDir(), "queue.bolt"), opts...)
}

// setupAt is setup on a store file the test has prepared.
func setupAt(t *testing.T, path string, opts ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), path: path}
	e.opts = Options{Now: e.clock.Now, Logger: testlog.New(t), JanitorInterval: time.Hour}
	for _, o := range opts {
		o(&e.opts)
	}
	e.open()
	t.Cleanup(func() {
		if e.s == nil {
			return
		}
		if err := e.s.Check(); err != nil {
			t.Errorf("store check failed:\n%v", err)
		}
		if err := e.s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := Open(e.path, e.opts)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.s = s
}

// reopen checks and closes the store, then opens it again (a clean restart).
func (e *env) reopen() {
	e.t.Helper()
	if err := e.s.Check(); err != nil {
		e.t.Fatalf("store check before reopen: %v", err)
	}
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.open()
}

// crash simulates the death of the process, as the next process finds it: the
// store's file as of its last commit and the running journal as it is at this
// moment (the page cache keeps both when a process dies). during, when set,
// runs first, with the writer held inside a transaction of its own: whatever it
// hands the writer is not committed. The store is then closed and the copy
// opened in its place; consumers of the old store are dead with it.
func (e *env) crash(during func()) {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "queue.bolt")
	err := e.s.admin(context.Background(), func(*txn) error {
		if during != nil {
			during()
		}
		// Inside a write transaction nothing of it is on the file yet.
		for _, suffix := range []string{"", ".running"} {
			b, err := os.ReadFile(e.path + suffix)
			if err != nil {
				return err
			}
			if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("crash: %v", err)
	}
	e.s.Close()
	e.path = path
	e.open()
}

func (e *env) enqueue(nj NewJob) Result {
	e.t.Helper()
	if nj.Class == "" {
		nj.Class = "NoopJob"
	}
	if nj.Queue == "" {
		nj.Queue = "default"
	}
	r, err := e.s.Enqueue(context.Background(), nj)
	if err != nil {
		e.t.Fatalf("enqueue %+v: %v", nj, err)
	}
	return r
}

func (e *env) get(id uint64) *Job {
	e.t.Helper()
	j, err := e.s.Get(id)
	if err != nil {
		e.t.Fatalf("get %d: %v", id, err)
	}
	return j
}

func (e *env) flush() {
	e.t.Helper()
	if err := e.s.Flush(context.Background()); err != nil {
		e.t.Fatalf("flush: %v", err)
	}
}

// advance moves the clock and wakes the writer so it acts on due work, then
// waits for it.
func (e *env) advance(d time.Duration) {
	e.clock.Advance(d)
	e.s.kick()
	e.flush()
}

func (e *env) wantState(id uint64, want State) *Job {
	e.t.Helper()
	j := e.get(id)
	if j.State != want {
		e.t.Fatalf("job %d is %s, want %s", id, j.State, want)
	}
	return j
}

func (e *env) consumer(queues ...string) *Consumer {
	e.t.Helper()
	c, err := e.s.Consume(ConsumerConfig{Name: "test", Queues: queues, Concurrency: 1})
	if err != nil {
		e.t.Fatalf("consume: %v", err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (s *Store) mustConsume(t *testing.T, cfg ConsumerConfig) *Consumer {
	t.Helper()
	c, err := s.Consume(cfg)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// take waits for the next claim and begins its attempt (no lease).
func take(t *testing.T, c *Consumer) *Claim {
	t.Helper()
	cl := claim(t, c)
	if err := cl.Begin(context.Background(), 0); err != nil {
		t.Fatalf("begin %d: %v", cl.ID, err)
	}
	return cl
}

// claim waits for the next claim. The wait is bounded by the test's deadline,
// not a guess.
func claim(t *testing.T, c *Consumer) *Claim {
	t.Helper()
	ctx := testContext(t)
	select {
	case j, ok := <-c.Claims():
		if !ok {
			t.Fatal("consumer closed")
		}
		return j
	case <-ctx.Done():
		t.Fatal("no job claimed before the test deadline")
	}
	return nil
}

// noJob checks that nothing is delivered once the writer has run a cycle.
func noJob(t *testing.T, e *env, c *Consumer) {
	t.Helper()
	e.s.kick()
	e.flush()
	select {
	case j := <-c.Claims():
		t.Fatalf("unexpected job %d (%s) delivered", j.ID, j.Queue)
	default:
	}
}

func testContext(t *testing.T) context.Context {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }
