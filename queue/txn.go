package queue

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// txn is one write transaction of the writer: the state machine's moves, the
// counter deltas they cause, and what to tell the world after the commit.
type txn struct {
	s     *Store
	tx    *bolt.Tx
	now   time.Time
	nowNs int64

	jobs, running, scheduled, retry, done, dead *bolt.Bucket
	doneAt, deadAt                              *bolt.Bucket
	unique, uexp, counts, stats, queuesB, ready *bolt.Bucket
	readyQ                                      map[uint16]*bolt.Bucket

	// Cursors reused for point reads and deletes: each Bucket.Get or Delete
	// would allocate a new one (bbolt's search stack), and the writer does
	// several per job.
	jobsC, runC *bolt.Cursor

	deltas    map[uint16]*[numStates]int64
	newQueues []*queueState
	newByName map[string]*queueState
	paused    map[uint16]bool
	touched   map[uint16]bool
	heads     map[uint16]int64

	finPend [2][]finPair // done and dead jobs finished in the transaction, for their finish-time entries

	processed, failed int64
	change            Change
	claims            []claimBatch

	nextDue      time.Time
	nextDueKnown bool
}

type claimBatch struct {
	c      *Consumer
	claims []*Claim
}

func (s *Store) newTxn(tx *bolt.Tx, now time.Time) *txn {
	t := &txn{
		s: s, tx: tx, now: now, nowNs: now.UnixNano(),
		jobs:      tx.Bucket(bucketJobs),
		running:   tx.Bucket(bucketRunning),
		scheduled: tx.Bucket(bucketScheduled),
		retry:     tx.Bucket(bucketRetry),
		done:      tx.Bucket(bucketDone),
		dead:      tx.Bucket(bucketDead),
		doneAt:    tx.Bucket(bucketDoneAt),
		deadAt:    tx.Bucket(bucketDeadAt),
		unique:    tx.Bucket(bucketUnique),
		uexp:      tx.Bucket(bucketUniqueExp),
		counts:    tx.Bucket(bucketCounts),
		stats:     tx.Bucket(bucketStats),
		queuesB:   tx.Bucket(bucketQueues),
		ready:     tx.Bucket(bucketReady),
		readyQ:    map[uint16]*bolt.Bucket{},
		deltas:    map[uint16]*[numStates]int64{},
		paused:    map[uint16]bool{},
		touched:   map[uint16]bool{},
		heads:     map[uint16]int64{},
	}
	// Ids only grow, so these are written in key order: fill pages completely.
	t.jobs.FillPercent = 1.0
	t.done.FillPercent = 1.0
	t.dead.FillPercent = 1.0
	t.doneAt.FillPercent = 1.0
	t.deadAt.FillPercent = 1.0
	t.running.FillPercent = 0.9
	t.jobsC = t.jobs.Cursor()
	t.runC = t.running.Cursor()
	return t
}

// seekGet returns the value at key through a reused cursor, or nil.
func seekGet(c *bolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil
	}
	return v
}

func (t *txn) delta(qid uint16, st State, n int64) {
	d := t.deltas[qid]
	if d == nil {
		d = new([numStates]int64)
		t.deltas[qid] = d
	}
	d[st] += n
}

// queueByName returns the queue's state, creating the queue when create is set.
func (t *txn) queueByName(name string, create bool) (*queueState, error) {
	if q := t.s.queues[name]; q != nil {
		return q, nil
	}
	if q := t.newByName[name]; q != nil {
		return q, nil
	}
	if !create {
		return nil, nil
	}
	seq, err := t.queuesB.NextSequence()
	if err != nil {
		return nil, err
	}
	if seq > 0xFFFF {
		return nil, fmt.Errorf("queue: too many queues (%d)", seq)
	}
	q := &queueState{name: name, id: uint16(seq)}
	if err := t.queuesB.Put([]byte(name), []byte{byte(q.id >> 8), byte(q.id), 0}); err != nil {
		return nil, err
	}
	if _, err := t.ready.CreateBucketIfNotExists(qidKey(q.id)); err != nil {
		return nil, err
	}
	if t.newByName == nil {
		t.newByName = map[string]*queueState{}
	}
	t.newByName[name] = q
	t.newQueues = append(t.newQueues, q)
	return q, nil
}

func (t *txn) queueByID(qid uint16) *queueState {
	if q := t.s.qByID[qid]; q != nil {
		return q
	}
	for _, q := range t.newQueues {
		if q.id == qid {
			return q
		}
	}
	return nil
}

// readyCount is the number of ready jobs in q as of this point of the transaction.
func (t *txn) readyCount(q *queueState) int64 {
	n := q.counts[StateReady]
	if d := t.deltas[q.id]; d != nil {
		n += d[StateReady]
	}
	return n
}

func (t *txn) isPaused(q *queueState) bool {
	if p, ok := t.paused[q.id]; ok {
		return p
	}
	return q.paused
}

func (t *txn) readyBucket(qid uint16) (*bolt.Bucket, error) {
	if b := t.readyQ[qid]; b != nil {
		return b, nil
	}
	b := t.ready.Bucket(qidKey(qid))
	if b == nil {
		var err error
		if b, err = t.ready.CreateBucket(qidKey(qid)); err != nil {
			return nil, err
		}
	}
	b.FillPercent = 1.0
	t.readyQ[qid] = b
	return b, nil
}

func (t *txn) loadRecord(id uint64) (*Job, error) {
	v := seekGet(t.jobsC, u64(id))
	if v == nil {
		return nil, fmt.Errorf("%w: job %d has no record", ErrCorruptRecord, id)
	}
	return decodeRecord(id, v)
}

func (t *txn) putRecord(j *Job) error {
	return t.jobs.Put(u64(j.ID), encodeRecord(nil, j))
}

// putReady adds a job to its queue's ready index.
func (t *txn) putReady(qid uint16, id uint64, since int64, suspect bool) error {
	b, err := t.readyBucket(qid)
	if err != nil {
		return err
	}
	t.delta(qid, StateReady, 1)
	t.touched[qid] = true
	return b.Put(u64(id), readyVal{since: since, suspect: suspect}.bytes())
}

func (t *txn) putTimed(st State, qid uint16, at time.Time, id uint64) error {
	b := t.scheduled
	if st == StateRetry {
		b = t.retry
	}
	t.delta(qid, st, 1)
	return b.Put(timeKey(at, id), qidKey(qid))
}

// putDead moves a job (already out of its previous index) to dead.
func (t *txn) putDead(j *Job, qid uint16) error {
	j.FinishedAt = t.now
	if err := t.putRecord(j); err != nil {
		return err
	}
	if err := t.putFinished(StateDead, j.ID, qid, deadBytes(qid, t.nowNs)); err != nil {
		return err
	}
	t.change.Dead++
	t.change.touch(j.Queue)
	return t.releaseUnique(j.UniqueKey, j.ID, true)
}

// countOf is the number of jobs in state st across all queues, as of this
// point of the transaction.
func (t *txn) countOf(st State) int64 {
	var n int64
	for _, q := range t.s.qByID {
		n += q.counts[st]
	}
	for _, d := range t.deltas {
		n += d[st]
	}
	return n
}

func appendError(j *Job, ae AttemptError) {
	if len(ae.Message) > maxErrorMessageLen {
		ae.Message = ae.Message[:maxErrorMessageLen]
	}
	if len(ae.Backtrace) > maxBacktraceLen {
		ae.Backtrace = ae.Backtrace[:maxBacktraceLen]
	}
	j.Errors = append(j.Errors, ae)
	if n := len(j.Errors) - MaxErrors; n > 0 {
		j.Errors = append(j.Errors[:0], j.Errors[n:]...)
	}
}

func uniqueExpKey(until int64, key string) []byte {
	return append(u64(uint64(until)), key...)
}

// releaseUnique frees the job's unique key, or, when the key must be held past the
// job's end (UniqueFor), marks it finished and indexes it by expiry.
func (t *txn) releaseUnique(key string, id uint64, dead bool) error {
	if key == "" {
		return nil
	}
	k := []byte(key)
	uv, ok := parseUnique(t.unique.Get(k))
	if !ok || uv.id != id || uv.finished {
		return nil
	}
	if uv.until > t.nowNs {
		uv.finished, uv.dead = true, dead
		if err := t.uexp.Put(uniqueExpKey(uv.until, key), nil); err != nil {
			return err
		}
		return t.unique.Put(k, uv.bytes())
	}
	return t.unique.Delete(k)
}

// enqueue applies one enqueue request; its jobs were validated by the caller.
func (t *txn) enqueue(r *enqueueReq) error {
	if len(r.jobs) == 1 {
		r.results = r.one[:]
	} else {
		r.results = make([]Result, len(r.jobs))
	}
	for i := range r.jobs {
		res, err := t.enqueueOne(&r.jobs[i])
		if err != nil {
			return err
		}
		r.results[i] = res
	}
	return nil
}

func (t *txn) enqueueOne(nj *NewJob) (Result, error) {
	q, err := t.queueByName(nj.Queue, true)
	if err != nil {
		return Result{}, err
	}
	var until int64
	if nj.UniqueKey != "" {
		k := []byte(nj.UniqueKey)
		if uv, ok := parseUnique(t.unique.Get(k)); ok {
			if !uv.finished || uv.until > t.nowNs {
				st, err := t.stateOf(uv.id)
				if err != nil && uv.finished {
					// Retention removed the holder; the key remembers how it ended.
					st = StateDone
					if uv.dead {
						st = StateDead
					}
				}
				return Result{ID: uv.id, State: st, Duplicate: true}, nil
			}
			if err := t.uexp.Delete(uniqueExpKey(uv.until, nj.UniqueKey)); err != nil {
				return Result{}, err
			}
		}
		if nj.UniqueFor > 0 {
			until = t.now.Add(nj.UniqueFor).UnixNano()
		}
	}
	id, err := t.jobs.NextSequence()
	if err != nil {
		return Result{}, err
	}
	j := &Job{
		ID: id, Class: nj.Class, Queue: nj.Queue, Args: nj.Args, MaxAttempts: nj.MaxAttempts,
		CreatedAt: t.now, RunAt: nj.RunAt, UniqueKey: nj.UniqueKey, UniqueUntil: fromNano(until),
		Context: nj.Context,
	}
	st := StateReady
	if j.RunAt.After(t.now) {
		st = StateScheduled
	} else {
		j.RunAt = t.now
	}
	if err := t.putRecord(j); err != nil {
		return Result{}, err
	}
	if st == StateScheduled {
		err = t.putTimed(StateScheduled, q.id, j.RunAt, id)
	} else {
		err = t.putReady(q.id, id, t.nowNs, false)
	}
	if err != nil {
		return Result{}, err
	}
	if nj.UniqueKey != "" {
		if err := t.unique.Put([]byte(nj.UniqueKey), uniqueVal{id: id, until: until}.bytes()); err != nil {
			return Result{}, err
		}
	}
	t.change.Enqueued++
	t.change.touch(nj.Queue)
	return Result{ID: id, State: st}, nil
}

// promote moves up to limit due scheduled and retrying jobs to ready. A promoted
// job has been ready since its due time, so its wait counts from then.
func (t *txn) promote(limit int) error {
	for _, src := range []struct {
		b  *bolt.Bucket
		st State
	}{{t.scheduled, StateScheduled}, {t.retry, StateRetry}} {
		var keys, vals [][]byte
		c := src.b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < limit; k, v = c.Next() {
			if at, _ := splitTimeKey(k); at.After(t.now) {
				break
			}
			keys = append(keys, k)
			vals = append(vals, v)
		}
		for i, k := range keys {
			at, id := splitTimeKey(k)
			qid := getQid(vals[i])
			if err := src.b.Delete(k); err != nil {
				return err
			}
			t.delta(qid, src.st, -1)
			if err := t.putReady(qid, id, unixNano(at), false); err != nil {
				return err
			}
			t.change.Promoted++
			if q := t.queueByID(qid); q != nil {
				t.change.touch(q.name)
			}
		}
	}
	return nil
}

// finish applies a finished attempt handed back by a consumer.
func (t *txn) finish(f *finish) error {
	id := f.id
	key := u64(id)
	rv, ok := parseRunning(seekGet(t.runC, key))
	if !ok {
		t.s.log.Warn("finished attempt of a job that is not running; ignored", "job", id)
		return nil
	}
	if err := t.runC.Delete(); err != nil {
		return err
	}
	t.delta(rv.qid, StateRunning, -1)
	if q := t.queueByID(rv.qid); q != nil {
		t.change.touch(q.name)
	}
	switch f.kind {
	case finAck:
		started := f.started
		if started == 0 {
			started = rv.claimed
		}
		if err := t.putFinished(StateDone, id, rv.qid, doneVal{qid: rv.qid, attempt: rv.attempt, started: started, finished: t.nowNs}.bytes()); err != nil {
			return err
		}
		t.processed++
		t.change.Done++
		if !rv.unique {
			return nil
		}
		// Release the key the store holds for the job, whatever the worker's
		// copy says now.
		key, err := recordUniqueKey(seekGet(t.jobsC, u64(id)))
		if err != nil {
			t.s.log.Error("job record unreadable; its unique key stays held", "job", id, "err", err)
			return nil
		}
		return t.releaseUnique(key, id, false)
	case finRelease:
		return t.putReady(rv.qid, id, t.nowNs, rv.suspect)
	}
	j, err := t.loadRecord(id)
	if err != nil {
		return t.quarantine(id, rv.qid, err)
	}
	switch f.kind {
	case finSnooze:
		j.RunAt = f.at
		if !f.at.After(t.now) {
			j.RunAt = t.now
		}
		if err := t.putRecord(j); err != nil {
			return err
		}
		t.change.Snoozed++
		if j.RunAt.After(t.now) {
			return t.putTimed(StateScheduled, rv.qid, j.RunAt, id)
		}
		return t.putReady(rv.qid, id, t.nowNs, false)
	case finFail, finKill:
		j.Attempt = rv.attempt
		j.StartedAt = fromNano(f.started)
		ae := *f.err
		ae.Attempt = rv.attempt
		appendError(j, ae)
		t.processed++
		t.failed++
		if f.kind == finKill || j.Attempt >= j.MaxAttempts {
			return t.putDead(j, rv.qid)
		}
		j.RunAt = retrySecond(f.at)
		if err := t.putRecord(j); err != nil {
			return err
		}
		t.change.Retried++
		return t.putTimed(StateRetry, rv.qid, j.RunAt, id)
	}
	return fmt.Errorf("queue: unknown finish kind %d", f.kind)
}

// retrySecond rounds a retry's due time up to a whole second. Backoffs are
// random, so exact due times would scatter a burst of failures' entries all
// over the retry index (a dirty page each); on whole seconds they are appended
// in id order within a few seconds' runs. A retry is thus due up to a second
// after its backoff ends — Sidekiq's poller is far coarser.
func retrySecond(at time.Time) time.Time {
	s := at.Truncate(time.Second)
	if s.Before(at) {
		s = s.Add(time.Second)
	}
	return s
}

// quarantine moves a job whose record cannot be read to dead, so that one corrupt
// record never wedges its queue, and frees the unique keys it holds. The record
// is left as it is for inspection; Discard deletes it.
func (t *txn) quarantine(id uint64, qid uint16, cause error) error {
	t.s.log.Error("job record unreadable; moved to dead", "job", id, "err", cause)
	t.change.Dead++
	if err := t.forgetKeysOf(id); err != nil {
		return err
	}
	return t.putFinished(StateDead, id, qid, deadBytes(qid, t.nowNs))
}

// forgetKeysOf frees every unique key held for the job, found without its
// record (which may be unreadable): the rare path of a corrupt record scans
// the key index.
func (t *txn) forgetKeysOf(id uint64) error {
	if key, err := recordUniqueKey(seekGet(t.jobsC, u64(id))); err == nil {
		return t.forgetUnique(key, id)
	}
	var keys []string
	err := t.unique.ForEach(func(k, v []byte) error {
		if uv, ok := parseUnique(v); ok && uv.id == id {
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.forgetUnique(k, id); err != nil {
			return err
		}
	}
	return nil
}

// claimFor claims as many ready jobs as the consumer has room for.
func (t *txn) claimFor(c *Consumer) error {
	if !c.accepting() {
		return nil
	}
	free := c.free()
	if free <= 0 {
		return nil
	}
	n := min(free, t.s.opts.ClaimBatch)
	var jobs []*Claim
	budget := c.maxBytes - c.inflightBytes.Load()
	order := c.order(t)
	// First pass: each queue up to its share; second pass: fill what is left.
	for pass := 0; pass < 2 && len(jobs) < n; pass++ {
		for _, sq := range order {
			want := n - len(jobs)
			if pass == 0 {
				want = min(want, sq.share)
			}
			if want <= 0 {
				continue
			}
			var err error
			if jobs, err = t.claimFrom(c, sq.q, want, jobs, &budget); err != nil {
				return err
			}
		}
	}
	if len(jobs) > 0 {
		t.claims = append(t.claims, claimBatch{c: c, claims: jobs})
		t.change.Started += len(jobs)
	}
	return nil
}

// claimFrom claims up to want jobs of q for c, spending budget (bytes): once
// it is spent, only jobs that keep the consumer's workers busy are claimed.
func (t *txn) claimFrom(c *Consumer, q *queueState, want int, out []*Claim, budget *int64) ([]*Claim, error) {
	if t.readyCount(q) <= 0 || t.isPaused(q) {
		return out, nil
	}
	b, err := t.readyBucket(q.id)
	if err != nil {
		return out, err
	}
	cur := b.Cursor()
	// Jobs are taken from the front of the index; after each delete the cursor
	// goes back to the front (Next after Delete may skip an entry).
	for n := 0; n < want; n++ {
		if *budget <= 0 && int(c.inflight.Load())+len(out) >= c.concurrency {
			break
		}
		k, v := cur.First()
		if k == nil {
			break
		}
		id := getU64(k)
		rdy := parseReady(v)
		if err := cur.Delete(); err != nil {
			return out, err
		}
		t.delta(q.id, StateReady, -1)
		j, err := t.loadRecord(id)
		if err != nil {
			if err := t.quarantine(id, q.id, err); err != nil {
				return out, err
			}
			continue
		}
		j.Attempt++
		j.State = StateRunning
		j.StartedAt = time.Time{}
		cl := &Claim{Job: j, c: c, id: id, cost: jobCost(j), suspect: rdy.suspect, slot: -1}
		rv := runningVal{qid: q.id, suspect: rdy.suspect, unique: j.UniqueKey != "", attempt: j.Attempt, claimed: t.nowNs}
		if err := t.running.Put(u64(id), rv.bytes()); err != nil {
			return out, err
		}
		t.delta(q.id, StateRunning, 1)
		*budget -= cl.cost
		out = append(out, cl)
	}
	t.touched[q.id] = true
	t.change.touch(q.name)
	return out, nil
}

// computeNextDue records the earliest due time of scheduled and retrying jobs, and
// the new head of every ready index the transaction touched.
func (t *txn) computeNextDue() error {
	var next time.Time
	for _, b := range []*bolt.Bucket{t.scheduled, t.retry} {
		if k, _ := b.Cursor().First(); k != nil {
			at, _ := splitTimeKey(k)
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	t.nextDue, t.nextDueKnown = next, true
	for qid := range t.touched {
		b, err := t.readyBucket(qid)
		if err != nil {
			return err
		}
		var since int64
		if k, v := b.Cursor().First(); k != nil {
			since = parseReady(v).since
		}
		t.heads[qid] = since
	}
	return nil
}

// flushCounts writes the transaction's counter deltas and per-minute statistics.
func (t *txn) flushCounts() error {
	if err := t.flushFinished(); err != nil {
		return err
	}
	for qid, d := range t.deltas {
		for st := range d {
			if d[st] == 0 {
				continue
			}
			k := countKey(qid, State(st))
			var cur int64
			if v := t.counts.Get(k); v != nil {
				cur = getI64(v)
			}
			next := cur + d[st]
			if next < 0 {
				// The counters disagree with the indexes. Failing the commit
				// would fail every caller in it, and the next, for ever: hold
				// the counter at zero, report it once, and have the next start
				// recount them all.
				name := fmt.Sprint(qid)
				if q := t.queueByID(qid); q != nil {
					name = q.name
				}
				t.s.inconsistent(fmt.Sprintf("the count of %s jobs in queue %q would go below zero", State(st), name))
				d[st] -= next
				next = 0
				if err := t.tx.Bucket(bucketMeta).Put(keyRecount, []byte{1}); err != nil {
					return err
				}
			}
			if err := t.counts.Put(k, u64(uint64(next))); err != nil {
				return err
			}
		}
	}
	if t.processed == 0 && t.failed == 0 {
		return nil
	}
	k := u64(uint64(t.now.Unix() / 60))
	var p, f int64
	if v := t.stats.Get(k); len(v) == 16 {
		p, f = getI64(v), getI64(v[8:])
	}
	v := make([]byte, 16)
	copy(v, u64(uint64(p+t.processed)))
	copy(v[8:], u64(uint64(f+t.failed)))
	return t.stats.Put(k, v)
}

// stateOf finds the state of a job as of this point of the transaction.
func (t *txn) stateOf(id uint64) (State, error) {
	_, st, err := t.lookup(id)
	return st, err
}

// rescueOrphans moves every running job back to ready (see doc.go). crashed
// holds the jobs a worker was running when the previous process died (the
// running journal's slots): each of them was interrupted by the crash — it
// spends the attempt, gains an orphan strike and an error, goes to dead at
// maxOrphans strikes or when that was its last attempt, and otherwise comes
// back a suspect, to run alone. Any
// other running job was only claimed (or its handler had returned): it goes
// back untouched.
func (t *txn) rescueOrphans(maxOrphans int, crashed map[uint64]bool) (rescued, struck, killed int, err error) {
	type entry struct {
		k  []byte
		rv runningVal
	}
	var entries []entry
	err = t.running.ForEach(func(k, v []byte) error {
		rv, ok := parseRunning(v)
		if !ok {
			return fmt.Errorf("corrupt running entry for job %d", getU64(k))
		}
		entries = append(entries, entry{append([]byte(nil), k...), rv})
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range entries {
		id := getU64(e.k)
		if err := t.running.Delete(e.k); err != nil {
			return 0, 0, 0, err
		}
		t.delta(e.rv.qid, StateRunning, -1)
		rescued++
		if !crashed[id] {
			if err := t.putReady(e.rv.qid, id, t.nowNs, e.rv.suspect); err != nil {
				return 0, 0, 0, err
			}
			continue
		}
		struck++
		j, lerr := t.loadRecord(id)
		if lerr != nil {
			if err := t.quarantine(id, e.rv.qid, lerr); err != nil {
				return 0, 0, 0, err
			}
			killed++
			continue
		}
		j.Orphans++
		j.Attempt = e.rv.attempt
		j.StartedAt = fromNano(e.rv.claimed)
		msg := "orphaned by a crash"
		if j.Orphans >= maxOrphans {
			msg = fmt.Sprintf("crashed the worker %d times", j.Orphans)
		}
		appendError(j, AttemptError{Attempt: j.Attempt, Class: "Orphaned", Message: msg, At: t.now})
		// The crash spent the attempt: out of attempts is dead, as after a
		// failure.
		if j.Orphans >= maxOrphans || j.Attempt >= j.MaxAttempts {
			killed++
			if err := t.putDead(j, e.rv.qid); err != nil {
				return 0, 0, 0, err
			}
			continue
		}
		if err := t.putRecord(j); err != nil {
			return 0, 0, 0, err
		}
		if err := t.putReady(e.rv.qid, id, t.nowNs, true); err != nil {
			return 0, 0, 0, err
		}
	}
	return rescued, struck, killed, t.computeNextDue()
}
