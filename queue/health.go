package queue

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// Errors the store reports through Err, and returns to the writes they stop.
var (
	// ErrDiskFull is returned by writes while the queue file's filesystem has
	// no space left. Nothing of them was written; they succeed again once
	// space is freed, without a restart.
	ErrDiskFull = errors.New("queue: no space left for the queue file")
	// ErrFailed is returned by every write after the queue file could not be
	// written or synced for a reason other than a full disk. After such an
	// error the kernel may have dropped the unsynced pages while reporting the
	// next sync as a success (PostgreSQL's fsync lesson), so nothing more is
	// acknowledged: the store refuses writes until the process restarts and
	// recovers from what is on disk.
	ErrFailed = errors.New("queue: the queue file could not be written; writes are refused until conveyor restarts")
	// ErrInconsistent is what Err reports when a commit found the stored
	// counters disagreeing with the indexes. Writes go on (the counter is
	// held at zero); the counters are recounted from the indexes at the next
	// start.
	ErrInconsistent = errors.New("queue: the store's counters disagree with its indexes; they are recounted at the next start: restart conveyor")
)

// health is what keeps the store from working normally.
type health struct {
	mu           sync.Mutex
	failed       error // sticky until restart
	diskFull     error // until the next commit that succeeds
	inconsistent error // sticky until restart (recounted then)
}

// Err returns what keeps the store from working normally, or nil: a failed
// write (ErrFailed: writes are refused until restart), a full disk
// (ErrDiskFull: until space is freed), or counters found inconsistent
// (ErrInconsistent: until restart). Readiness reports it.
func (s *Store) Err() error {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.failed != nil:
		return h.failed
	case h.diskFull != nil:
		return h.diskFull
	}
	return h.inconsistent
}

// refusing returns the error that refuses writes now (ErrFailed), or nil.
func (s *Store) refusing() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.failed
}

// commitFailed sorts a failed commit's error: a full disk, a failed write or
// sync (the store then refuses writes), or an error of the transaction's own
// (nothing to remember). It returns the error the callers get.
func (s *Store) commitFailed(err error) error {
	var errno syscall.Errno
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case errors.Is(err, syscall.ENOSPC):
		err = fmt.Errorf("%w (%s): nothing of this request was written: %v", ErrDiskFull, s.path, err)
		if h.diskFull == nil {
			s.log.Error("the queue file's disk is full: writes fail until space is freed", "file", s.path, "err", err)
		}
		h.diskFull = err
	case errors.As(err, &errno):
		err = fmt.Errorf("%w (%s: %v)", ErrFailed, s.path, err)
		if h.failed == nil {
			s.log.Error("the queue file could not be written: refusing writes until restart", "file", s.path, "err", err)
			h.failed = err
		}
	}
	return err
}

// committed notes a commit that succeeded: a full disk is over.
func (s *Store) committed() {
	h := &s.health
	h.mu.Lock()
	if h.diskFull != nil {
		s.log.Info("the queue file's disk has space again: writes resume", "file", s.path)
		h.diskFull = nil
	}
	h.mu.Unlock()
}

// inconsistent notes counters found disagreeing with the indexes (once).
func (s *Store) inconsistent(detail string) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inconsistent == nil {
		h.inconsistent = fmt.Errorf("%w (%s)", ErrInconsistent, detail)
		s.log.Error("store inconsistency: counters are recounted at the next start", "detail", detail)
	}
}

var keyRecount = []byte("recount")

// recount rebuilds every stored counter from the indexes (at Open, after a
// commit found them inconsistent).
func recount(tx *bolt.Tx) error {
	counts := map[string]int64{}
	add := func(qid uint16, st State) { counts[string(countKey(qid, st))]++ }
	ready := tx.Bucket(bucketReady)
	if err := ready.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != 2 {
			return nil
		}
		qid := getQid(k)
		return ready.Bucket(k).ForEach(func(_, _ []byte) error { add(qid, StateReady); return nil })
	}); err != nil {
		return err
	}
	for _, tb := range []struct {
		name []byte
		st   State
	}{{bucketScheduled, StateScheduled}, {bucketRetry, StateRetry}} {
		if err := tx.Bucket(tb.name).ForEach(func(_, v []byte) error { add(getQid(v), tb.st); return nil }); err != nil {
			return err
		}
	}
	for _, tb := range []struct {
		name []byte
		st   State
	}{{bucketDoneAt, StateDone}, {bucketDeadAt, StateDead}} {
		if err := tx.Bucket(tb.name).ForEach(func(k, v []byte) error {
			if !validEntry(k, v) {
				return fmt.Errorf("%w: a bad %s finish-time entry %x", ErrCorruptRecord, tb.st, k)
			}
			for i := range len(v) / finPairLen {
				add(pairAt(v, i).qid, tb.st)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketRunning).ForEach(func(_, v []byte) error {
		rv, _ := parseRunning(v)
		add(rv.qid, StateRunning)
		return nil
	}); err != nil {
		return err
	}
	if err := tx.DeleteBucket(bucketCounts); err != nil {
		return err
	}
	b, err := tx.CreateBucket(bucketCounts)
	if err != nil {
		return err
	}
	for k, n := range counts {
		if err := b.Put([]byte(k), u64(uint64(n))); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Delete(keyRecount)
}
