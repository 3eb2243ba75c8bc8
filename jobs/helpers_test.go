package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/queue"
)

// Rig is a catalog on a real queue store and a real SQLite database in a
// directory, with a shared fake clock. Tests of this package and of
// jobs_test build it; the crash tests build it in a subprocess too.
type Rig struct {
	T     testing.TB
	Dir   string
	Clock *cron.FakeClock
	Store *queue.Store
	DB    *data.DB
	Reg   *lanes.Registry
	Cat   *Catalog

	closeOnce sync.Once
}

// RigStart is the rigs' clock at start: a Monday noon.
var RigStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// NewRig opens (or reopens) the storage in dir and builds the catalog;
// tune adjusts the options. Closing is registered with t.Cleanup, after a
// consistency check of both stores.
func NewRig(t testing.TB, dir string, tune ...func(*Options)) *Rig {
	t.Helper()
	return NewRigClock(t, dir, cron.NewFakeClock(RigStart), tune...)
}

// NewRigClock is NewRig with the given clock (shared with a sandbox).
func NewRigClock(t testing.TB, dir string, clk *cron.FakeClock, tune ...func(*Options)) *Rig {
	t.Helper()
	r := &Rig{T: t, Dir: dir, Clock: clk}
	log := testlog.New(t)
	st, err := queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{Now: r.Clock.Now, Logger: log, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db, err := data.Open(context.Background(), filepath.Join(dir, "conveyor.db"), data.Options{Now: r.Clock.Now, Logger: log, ReadConns: 4})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	r.Store, r.DB = st, db
	t.Cleanup(r.Close)
	r.Reg = lanes.NewRegistry()
	opts := Options{DB: db, Store: st, Registry: r.Reg, Topology: lanes.DefaultTopology(), MediaDir: filepath.Join(dir, "media"),
		Now: r.Clock.Now, Logger: log}
	for _, f := range tune {
		f(&opts)
	}
	if r.Cat, err = New(opts); err != nil {
		t.Fatal(err)
	}
	if err := r.Cat.Register(); err != nil {
		t.Fatal(err)
	}
	return r
}

// Close checks both stores and closes them (once; also at cleanup).
func (r *Rig) Close() {
	r.closeOnce.Do(func() {
		if err := r.DB.IntegrityCheck(context.Background()); err != nil {
			r.T.Errorf("sqlite: %v", err)
		}
		r.DB.Close()
		if err := r.Store.Check(); err != nil && !errors.Is(err, queue.ErrClosed) {
			r.T.Errorf("queue check: %v", err)
		}
		r.Store.Close()
	})
}

// AddAccounts creates n accounts named prefix0…, with every switch on.
func (r *Rig) AddAccounts(n int, prefix string) []*data.Account {
	r.T.Helper()
	out := make([]*data.Account, n)
	for i := range out {
		a := &data.Account{Username: fmt.Sprintf("%s%d", prefix, i)}
		for _, sw := range data.Switches() {
			*a.Switch(sw) = true
		}
		if err := r.DB.CreateAccount(context.Background(), a); err != nil {
			r.T.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// Perform runs job's handler once, as a lane would.
func (r *Rig) Perform(job *queue.Job) error {
	cls, ok := r.Reg.Lookup(job.Class)
	if !ok {
		r.T.Fatalf("class %s is not registered", job.Class)
	}
	return cls.Handler.Perform(context.Background(), job)
}

// Enqueue makes a job through the registry and enqueues it, returning it
// as stored (attempt 1, as a lane would hand it over).
func (r *Rig) Enqueue(req lanes.JobRequest) *queue.Job {
	r.T.Helper()
	nj, err := r.Reg.NewJob(lanes.DefaultTopology(), req)
	if err != nil {
		r.T.Fatal(err)
	}
	res, err := r.Store.Enqueue(context.Background(), nj)
	if err != nil {
		r.T.Fatal(err)
	}
	j, err := r.Store.Get(res.ID)
	if err != nil {
		r.T.Fatal(err)
	}
	j.Attempt = 1
	return j
}

// Jobs returns the unfinished jobs of class (scheduled and ready), by id.
func (r *Rig) Jobs(class string) []*queue.Job {
	r.T.Helper()
	var out []*queue.Job
	for _, st := range []queue.State{queue.StateScheduled, queue.StateReady} {
		for after := ""; ; {
			p, err := r.Store.List(queue.ListFilter{State: st, Class: class, After: after, Limit: 1000})
			if err != nil {
				r.T.Fatal(err)
			}
			out = append(out, p.Jobs...)
			if after = p.Next; after == "" {
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b *queue.Job) int { return int(a.ID) - int(b.ID) })
	for _, j := range out {
		j.Attempt = max(j.Attempt, 1)
	}
	return out
}

// AccountOf returns the account id in a per-account job's args.
func AccountOf(t testing.TB, j *queue.Job) int64 {
	var a AccountArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		t.Fatalf("job %d args %s: %v", j.ID, j.Args, err)
	}
	return a.AccountID
}

// laneReq is a request for a job of class on queue with a context.
func laneReq(class, queueName string, ctx map[string]string) lanes.JobRequest {
	return lanes.JobRequest{Class: class, Queue: queueName, Context: ctx}
}

// ParseFrames is parseFrames for the tests of jobs_test: the images only.
func ParseFrames(asked []int64, answer []byte) ([][]byte, error) {
	frames, err := parseFrames(asked, answer)
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = f.image
	}
	return out, err
}
