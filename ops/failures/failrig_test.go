package failures

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// testClock is a settable clock shared by the store, the database and the
// failure pipeline.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// failRig is the failure pipeline over real storage in a temp dir: SQLite,
// the bbolt queue, a manual broadcaster, the writer, tracker, capture and
// retrier, and optionally the lanes.
type failRig struct {
	t       *testing.T
	clock   *testClock
	db      *data.DB
	store   *queue.Store
	bus     *events.Bus
	reg     *lanes.Registry
	topo    lanes.Topology
	writer  *data.FailureWriter
	tracker *Tracker
	capture *Capture
	retrier *Retrier
	pool    *lanes.Pool
}

type failRigOpts struct {
	realClock bool          // time.Now instead of the settable clock
	classes   []lanes.Class // registered besides the builtins
	pool      bool          // run the lanes with the capture middleware
}

func newFailRig(t *testing.T, o failRigOpts) *failRig {
	t.Helper()
	dir := t.TempDir()
	r := &failRig{t: t, clock: newTestClock(), reg: lanes.NewRegistry(), topo: lanes.DefaultTopology()}
	now := r.clock.Now
	if o.realClock {
		now = time.Now
	}
	var err error
	r.db, err = data.Open(t.Context(), filepath.Join(dir, "conveyor.db"), data.Options{ReadConns: 4, Now: now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.store, err = queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{NoSync: true, Now: now, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	r.bus = events.NewBus(events.Options{Manual: true})
	if r.tracker, err = NewTracker(TrackerOptions{DB: r.db, Bus: r.bus, Logger: testlog.New(t)}); err != nil {
		t.Fatal(err)
	}
	r.writer = data.NewFailureWriter(r.db, data.FailureWriterOptions{OnFlush: r.tracker.RecordFailures, Logger: testlog.New(t)})
	if r.capture, err = NewCapture(CaptureOptions{Writer: r.writer, DB: r.db, Registry: r.reg, Bus: r.bus, Now: now, Logger: testlog.New(t)}); err != nil {
		t.Fatal(err)
	}
	if err := lanes.RegisterBuiltins(r.reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.classes {
		r.reg.MustRegister(c)
	}
	if r.retrier, err = NewRetrier(RetrierOptions{DB: r.db, Store: r.store, Registry: r.reg, Topology: r.topo, Bus: r.bus,
		Now: now, Logger: testlog.New(t)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		if r.pool != nil {
			if err := r.pool.Stop(ctx); err != nil {
				t.Errorf("pool stop: %v", err)
			}
		}
		if err := r.capture.Close(ctx); err != nil {
			t.Errorf("capture close: %v", err)
		}
		if err := r.writer.Close(ctx); err != nil {
			t.Errorf("writer close: %v", err)
		}
		r.tracker.Close()
		r.bus.Close()
		if err := r.db.IntegrityCheck(ctx); err != nil {
			t.Errorf("integrity: %v", err)
		}
		if err := r.db.Close(); err != nil {
			t.Errorf("db close: %v", err)
		}
		if err := r.store.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		if err := r.store.Close(); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	if o.pool {
		r.pool, err = lanes.New(r.store, r.reg, r.topo, lanes.Options{Middleware: []lanes.Middleware{r.capture.Middleware()},
			Retryable: RetryableError, ShutdownTimeout: time.Second, Logger: testlog.New(t), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.pool.Start(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// settle waits until every failure and outcome captured so far is written.
func (r *failRig) settle() {
	r.t.Helper()
	if err := r.writer.Flush(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	if err := r.capture.Flush(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
}

// failures lists every failure, oldest first.
func (r *failRig) failures() []*data.Failure {
	r.t.Helper()
	fs, _, err := r.db.FindFailures(r.t.Context(), data.FailureFilter{
		Sort: []data.SortKey{{Field: data.FieldID}}, Limit: data.MaxFailureLimit})
	if err != nil {
		r.t.Fatal(err)
	}
	return fs
}

func (r *failRig) failure(id int64) *data.Failure {
	r.t.Helper()
	f, err := r.db.FailureByID(r.t.Context(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func (r *failRig) issues() []*data.Issue {
	r.t.Helper()
	is, _, err := r.db.FindIssues(r.t.Context(), data.IssueFilter{Limit: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	return is
}

// insert stores failures as given (the capture is bypassed).
func (r *failRig) insert(fs ...*data.Failure) {
	r.t.Helper()
	for _, f := range fs {
		if f.Class == "" {
			f.Class = lanes.NoopJob
		}
		if f.Queue == "" {
			f.Queue = "default"
		}
		if f.Kind == "" {
			f.Kind = fault.Transient
		}
		if f.Fingerprint == "" {
			f.Fingerprint = Fingerprint(SourceJobFailure, string(f.Kind), f.Class, f.ErrorMessage)
		}
	}
	if err := r.db.InsertFailures(r.t.Context(), fs); err != nil {
		r.t.Fatal(err)
	}
}

func (r *failRig) enqueue(nj queue.NewJob) uint64 {
	r.t.Helper()
	res, err := r.store.Enqueue(r.t.Context(), nj)
	if err != nil {
		r.t.Fatal(err)
	}
	return res.ID
}

func (r *failRig) job(id uint64) *queue.Job {
	r.t.Helper()
	j, err := r.store.Get(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return j
}

// waitJob waits, on the store's change notifications, until job id is in
// one of the states.
func (r *failRig) waitJob(id uint64, states ...queue.State) *queue.Job {
	r.t.Helper()
	sub := r.store.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(r.t.Context(), 30*time.Second)
	defer cancel()
	for {
		j := r.job(id)
		for _, st := range states {
			if j.State == st {
				return j
			}
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			r.t.Fatalf("job %d never reached %v; it is %s", id, states, j.State)
		}
	}
}

// topics flushes the broadcaster and returns the topics published since the
// last call.
func (r *failRig) topics(ch <-chan events.Notification) []events.Topic {
	r.t.Helper()
	r.bus.Flush()
	select {
	case n := <-ch:
		return n.Topics
	default:
		return nil
	}
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }
