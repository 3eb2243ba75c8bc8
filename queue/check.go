package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the store's invariants and returns every violation found
// (joined), or nil:
//   - bbolt's own consistency check passes;
//   - every job record is in exactly one state index, and every index entry has a
//     record; ready entries sit in their record's queue, timed entries at their
//     record's run_at;
//   - the stored counters and the in-memory ones equal the index sizes;
//   - every unfinished job with a unique key holds that key, and every held key
//     points at its holder (unfinished, or finished and within its window).
//
// It runs on the writer, between two transactions, so that the file and the
// in-memory counters are compared at the same point.
func (s *Store) Check() error {
	var res error
	if err := s.admin(context.Background(), func(t *txn) error {
		res = s.check(t.tx)
		return nil
	}); err != nil {
		return err
	}
	return res
}

// CheckFile runs the same checks on a store file that no process has open,
// without changing it: the file is opened read-only and nothing is rescued (a
// dead process's running jobs are still running in it).
func CheckFile(path string) (err error) {
	defer func() {
		if r := recover(); r != nil { // a page too damaged for bbolt to walk
			err = fmt.Errorf("queue: check %s: %v", path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultLockTimeout})
	if err != nil {
		if isTimeout(err) {
			return fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return fmt.Errorf("queue: check %s: %w", path, err)
	}
	defer db.Close()
	s := &Store{db: db, path: path, queues: map[string]*queueState{}, qByID: map[uint16]*queueState{}}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketQueues) == nil {
			return s.check(tx) // it names the missing buckets
		}
		if err := s.loadQueues(tx); err != nil {
			return fmt.Errorf("queue: check %s: %w", path, err)
		}
		return s.check(tx)
	})
}

func (s *Store) check(tx *bolt.Tx) error {
	var errs []error
	bad := func(format string, a ...any) {
		if len(errs) < 50 {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	err := func() error {
		for _, name := range [][]byte{bucketMeta, bucketJobs, bucketQueues, bucketReady, bucketRunning,
			bucketScheduled, bucketRetry, bucketDone, bucketDead, bucketDoneAt, bucketDeadAt, bucketUnique,
			bucketUniqueExp, bucketCounts, bucketStats} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %q is missing (a store of an older format, not migrated yet?)", name)
			}
		}
		for err := range tx.Check() {
			bad("bbolt: %v", err)
		}
		queueNames := map[uint16]string{}
		if err := tx.Bucket(bucketQueues).ForEach(func(k, v []byte) error {
			queueNames[getQid(v)] = string(k)
			return nil
		}); err != nil {
			return err
		}
		type where struct {
			st  State
			qid uint16
			at  int64 // timed entries: their due time
		}
		seen := map[uint64][]where{}
		counts := map[uint16]*[numStates]int64{}
		add := func(id uint64, w where) {
			seen[id] = append(seen[id], w)
			if counts[w.qid] == nil {
				counts[w.qid] = new([numStates]int64)
			}
			counts[w.qid][w.st]++
		}
		ready := tx.Bucket(bucketReady)
		if err := ready.ForEach(func(k, v []byte) error {
			if v != nil || len(k) != 2 {
				bad("ready: stray key %x", k)
				return nil
			}
			qid := getQid(k)
			return ready.Bucket(k).ForEach(func(id, _ []byte) error {
				add(getU64(id), where{st: StateReady, qid: qid})
				return nil
			})
		}); err != nil {
			return err
		}
		for _, tb := range []struct {
			name []byte
			st   State
		}{{bucketScheduled, StateScheduled}, {bucketRetry, StateRetry}} {
			if err := tx.Bucket(tb.name).ForEach(func(k, v []byte) error {
				at, id := splitTimeKey(k)
				add(id, where{st: tb.st, qid: getQid(v), at: unixNano(at)})
				return nil
			}); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketRunning).ForEach(func(k, v []byte) error {
			rv, ok := parseRunning(v)
			if !ok {
				bad("running: bad entry for job %d", getU64(k))
			}
			add(getU64(k), where{st: StateRunning, qid: rv.qid})
			return nil
		}); err != nil {
			return err
		}
		for _, fb := range []struct {
			st           State
			byID, byTime []byte
		}{{StateDone, bucketDone, bucketDoneAt}, {StateDead, bucketDead, bucketDeadAt}} {
			// Where the finish-time index puts each job.
			type at struct {
				at  int64
				qid uint16
			}
			indexed := map[uint64]at{}
			if err := tx.Bucket(fb.byTime).ForEach(func(k, v []byte) error {
				if !validEntry(k, v) {
					bad("%s finish-time index: bad entry %x", fb.st, k)
					return nil
				}
				var prev uint64
				for i := range len(v) / finPairLen {
					p := pairAt(v, i)
					if i > 0 && p.id <= prev {
						bad("%s finish-time entry %x: ids out of order", fb.st, k)
					}
					prev = p.id
					if _, dup := indexed[p.id]; dup {
						bad("%s job %d is in two finish-time entries", fb.st, p.id)
					}
					indexed[p.id] = at{getI64(k[:8]), p.qid}
				}
				return nil
			}); err != nil {
				return err
			}
			if err := tx.Bucket(fb.byID).ForEach(func(k, v []byte) error {
				id := getU64(k)
				ok := len(v) == doneValLen
				if fb.st == StateDead {
					_, _, ok = parseDead(v)
				}
				if !ok {
					bad("%s: bad entry for job %d", fb.st, id)
					return nil
				}
				qid, finished := finishedEntry(fb.st, v)
				add(id, where{st: fb.st, qid: qid})
				if ix, ok := indexed[id]; !ok || ix.at != finished || ix.qid != qid {
					bad("%s job %d (queue %d, finished %d) is not so in the finish-time index (%+v)", fb.st, id, qid, finished, ix)
				}
				delete(indexed, id)
				return nil
			}); err != nil {
				return err
			}
			for id := range indexed {
				bad("the %s finish-time index holds job %d, which is not %s", fb.st, id, fb.st)
			}
		}

		holders := map[string]uint64{} // unique key → unfinished job holding it
		jobs := tx.Bucket(bucketJobs)
		if err := jobs.ForEach(func(k, v []byte) error {
			id := getU64(k)
			ws := seen[id]
			delete(seen, id)
			if len(ws) != 1 {
				bad("job %d is in %d state indexes %v", id, len(ws), ws)
				return nil
			}
			j, err := decodeRecord(id, v)
			if err != nil {
				if ws[0].st != StateDead {
					bad("job %d: %v", id, err)
				}
				return nil
			}
			w := ws[0]
			if name := queueNames[w.qid]; name != j.Queue {
				bad("job %d of queue %q is indexed under queue %q", id, j.Queue, name)
			}
			if (w.st == StateScheduled || w.st == StateRetry) && w.at != unixNano(j.RunAt) {
				bad("job %d is %s at %d but its record says run_at %d", id, w.st, w.at, unixNano(j.RunAt))
			}
			if j.UniqueKey != "" && !w.st.Finished() {
				if other, dup := holders[j.UniqueKey]; dup {
					bad("jobs %d and %d are both unfinished with unique key %q", other, id, j.UniqueKey)
				}
				holders[j.UniqueKey] = id
			}
			return nil
		}); err != nil {
			return err
		}
		for id, ws := range seen {
			bad("index entries %v for job %d, which has no record", ws, id)
		}

		unique := tx.Bucket(bucketUnique)
		for key, id := range holders {
			uv, ok := parseUnique(unique.Get([]byte(key)))
			if !ok || uv.id != id || uv.finished {
				bad("unfinished job %d does not hold its unique key %q (%+v)", id, key, uv)
			}
		}
		if err := unique.ForEach(func(k, v []byte) error {
			uv, ok := parseUnique(v)
			if !ok {
				bad("unique key %q: bad entry", k)
				return nil
			}
			if !uv.finished && holders[string(k)] != uv.id {
				bad("unique key %q held for job %d, which is not unfinished with that key", k, uv.id)
			}
			if uv.finished && tx.Bucket(bucketUniqueExp).Get(uniqueExpKey(uv.until, string(k))) == nil {
				bad("unique key %q of a finished job has no expiry entry", k)
			}
			return nil
		}); err != nil {
			return err
		}

		stored := tx.Bucket(bucketCounts)
		if err := stored.ForEach(func(k, v []byte) error {
			if len(k) != 3 || int(k[2]) >= numStates {
				bad("counts: bad key %x", k)
				return nil
			}
			qid, st := getQid(k), State(k[2])
			var want int64
			if c := counts[qid]; c != nil {
				want = c[st]
			}
			if got := getI64(v); got != want {
				bad("stored count of queue %q %s is %d, index holds %d", queueNames[qid], st, got, want)
			}
			return nil
		}); err != nil {
			return err
		}
		s.mu.RLock()
		defer s.mu.RUnlock()
		for qid, c := range counts {
			for _, st := range States {
				if c[st] == 0 {
					continue
				}
				if stored.Get(countKey(qid, st)) == nil {
					bad("no stored count for queue %q %s (index holds %d)", queueNames[qid], st, c[st])
				}
			}
		}
		for qid, q := range s.qByID {
			for _, st := range States {
				var want int64
				if c := counts[qid]; c != nil {
					want = c[st]
				}
				if q.counts[st] != want {
					bad("in-memory count of queue %q %s is %d, index holds %d", q.name, st, q.counts[st], want)
				}
			}
		}
		return nil
	}()
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
