package queue

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Pause stops lanes from claiming jobs of the queue; enqueues still land in it.
// The pause is stored and survives restarts. Pausing an unknown queue creates it.
func (s *Store) Pause(ctx context.Context, name string) error { return s.setPaused(ctx, name, true) }

// Resume undoes Pause.
func (s *Store) Resume(ctx context.Context, name string) error { return s.setPaused(ctx, name, false) }

func (s *Store) setPaused(ctx context.Context, name string, paused bool) error {
	if err := validQueueName(name); err != nil {
		return &ValidationError{Field: "queue", Reason: err.Error()}
	}
	err := s.admin(ctx, func(t *txn) error {
		q, err := t.queueByName(name, true)
		if err != nil {
			return err
		}
		v := []byte{byte(q.id >> 8), byte(q.id), 0}
		if paused {
			v[2] = 1
		}
		if err := t.queuesB.Put([]byte(name), v); err != nil {
			return err
		}
		t.paused[q.id] = paused
		t.change.touch(name)
		op := "resume"
		if paused {
			op = "pause"
		}
		t.change.op(op + " " + name)
		return nil
	})
	if err == nil && !paused {
		s.kick()
	}
	return err
}

// Clear removes every ready job of the queue and returns how many it removed.
// Scheduled, retrying and running jobs stay. Large queues are cleared in
// transactions of 10,000 jobs; a crash part-way leaves the rest ready.
func (s *Store) Clear(ctx context.Context, name string) (int, error) {
	total := 0
	for {
		n := 0
		err := s.admin(ctx, func(t *txn) error {
			n = 0
			q, _ := t.queueByName(name, false)
			if q == nil {
				return nil
			}
			b, err := t.readyBucket(q.id)
			if err != nil {
				return err
			}
			var keys [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < defaultTrimBatch; k, _ = c.Next() {
				keys = append(keys, append([]byte(nil), k...))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
				t.delta(q.id, StateReady, -1)
				if err := t.deleteJob(getU64(k)); err != nil {
					return err
				}
			}
			n = len(keys)
			t.touched[q.id] = true
			t.change.Removed += n
			t.change.touch(name)
			if n > 0 {
				t.change.op(fmt.Sprintf("clear %s", name))
			}
			return nil
		})
		total += n
		if err != nil || n < defaultTrimBatch {
			return total, err
		}
	}
}

// deleteJob removes a job's record; the caller has already removed it from its
// state index. An unfinished job's unique key is freed with it; a finished
// job's key, held past its end (UniqueFor), stays until its window passes.
func (t *txn) deleteJob(id uint64) error {
	if key, err := recordUniqueKey(seekGet(t.jobsC, u64(id))); err == nil && key != "" {
		uv, ok := parseUnique(t.unique.Get([]byte(key)))
		if ok && uv.id == id && !uv.finished {
			if err := t.forgetUnique(key, id); err != nil {
				return err
			}
		}
	}
	return t.jobs.Delete(u64(id))
}

// forgetUnique frees a key held by the job, finished or not.
func (t *txn) forgetUnique(key string, id uint64) error {
	if key == "" {
		return nil
	}
	uv, ok := parseUnique(t.unique.Get([]byte(key)))
	if !ok || uv.id != id {
		return nil
	}
	if uv.finished {
		if err := t.uexp.Delete(uniqueExpKey(uv.until, key)); err != nil {
			return err
		}
	}
	return t.unique.Delete([]byte(key))
}

// removeIndexed takes a job out of the state index it is in (not running).
func (t *txn) removeIndexed(j *Job, st State) (uint16, error) {
	key := u64(j.ID)
	switch st {
	case StateReady:
		q, _ := t.queueByName(j.Queue, false)
		if q == nil {
			return 0, fmt.Errorf("%w: ready job %d of unknown queue %q", ErrCorruptRecord, j.ID, j.Queue)
		}
		b, err := t.readyBucket(q.id)
		if err != nil {
			return 0, err
		}
		t.delta(q.id, StateReady, -1)
		t.touched[q.id] = true
		return q.id, b.Delete(key)
	case StateScheduled, StateRetry:
		b := t.scheduled
		if st == StateRetry {
			b = t.retry
		}
		tk := timeKey(j.RunAt, j.ID)
		qid := getQid(b.Get(tk))
		t.delta(qid, st, -1)
		return qid, b.Delete(tk)
	case StateDone, StateDead:
		qid, _, err := t.removeFinished(st, j.ID)
		return qid, err
	}
	return 0, ErrRunning
}

// discardUnreadable deletes a job whose record cannot be decoded: it finds the
// job's index entry without the record (a scan of the timed indexes: a rare
// path), frees the keys it holds, and deletes the record.
func (t *txn) discardUnreadable(id uint64) error {
	key := u64(id)
	if t.running.Get(key) != nil {
		return ErrRunning
	}
	found := false
	for _, st := range []State{StateDone, StateDead} {
		qid, ok, err := t.removeFinished(st, id)
		if err != nil {
			return err
		}
		if ok {
			found = true
			t.touchQueue(qid)
		}
	}
	if !found {
		err := t.ready.ForEach(func(name, v []byte) error {
			if b := t.ready.Bucket(name); v == nil && b != nil && b.Get(key) != nil {
				found = true
				qid := getQid(name)
				t.delta(qid, StateReady, -1)
				t.touched[qid] = true
				t.touchQueue(qid)
				return b.Delete(key)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, tb := range []struct {
		b  *bolt.Bucket
		st State
	}{{t.scheduled, StateScheduled}, {t.retry, StateRetry}} {
		if found {
			break
		}
		var hit []byte
		var qid uint16
		tb.b.ForEach(func(k, v []byte) error {
			if _, kid := splitTimeKey(k); kid == id && hit == nil {
				hit, qid = append([]byte(nil), k...), getQid(v)
			}
			return nil
		})
		if hit != nil {
			found = true
			t.delta(qid, tb.st, -1)
			t.touchQueue(qid)
			if err := tb.b.Delete(hit); err != nil {
				return err
			}
		}
	}
	if !found {
		return fmt.Errorf("%w: job %d has an unreadable record and is in no state index", ErrCorruptRecord, id)
	}
	if err := t.forgetKeysOf(id); err != nil {
		return err
	}
	t.change.Removed++
	t.change.op(fmt.Sprintf("discard %d", id))
	return t.jobs.Delete(key)
}

func (t *txn) touchQueue(qid uint16) {
	if q := t.queueByID(qid); q != nil {
		t.change.touch(q.name)
	}
}

// lookup loads a job and its state inside the writer's transaction.
func (t *txn) lookup(id uint64) (*Job, State, error) {
	v := t.jobs.Get(u64(id))
	if v == nil {
		return nil, 0, ErrNotFound
	}
	j, err := decodeRecord(id, v)
	if err != nil {
		return nil, 0, err
	}
	st, err := locate(t.tx, j, func(name string) (uint16, bool) {
		if q, _ := t.queueByName(name, false); q != nil {
			return q.id, true
		}
		return 0, false
	})
	return j, st, err
}

// RetryNow makes a scheduled, retrying or dead job ready now. A dead job keeps
// its attempts: if it fails again it goes back to dead (retry it again to give it
// another go). It returns ErrRunning for a running job and ErrWrongState for a
// ready or done one.
func (s *Store) RetryNow(ctx context.Context, id uint64) error {
	return s.admin(ctx, func(t *txn) error { return t.retryNow(id) })
}

// retryNow is RetryNow inside the writer's transaction.
func (t *txn) retryNow(id uint64) error {
	j, st, err := t.lookup(id)
	if err != nil {
		return err
	}
	switch st {
	case StateRunning:
		return ErrRunning
	case StateReady, StateDone:
		return fmt.Errorf("%w: job %d is %s", ErrWrongState, id, st)
	}
	qid, err := t.removeIndexed(j, st)
	if err != nil {
		return err
	}
	if st == StateDead {
		j.FinishedAt = timeZero
		if j.Attempt >= j.MaxAttempts {
			j.MaxAttempts = j.Attempt + 1
		}
		if err := t.retakeUnique(j); err != nil {
			return err
		}
	}
	j.RunAt = t.now
	if err := t.putRecord(j); err != nil {
		return err
	}
	t.change.touch(j.Queue)
	t.change.op(fmt.Sprintf("retry %d", id))
	return t.putReady(qid, id, t.nowNs, false)
}

// retakeUnique gives a revived job its unique key back, unless another unfinished
// job holds it now; then the revived job runs without one.
func (t *txn) retakeUnique(j *Job) error {
	if j.UniqueKey == "" {
		return nil
	}
	k := []byte(j.UniqueKey)
	uv, held := parseUnique(t.unique.Get(k))
	if held && uv.id != j.ID && (!uv.finished || uv.until > t.nowNs) {
		j.UniqueKey, j.UniqueUntil = "", timeZero
		return nil
	}
	if held && uv.finished {
		if err := t.uexp.Delete(uniqueExpKey(uv.until, j.UniqueKey)); err != nil {
			return err
		}
	}
	return t.unique.Put(k, uniqueVal{id: j.ID, until: unixNano(j.UniqueUntil)}.bytes())
}

// Discard deletes a job that is not running, whatever its state, and frees its
// unique key. It returns ErrRunning for a running job. A job whose record is
// unreadable (quarantined in dead, or found so here) is deleted too.
func (s *Store) Discard(ctx context.Context, id uint64) error {
	return s.admin(ctx, func(t *txn) error { return t.discard(id) })
}

// discard is Discard inside the writer's transaction.
func (t *txn) discard(id uint64) error {
	j, st, err := t.lookup(id)
	if errors.Is(err, ErrCorruptRecord) {
		return t.discardUnreadable(id)
	}
	if err != nil {
		return err
	}
	if st == StateRunning {
		return ErrRunning
	}
	if _, err := t.removeIndexed(j, st); err != nil {
		return err
	}
	if err := t.forgetUnique(j.UniqueKey, id); err != nil {
		return err
	}
	t.change.Removed++
	t.change.touch(j.Queue)
	t.change.op(fmt.Sprintf("discard %d", id))
	return t.jobs.Delete(u64(id))
}
