package queue

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The finish-time indexes (doneat, deadat) order done and dead jobs by when
// they finished, for retention and the newest-first lists. Every job a
// commit finishes has the same finish time (the commit's clock), so the
// index holds one entry per commit, not per job: key finished(8) seq(8), the
// bucket's sequence making keys of one instant distinct; value the jobs'
// id(8) qid(2) pairs, ids ascending. A commit that finishes a thousand jobs
// writes one key instead of a thousand (format 3; format 2 had one key per
// job, which cost a fifth of the throughput). The order is exact: by finish
// time, then, within one instant, by commit and id.

// finPairLen is the size of one job's pair in an entry.
const finPairLen = 10

// finPair is one finished job in an entry.
type finPair struct {
	id  uint64
	qid uint16
}

func finishedKey(at int64, seq uint64) []byte {
	var b [16]byte
	copy(b[:8], u64(uint64(at)))
	copy(b[8:], u64(seq))
	return b[:]
}

func pairAt(v []byte, i int) finPair {
	p := v[i*finPairLen:]
	return finPair{id: getU64(p), qid: getQid(p[8:])}
}

func packPairs(ps []finPair) []byte {
	b := make([]byte, len(ps)*finPairLen)
	for i, p := range ps {
		copy(b[i*finPairLen:], u64(p.id))
		copy(b[i*finPairLen+8:], qidKey(p.qid))
	}
	return b
}

// validEntry reports whether a finish-time entry is well formed.
func validEntry(k, v []byte) bool {
	return len(k) == 16 && len(v) > 0 && len(v)%finPairLen == 0
}

// findPair returns the position of id in an entry, or -1.
func findPair(v []byte, id uint64) int {
	lo, hi := 0, len(v)/finPairLen
	for lo < hi {
		m := (lo + hi) / 2
		switch c := cmp.Compare(getU64(v[m*finPairLen:]), id); {
		case c == 0:
			return m
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// withoutPair returns a new entry value without the pair at i.
func withoutPair(v []byte, i int) []byte {
	out := make([]byte, 0, len(v)-finPairLen)
	out = append(out, v[:i*finPairLen]...)
	return append(out, v[(i+1)*finPairLen:]...)
}

// putFinished adds a job (already out of its previous index) to done or
// dead; its finish-time entry is written with the transaction's others
// (flushFinished).
func (t *txn) putFinished(st State, id uint64, qid uint16, val []byte) error {
	b, _ := t.finishedBuckets(st)
	if err := b.Put(u64(id), val); err != nil {
		return err
	}
	t.delta(qid, st, 1)
	i := 0
	if st == StateDead {
		i = 1
	}
	t.finPend[i] = append(t.finPend[i], finPair{id: id, qid: qid})
	return nil
}

// flushFinished writes the finish-time entries of the jobs finished in the
// transaction so far: one per state.
func (t *txn) flushFinished() error {
	for i, st := range []State{StateDone, StateDead} {
		ps := t.finPend[i]
		if len(ps) == 0 {
			continue
		}
		slices.SortFunc(ps, func(a, b finPair) int { return cmp.Compare(a.id, b.id) })
		_, byTime := t.finishedBuckets(st)
		seq, err := byTime.NextSequence()
		if err != nil {
			return err
		}
		if err := byTime.Put(finishedKey(t.nowNs, seq), packPairs(ps)); err != nil {
			return err
		}
		t.finPend[i] = ps[:0]
	}
	return nil
}

func (t *txn) finishedBuckets(st State) (byID, byTime *bolt.Bucket) {
	if st == StateDead {
		return t.dead, t.deadAt
	}
	return t.done, t.doneAt
}

// removeFinished takes a done or dead job out of both its indexes and returns
// its queue (ok false: it was not there).
func (t *txn) removeFinished(st State, id uint64) (qid uint16, ok bool, err error) {
	if err := t.flushFinished(); err != nil {
		return 0, false, err
	}
	b, byTime := t.finishedBuckets(st)
	key := u64(id)
	v := b.Get(key)
	if v == nil {
		return 0, false, nil
	}
	qid, at := finishedEntry(st, v)
	t.delta(qid, st, -1)
	if err := b.Delete(key); err != nil {
		return 0, false, err
	}
	prefix := u64(uint64(at))
	c := byTime.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		i := findPair(v, id)
		if i < 0 {
			continue
		}
		if len(v) == finPairLen {
			return qid, true, c.Delete()
		}
		return qid, true, byTime.Put(bytes.Clone(k), withoutPair(v, i))
	}
	return qid, true, fmt.Errorf("%w: %s job %d is not in the finish-time index", ErrCorruptRecord, st, id)
}

// finishedEntry reads the queue and finish time of a done or dead entry.
func finishedEntry(st State, v []byte) (qid uint16, at int64) {
	if st == StateDone {
		dv, _ := parseDone(v)
		return dv.qid, dv.finished
	}
	qid, at, _ = parseDead(v)
	return qid, at
}

// trimFinished deletes up to budget finished jobs of state st that are over the
// limit or past their retention, oldest finish first, and reports whether more
// are due. The work is the jobs deleted, never the jobs kept.
func (t *txn) trimFinished(st State, limit int, retention time.Duration, budget int) (n int, more bool, err error) {
	if err := t.flushFinished(); err != nil {
		return 0, false, err
	}
	byID, byTime := t.finishedBuckets(st)
	excess := t.countOf(st) - int64(limit)
	cutoff := t.now.Add(-retention).UnixNano()
	c := byTime.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if !validEntry(k, v) {
			return n, false, fmt.Errorf("%w: a bad %s finish-time entry %x", ErrCorruptRecord, st, k)
		}
		at := getI64(k[:8])
		pairs := len(v) / finPairLen
		i := 0
		for ; i < pairs; i++ {
			if (int64(n) >= excess && at >= cutoff) || n == budget {
				break
			}
			p := pairAt(v, i)
			if byID.Get(u64(p.id)) == nil {
				return n, false, fmt.Errorf("%w: %s job %d is in the finish-time index only", ErrCorruptRecord, st, p.id)
			}
			if err := byID.Delete(u64(p.id)); err != nil {
				return n, false, err
			}
			t.delta(p.qid, st, -1)
			if err := t.deleteJob(p.id); err != nil {
				return n, false, err
			}
			if q := t.queueByID(p.qid); q != nil {
				t.change.touch(q.name)
			}
			t.change.Removed++
			n++
		}
		if i < pairs {
			// Stopped inside the entry: keep the rest of it.
			if i > 0 {
				if err := byTime.Put(bytes.Clone(k), bytes.Clone(v[i*finPairLen:])); err != nil {
					return n, false, err
				}
			}
			return n, !(int64(n) >= excess && at >= cutoff), nil
		}
		if err := c.Delete(); err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// walkFinished visits a finish-time index newest first, each job with the
// cursor that resumes after it (its entry's key and its id), after the cursor
// after (nil: from the newest), until fn returns false; it reports whether
// jobs remain.
func walkFinished(b *bolt.Bucket, after []byte, fn func(cur []byte, id uint64, qid uint16) (bool, error)) (bool, error) {
	before := ^uint64(0) // in the first entry, only ids below this
	c := b.Cursor()
	var k, v []byte
	switch {
	case after == nil:
		k, v = c.Last()
	case len(after) != 24:
		return false, ErrBadCursor
	default:
		if k, v = c.Seek(after[:16]); k != nil && bytes.Equal(k, after[:16]) {
			before = getU64(after[16:])
		} else if k == nil {
			k, v = c.Last() // the cursor's entry was trimmed: go on below it
		} else {
			k, v = c.Prev()
		}
	}
	cur := make([]byte, 24)
	for ; k != nil; k, v = c.Prev() {
		if !validEntry(k, v) {
			return false, fmt.Errorf("%w: a bad finish-time entry %x", ErrCorruptRecord, k)
		}
		copy(cur, k)
		for i := len(v)/finPairLen - 1; i >= 0; i-- {
			p := pairAt(v, i)
			if p.id >= before {
				continue
			}
			copy(cur[16:], u64(p.id))
			goOn, err := fn(cur, p.id, p.qid)
			if err != nil {
				return false, err
			}
			if !goOn {
				if i > 0 {
					return true, nil
				}
				k, _ := c.Prev()
				return k != nil, nil
			}
		}
		before = ^uint64(0)
	}
	return false, nil
}

// rebuildFinishedIndexes makes the finish-time indexes anew from the done
// and dead jobs (migrating to format 3, or from a format without them).
func rebuildFinishedIndexes(tx *bolt.Tx) error {
	for _, idx := range []struct {
		st           State
		byID, byTime []byte
	}{{StateDone, bucketDone, bucketDoneAt}, {StateDead, bucketDead, bucketDeadAt}} {
		if tx.Bucket(idx.byTime) != nil {
			if err := tx.DeleteBucket(idx.byTime); err != nil {
				return err
			}
		}
		byTime, err := tx.CreateBucket(idx.byTime)
		if err != nil {
			return err
		}
		at := map[int64][]finPair{}
		if err := tx.Bucket(idx.byID).ForEach(func(k, v []byte) error {
			qid, t := finishedEntry(idx.st, v)
			at[t] = append(at[t], finPair{id: getU64(k), qid: qid}) // ids ascending: ForEach's order
			return nil
		}); err != nil {
			return err
		}
		for _, t := range slices.Sorted(maps.Keys(at)) {
			seq, err := byTime.NextSequence()
			if err != nil {
				return err
			}
			if err := byTime.Put(finishedKey(t, seq), packPairs(at[t])); err != nil {
				return err
			}
		}
	}
	return nil
}
