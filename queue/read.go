package queue

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// txQid resolves a queue name in the transaction's own view of the file: the
// in-memory mirror is updated only after a commit returns, and a reader must
// not miss a queue committed just before it.
func txQid(tx *bolt.Tx) func(string) (uint16, bool) {
	return func(name string) (uint16, bool) {
		if v := tx.Bucket(bucketQueues).Get([]byte(name)); len(v) >= 2 {
			return getQid(v), true
		}
		return 0, false
	}
}

// locate finds which state index holds the job and fills in what that index
// knows (attempt, lease, start and finish times).
func locate(tx *bolt.Tx, j *Job, qidOf func(string) (uint16, bool)) (State, error) {
	key := u64(j.ID)
	if rv, ok := parseRunning(tx.Bucket(bucketRunning).Get(key)); ok {
		j.Attempt = rv.attempt
		j.StartedAt = fromNano(rv.claimed)
		return StateRunning, nil
	}
	if dv, ok := parseDone(tx.Bucket(bucketDone).Get(key)); ok {
		j.Attempt = dv.attempt
		j.StartedAt = fromNano(dv.started)
		j.FinishedAt = fromNano(dv.finished)
		return StateDone, nil
	}
	if _, at, ok := parseDead(tx.Bucket(bucketDead).Get(key)); ok {
		if j.FinishedAt.IsZero() {
			j.FinishedAt = fromNano(at)
		}
		return StateDead, nil
	}
	if qid, ok := qidOf(j.Queue); ok {
		if b := tx.Bucket(bucketReady).Bucket(qidKey(qid)); b != nil {
			if v := b.Get(key); v != nil {
				if since := parseReady(v).since; since != 0 {
					j.RunAt = fromNano(since)
				}
				return StateReady, nil
			}
		}
	}
	tk := timeKey(j.RunAt, j.ID)
	if tx.Bucket(bucketScheduled).Get(tk) != nil {
		return StateScheduled, nil
	}
	if tx.Bucket(bucketRetry).Get(tk) != nil {
		return StateRetry, nil
	}
	return 0, fmt.Errorf("%w: job %d is in no state index", ErrCorruptRecord, j.ID)
}

// Get returns the job with the given id, or ErrNotFound.
func (s *Store) Get(id uint64) (*Job, error) {
	var j *Job
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get(u64(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		if j, err = decodeRecord(id, v); err != nil {
			return err
		}
		j.State, err = locate(tx, j, txQid(tx))
		return err
	})
	if err != nil {
		return nil, err
	}
	s.fillAttempt(j)
	return j, nil
}

// fillAttempt adds what only memory knows of a running job's attempt: when
// its handler began, its lease, whether it is stuck past it.
func (s *Store) fillAttempt(j *Job) {
	if j.State != StateRunning {
		return
	}
	for _, c := range s.snapshotConsumers() {
		if a, ok := c.attempt(j.ID); ok {
			j.StartedAt, j.LeaseUntil = a.begun, a.lease
			j.Stuck = !a.lease.IsZero() && s.now().After(a.lease)
			return
		}
	}
}

// Stuck returns the jobs whose attempt runs past its lease, oldest first.
func (s *Store) Stuck() []uint64 {
	now := s.now()
	type att struct {
		id    uint64
		begun time.Time
	}
	var out []att
	for _, c := range s.snapshotConsumers() {
		c.mu.Lock()
		for id, a := range c.active {
			if !a.lease.IsZero() && now.After(a.lease) {
				out = append(out, att{id, a.begun})
			}
		}
		c.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b att) int { return a.begun.Compare(b.begun) })
	ids := make([]uint64, len(out))
	for i, a := range out {
		ids[i] = a.id
	}
	return ids
}

// ListFilter selects a page of jobs in one state.
type ListFilter struct {
	State State  // required
	Queue string // only this queue, when set
	Class string // only this class, when set
	// After is the cursor returned as Page.Next by the previous page.
	After string
	// Limit is the page size (default 50, at most 1000).
	Limit int
}

// Page is one page of a job list. Next is empty on the last page.
type Page struct {
	Jobs []*Job
	Next string
}

// maxListScan bounds the index entries one List call looks at.
const maxListScan = 10_000

// ErrBadCursor is returned by List when After is not a cursor it issued.
var ErrBadCursor = fmt.Errorf("queue: bad cursor")

// List returns a page of jobs: ready and running jobs oldest first (the order
// they run in), scheduled and retrying jobs by due time, done and dead jobs
// by finish time, the latest first. A page with a filter scans at most 10,000 entries; it may then
// come back short, with Next set to go on.
func (s *Store) List(f ListFilter) (Page, error) {
	if f.State == 0 || int(f.State) >= numStates {
		return Page{}, fmt.Errorf("queue: list needs a state")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	var after []byte
	if f.After != "" {
		var err error
		if after, err = hex.DecodeString(f.After); err != nil {
			return Page{}, ErrBadCursor
		}
	}
	hasQueue := f.Queue != ""
	var page Page
	err := s.db.View(func(tx *bolt.Tx) error {
		wantQid, known := txQid(tx)(f.Queue)
		if hasQueue && !known {
			return nil
		}
		jobs := tx.Bucket(bucketJobs)
		scanned := 0
		var last []byte
		// visit is called with each candidate in list order; it returns false to stop.
		visit := func(k []byte, id uint64, qid uint16) (bool, error) {
			scanned++
			last = append(last[:0], k...)
			if hasQueue && qid != wantQid {
				return scanned < maxListScan, nil
			}
			v := jobs.Get(u64(id))
			if v == nil {
				return false, fmt.Errorf("%w: job %d has no record", ErrCorruptRecord, id)
			}
			j, err := decodeRecord(id, v)
			if err != nil {
				return false, err
			}
			if f.Class != "" && j.Class != f.Class {
				return scanned < maxListScan, nil
			}
			if j.State, err = locate(tx, j, txQid(tx)); err != nil {
				return false, err
			}
			page.Jobs = append(page.Jobs, j)
			return len(page.Jobs) < limit && scanned < maxListScan, nil
		}
		var more bool
		var err error
		switch f.State {
		case StateReady:
			more, err = s.listReady(tx, f.Queue, after, visit)
		case StateRunning:
			more, err = walk(tx.Bucket(bucketRunning), after, false, func(k, v []byte) (bool, error) {
				rv, _ := parseRunning(v)
				return visit(k, getU64(k), rv.qid)
			})
		case StateScheduled, StateRetry:
			b := tx.Bucket(bucketScheduled)
			if f.State == StateRetry {
				b = tx.Bucket(bucketRetry)
			}
			more, err = walk(b, after, false, func(k, v []byte) (bool, error) {
				_, id := splitTimeKey(k)
				return visit(k, id, getQid(v))
			})
		case StateDone, StateDead:
			b := tx.Bucket(bucketDoneAt)
			if f.State == StateDead {
				b = tx.Bucket(bucketDeadAt)
			}
			more, err = walkFinished(b, after, visit)
		}
		if err == nil && more {
			page.Next = hex.EncodeToString(last)
		}
		return err
	})
	for _, j := range page.Jobs {
		s.fillAttempt(j)
	}
	return page, err
}

// walk visits a bucket's entries after the cursor key, ascending or descending,
// until fn returns false; it reports whether entries remain.
func walk(b *bolt.Bucket, after []byte, desc bool, fn func(k, v []byte) (bool, error)) (bool, error) {
	c := b.Cursor()
	var k, v []byte
	switch {
	case after == nil && !desc:
		k, v = c.First()
	case after == nil && desc:
		k, v = c.Last()
	case !desc:
		k, v = c.Seek(after)
		if k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	default:
		k, v = c.Seek(after)
		if k == nil {
			k, v = c.Last()
		}
		for k != nil && bytes.Compare(k, after) >= 0 {
			k, v = c.Prev()
		}
	}
	for k != nil {
		goOn, err := fn(k, v)
		if err != nil {
			return false, err
		}
		if desc {
			k, v = c.Prev()
		} else {
			k, v = c.Next()
		}
		if !goOn {
			return k != nil, nil
		}
	}
	return false, nil
}

// listReady walks the ready jobs of one queue, or of all queues merged by id.
func (s *Store) listReady(tx *bolt.Tx, queue string, after []byte, visit func(k []byte, id uint64, qid uint16) (bool, error)) (bool, error) {
	root := tx.Bucket(bucketReady)
	type head struct {
		qid uint16
		c   *bolt.Cursor
		k   []byte
	}
	var heads []*head
	err := root.ForEach(func(name, v []byte) error {
		if v != nil || len(name) != 2 {
			return nil
		}
		qid := getQid(name)
		if queue != "" {
			if want, _ := txQid(tx)(queue); want != qid {
				return nil
			}
		}
		c := root.Bucket(name).Cursor()
		var k []byte
		if after == nil {
			k, _ = c.First()
		} else if k, _ = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, _ = c.Next()
		}
		if k != nil {
			heads = append(heads, &head{qid: qid, c: c, k: k})
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	for {
		var best *head
		for _, h := range heads {
			if h.k != nil && (best == nil || bytes.Compare(h.k, best.k) < 0) {
				best = h
			}
		}
		if best == nil {
			return false, nil
		}
		k := best.k
		best.k, _ = best.c.Next()
		goOn, err := visit(k, getU64(k), best.qid)
		if err != nil {
			return false, err
		}
		if !goOn {
			for _, h := range heads {
				if h.k != nil {
					return true, nil
				}
			}
			return false, nil
		}
	}
}

// MinuteStat is the number of attempts that ended in one minute.
type MinuteStat struct {
	Minute    time.Time
	Processed int64 // attempts that ended, failed ones included (as Sidekiq counts)
	Failed    int64
}

// Stats returns the per-minute counters from since on, oldest first; minutes
// with no activity are absent.
func (s *Store) Stats(since time.Time) ([]MinuteStat, error) {
	var out []MinuteStat
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketStats).Cursor()
		for k, v := c.Seek(u64(uint64(max(0, since.Unix()/60)))); k != nil; k, v = c.Next() {
			if len(v) != 16 {
				continue
			}
			out = append(out, MinuteStat{
				Minute:    time.Unix(int64(getU64(k))*60, 0).UTC(),
				Processed: getI64(v),
				Failed:    getI64(v[8:]),
			})
		}
		return nil
	})
	return out, err
}
