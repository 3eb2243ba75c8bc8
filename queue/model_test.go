package queue

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

var modelSeed = flag.Uint64("model.seed", 0, "seed of TestModel (0: random; printed on failure)")

// TestModel runs thousands of random operations from several goroutines against
// the store and an in-memory model of what each should do, and compares the two
// after every operation and every round. Each goroutine owns one queue and its
// jobs, so its part of the model is exact while the writer batches everybody's
// work into shared transactions. The clock moves only between rounds, at a
// barrier. At the end the store is restarted with jobs still running, and the
// model's orphan rules are checked too.
//
// On failure it prints its seed; replay with -model.seed=N (the operations of
// each goroutine are then the same; their interleaving is up to the scheduler).
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	workers, rounds, opsPerRound := 4, 25, 25
	if os.Getenv("CONVEYOR_CHAOS") != "" {
		workers, rounds, opsPerRound = 6, 200, 50
	}
	t.Logf("seed %d (replay with -model.seed=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with go test ./queue -run TestModel -model.seed=%d", seed, seed)
		}
	}()
	e := setup(t, func(o *Options) { o.NoSync = true; o.MaxOrphans = 3; o.Logger = nil })
	ms := make([]*modelWorker, workers)
	for i := range ms {
		ms[i] = newModelWorker(t, e, i, seed)
	}
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for i, m := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range opsPerRound {
					if errs[i] = m.step(); errs[i] != nil {
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Barrier: move the clock, let the writer promote, verify everything.
		e.advance(time.Duration(rand.New(rand.NewPCG(seed, uint64(round))).IntN(40)) * time.Second)
		for _, m := range ms {
			m.promote()
			if err := m.verifyAll(); err != nil {
				t.Fatalf("after round %d: %v", round, err)
			}
		}
		if err := e.s.Check(); err != nil {
			t.Fatalf("store check after round %d: %v", round, err)
		}
	}
	// The process dies with jobs still held: every held job is begun, so each
	// is an orphan with a strike after the restart.
	for _, m := range ms {
		if err := m.beginAllHeld(); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.Check(); err != nil {
		t.Fatal(err)
	}
	e.crash(nil)
	for _, m := range ms {
		m.rescued()
		m.promote()
		if err := m.verifyAll(); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	}
}

type mjob struct {
	id          uint64
	state       State
	attempt     int
	maxAttempts int
	runAt       time.Time
	key         string
	until       time.Time // unique window end
	orphans     int
	deleted     bool
}

type modelWorker struct {
	t      *testing.T
	e      *env
	g      int
	rnd    *rand.Rand
	queue  string
	c      *Consumer
	jobs   map[uint64]*mjob
	order  []uint64 // all ids, ascending
	holder map[string]uint64
	held   []*Claim // claimed jobs the worker holds (running)
	conc   int      // the consumer's concurrency: it claims nothing while it holds that many
	paused bool
}

func newModelWorker(t *testing.T, e *env, g int, seed uint64) *modelWorker {
	m := &modelWorker{t: t, e: e, g: g, rnd: rand.New(rand.NewPCG(seed, uint64(g)+1)), queue: "q" + strconv.Itoa(g),
		jobs: map[uint64]*mjob{}, holder: map[string]uint64{}}
	m.newConsumer()
	return m
}

func (m *modelWorker) newConsumer() {
	m.conc = 1 + m.rnd.IntN(3)
	c, err := m.e.s.Consume(ConsumerConfig{Name: m.queue, Queues: []string{m.queue}, Concurrency: m.conc, Closed: true})
	if err != nil {
		m.t.Fatal(err)
	}
	m.c = c
}

func (m *modelWorker) now() time.Time { return m.e.clock.Now() }

func (m *modelWorker) fail(format string, a ...any) error {
	return fmt.Errorf("worker %d: "+format, append([]any{m.g}, a...)...)
}

func (m *modelWorker) step() error {
	ctx := context.Background()
	switch op := m.rnd.IntN(100); {
	case op < 30:
		return m.enqueue()
	case op < 50:
		return m.claim()
	case op < 75:
		return m.finishOne()
	case op < 80:
		m.paused = !m.paused
		var err error
		if m.paused {
			err = m.e.s.Pause(ctx, m.queue)
		} else {
			err = m.e.s.Resume(ctx, m.queue)
		}
		return err
	case op < 83:
		n, err := m.e.s.Clear(ctx, m.queue)
		if err != nil {
			return err
		}
		want := 0
		for _, j := range m.jobs {
			if j.state == StateReady && !j.deleted {
				m.remove(j)
				want++
			}
		}
		if n != want {
			return m.fail("clear removed %d, model %d", n, want)
		}
		return nil
	case op < 90:
		return m.retryNow()
	case op < 95:
		return m.discard()
	default:
		return m.verifyOne()
	}
}

func (m *modelWorker) pick() *mjob {
	if len(m.order) == 0 {
		return nil
	}
	return m.jobs[m.order[m.rnd.IntN(len(m.order))]]
}

func (m *modelWorker) keyHolder(key string) (*mjob, bool) {
	id, ok := m.holder[key]
	if !ok {
		return nil, false
	}
	h := m.jobs[id]
	if h.deleted {
		return nil, false
	}
	if !h.state.Finished() {
		return h, true
	}
	return h, h.until.After(m.now())
}

func (m *modelWorker) release(j *mjob) {
	if j.key == "" || m.holder[j.key] != j.id {
		return
	}
	if !j.until.After(m.now()) {
		delete(m.holder, j.key)
	}
}

func (m *modelWorker) remove(j *mjob) {
	j.deleted = true
	if j.key != "" && m.holder[j.key] == j.id {
		delete(m.holder, j.key)
	}
	m.order = slices.DeleteFunc(m.order, func(id uint64) bool { return id == j.id })
}

func (m *modelWorker) enqueue() error {
	n := 1 + m.rnd.IntN(4)
	now := m.now()
	batch := make([]NewJob, n)
	for i := range batch {
		nj := NewJob{Class: "ModelJob", Queue: m.queue, MaxAttempts: 1 + m.rnd.IntN(3)}
		if m.rnd.IntN(3) == 0 {
			nj.RunAt = now.Add(time.Duration(1+m.rnd.IntN(60)) * time.Second)
		}
		if m.rnd.IntN(3) == 0 {
			nj.UniqueKey = fmt.Sprintf("g%d-k%d", m.g, m.rnd.IntN(4))
			if m.rnd.IntN(2) == 0 {
				nj.UniqueFor = time.Duration(m.rnd.IntN(90)) * time.Second
			}
		}
		batch[i] = nj
	}
	rs, err := m.e.s.EnqueueMany(context.Background(), batch)
	if err != nil {
		return m.fail("enqueue: %v", err)
	}
	for i, nj := range batch {
		r := rs[i]
		if nj.UniqueKey != "" {
			if h, held := m.keyHolder(nj.UniqueKey); held {
				if !r.Duplicate || r.ID != h.id || r.State != h.state {
					return m.fail("enqueue with held key %q: got %+v, want duplicate of %d (%s)", nj.UniqueKey, r, h.id, h.state)
				}
				continue
			}
		}
		if r.Duplicate {
			return m.fail("unexpected duplicate %+v for %+v", r, nj)
		}
		j := &mjob{id: r.ID, state: StateReady, maxAttempts: nj.MaxAttempts, runAt: now, key: nj.UniqueKey}
		if nj.RunAt.After(now) {
			j.state, j.runAt = StateScheduled, nj.RunAt
		}
		if nj.UniqueKey != "" {
			if nj.UniqueFor > 0 {
				j.until = now.Add(nj.UniqueFor)
			}
			m.holder[nj.UniqueKey] = j.id
		}
		if r.State != j.state {
			return m.fail("enqueue state %s, model %s", r.State, j.state)
		}
		m.jobs[j.id] = j
		m.order = append(m.order, j.id)
	}
	return nil
}

// readyIDs returns the model's ready jobs in claim order.
func (m *modelWorker) readyIDs() []uint64 {
	var ids []uint64
	for _, id := range m.order {
		if j := m.jobs[id]; j.state == StateReady {
			ids = append(ids, id)
		}
	}
	return ids
}

func (m *modelWorker) claim() error {
	ready := m.readyIDs()
	if len(ready) == 0 || m.paused || len(m.held) >= m.conc {
		return nil
	}
	m.c.SetOpen(true)
	var first *Claim
	select {
	case first = <-m.c.Claims():
	case <-testContext(m.t).Done():
		return m.fail("nothing claimed although the model has ready jobs %v", ready)
	}
	m.c.SetOpen(false)
	m.e.s.kick()
	if err := m.e.s.Flush(context.Background()); err != nil {
		return err
	}
	got := []*Claim{first}
	for more := true; more; {
		select {
		case j := <-m.c.Claims():
			got = append(got, j)
		default:
			more = false
		}
	}
	sort.Slice(got, func(a, b int) bool { return got[a].ID < got[b].ID })
	for i, j := range got {
		if i >= len(ready) || j.ID != ready[i] {
			return m.fail("claimed %d, but the model's ready jobs in order are %v", j.ID, ready)
		}
		mj := m.jobs[j.ID]
		mj.state = StateRunning
		if j.Attempt != mj.attempt+1 {
			return m.fail("claimed job %d at attempt %d, model %d", j.ID, j.Attempt, mj.attempt+1)
		}
		m.held = append(m.held, j)
	}
	return nil
}

func (m *modelWorker) finishOne() error {
	if len(m.held) == 0 {
		return nil
	}
	i := m.rnd.IntN(len(m.held))
	j := m.held[i]
	m.held = slices.Delete(m.held, i, i+1)
	mj := m.jobs[j.ID]
	op := m.rnd.IntN(5)
	// An attempt's outcome needs its Begin; a release may come without.
	if op != 4 || m.rnd.IntN(2) == 0 {
		if err := j.Begin(context.Background(), 0); err != nil {
			return err
		}
	}
	now := m.now()
	var err error
	switch op {
	case 0:
		err = j.Finish(Ack())
		mj.attempt++
		mj.state = StateDone
		m.release(mj)
	case 1:
		at := now.Add(time.Duration(m.rnd.IntN(30)) * time.Second)
		err = j.Finish(Fail(AttemptError{Message: "model failure"}, at))
		mj.attempt++
		if mj.attempt >= mj.maxAttempts {
			mj.state = StateDead
			m.release(mj)
		} else {
			mj.state, mj.runAt = StateRetry, at
		}
	case 2:
		err = j.Finish(Kill(AttemptError{Message: "model kill"}))
		mj.attempt++
		mj.state = StateDead
		m.release(mj)
	case 3:
		at := now.Add(time.Duration(m.rnd.IntN(30)) * time.Second)
		err = j.Finish(Snooze(at))
		mj.state, mj.runAt = StateScheduled, at
		if !at.After(now) {
			mj.state, mj.runAt = StateReady, now
		}
	case 4:
		err = j.Finish(Release())
		mj.state = StateReady
	}
	if err != nil {
		return err
	}
	if err := m.e.s.Flush(context.Background()); err != nil {
		return err
	}
	m.promote()
	return m.verify(mj)
}

// promote applies the writer's promotion of due jobs to the model.
func (m *modelWorker) promote() {
	now := m.now()
	for _, j := range m.jobs {
		if (j.state == StateScheduled || j.state == StateRetry) && !j.runAt.After(now) && !j.deleted {
			j.state = StateReady
		}
	}
}

func (m *modelWorker) retryNow() error {
	j := m.pick()
	if j == nil {
		return nil
	}
	err := m.e.s.RetryNow(context.Background(), j.id)
	switch j.state {
	case StateRunning:
		if !errors.Is(err, ErrRunning) {
			return m.fail("retry now of running %d: %v", j.id, err)
		}
		return nil
	case StateReady, StateDone:
		if !errors.Is(err, ErrWrongState) {
			return m.fail("retry now of %s %d: %v", j.state, j.id, err)
		}
		return nil
	}
	if err != nil {
		return m.fail("retry now of %s %d: %v", j.state, j.id, err)
	}
	if j.state == StateDead {
		if j.attempt >= j.maxAttempts {
			j.maxAttempts = j.attempt + 1
		}
		if j.key != "" {
			if h, held := m.keyHolder(j.key); held && h.id != j.id {
				j.key, j.until = "", time.Time{}
			} else {
				m.holder[j.key] = j.id
			}
		}
	}
	j.state, j.runAt = StateReady, m.now()
	return m.verify(j)
}

func (m *modelWorker) discard() error {
	j := m.pick()
	if j == nil {
		return nil
	}
	err := m.e.s.Discard(context.Background(), j.id)
	if j.state == StateRunning {
		if !errors.Is(err, ErrRunning) {
			return m.fail("discard of running %d: %v", j.id, err)
		}
		return nil
	}
	if err != nil {
		return m.fail("discard %d: %v", j.id, err)
	}
	m.remove(j)
	if _, err := m.e.s.Get(j.id); !errors.Is(err, ErrNotFound) {
		return m.fail("discarded job %d still readable: %v", j.id, err)
	}
	return nil
}

func (m *modelWorker) verifyOne() error {
	if j := m.pick(); j != nil {
		return m.verify(j)
	}
	return nil
}

func (m *modelWorker) verify(mj *mjob) error {
	j, err := m.e.s.Get(mj.id)
	if err != nil {
		return m.fail("get %d: %v", mj.id, err)
	}
	if j.State != mj.state || j.Attempt != mj.attempt && mj.state != StateRunning || j.Orphans != mj.orphans ||
		j.MaxAttempts != mj.maxAttempts || j.UniqueKey != mj.key {
		return m.fail("job %d is %s attempt %d/%d orphans %d key %q; model %s attempt %d/%d orphans %d key %q",
			mj.id, j.State, j.Attempt, j.MaxAttempts, j.Orphans, j.UniqueKey, mj.state, mj.attempt, mj.maxAttempts, mj.orphans, mj.key)
	}
	if (mj.state == StateScheduled || mj.state == StateRetry) && !j.RunAt.Equal(mj.runAt) {
		return m.fail("job %d runs at %v, model %v", mj.id, j.RunAt, mj.runAt)
	}
	return nil
}

func (m *modelWorker) verifyAll() error {
	counts := map[State]int64{}
	for _, id := range m.order {
		j := m.jobs[id]
		counts[j.state]++
		if err := m.verify(j); err != nil {
			return err
		}
	}
	q, _ := m.e.s.Queue(m.queue)
	for _, st := range States {
		if q.Counts[st] != counts[st] {
			return m.fail("queue %s has %d %s jobs, model %d", m.queue, q.Counts[st], st, counts[st])
		}
	}
	if q.Paused != m.paused {
		return m.fail("queue paused %v, model %v", q.Paused, m.paused)
	}
	return nil
}

func (m *modelWorker) beginAllHeld() error {
	for _, j := range m.held {
		if err := j.Begin(context.Background(), 0); err != nil {
			return err
		}
	}
	return nil
}

// rescued applies the restart's orphan rules to the model and gives the worker
// a consumer on the new store.
func (m *modelWorker) rescued() {
	for _, j := range m.held {
		mj := m.jobs[j.ID]
		mj.attempt++
		mj.orphans++
		mj.state = StateReady
		if mj.orphans >= 3 || mj.attempt >= mj.maxAttempts {
			mj.state = StateDead
			m.release(mj)
		}
	}
	m.held = nil
	m.newConsumer()
}
