package queue

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

var timeZero time.Time

// janitor enforces retention every JanitorInterval: done and dead jobs past
// their age or count limit, expired unique keys of finished jobs, old per-minute
// counters. Each pass deletes in transactions of at most 10,000 entries so the
// writer never stalls for long.
func (s *Store) janitor() {
	defer close(s.janEnd)
	t := time.NewTicker(s.opts.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.Trim(context.Background()); err != nil && err != ErrClosed {
				s.log.Error("retention pass failed", "err", err)
			}
		}
	}
}

// TrimResult counts what one retention pass removed.
type TrimResult struct {
	Done, Dead, UniqueKeys, StatMinutes int
}

// Trim runs one retention pass now (the janitor calls it on its interval).
func (s *Store) Trim(ctx context.Context) (TrimResult, error) {
	var r TrimResult
	var err error
	if r.Done, err = s.trimFinished(ctx, StateDone, s.opts.DoneLimit, s.opts.DoneRetention); err != nil {
		return r, err
	}
	if r.Dead, err = s.trimFinished(ctx, StateDead, s.opts.DeadLimit, s.opts.DeadRetention); err != nil {
		return r, err
	}
	if r.UniqueKeys, err = s.trimUnique(ctx); err != nil {
		return r, err
	}
	r.StatMinutes, err = s.trimStats(ctx)
	return r, err
}

// trimFinished deletes the oldest finished jobs beyond limit, and every one that
// finished before now-retention.
func (s *Store) trimFinished(ctx context.Context, st State, limit int, retention time.Duration) (int, error) {
	total := 0
	for {
		n := 0
		err := s.admin(ctx, func(t *txn) error {
			n = 0
			b := t.done
			if st == StateDead {
				b = t.dead
			}
			var count int64
			for _, q := range t.s.qByID {
				count += q.counts[st]
			}
			excess := int(count) - limit
			cutoff := t.now.Add(-retention).UnixNano()
			var keys [][]byte
			c := b.Cursor()
			// Ids are in enqueue order, so the lowest ids are (about) the oldest:
			// the excess is taken from the front, then anything past its age.
			for k, v := c.First(); k != nil && len(keys) < defaultTrimBatch; k, v = c.Next() {
				if len(keys) < excess || finishedAt(st, v) < cutoff {
					keys = append(keys, append([]byte(nil), k...))
				}
			}
			for _, k := range keys {
				qid, err := t.removeFinished(b, st, k)
				if err != nil {
					return err
				}
				if err := t.deleteJob(getU64(k)); err != nil {
					return err
				}
				if q := t.queueByID(qid); q != nil {
					t.change.touch(q.name)
				}
			}
			n = len(keys)
			t.change.Removed += n
			return nil
		})
		total += n
		if err != nil || n < defaultTrimBatch {
			return total, err
		}
	}
}

func finishedAt(st State, v []byte) int64 {
	if st == StateDone {
		dv, _ := parseDone(v)
		return dv.finished
	}
	_, at, _ := parseDead(v)
	return at
}

func (t *txn) removeFinished(b *bolt.Bucket, st State, k []byte) (uint16, error) {
	var qid uint16
	if st == StateDone {
		dv, _ := parseDone(b.Get(k))
		qid = dv.qid
	} else {
		qid, _, _ = parseDead(b.Get(k))
	}
	t.delta(qid, st, -1)
	return qid, b.Delete(k)
}

func (s *Store) trimUnique(ctx context.Context) (int, error) {
	n := 0
	err := s.admin(ctx, func(t *txn) error {
		n = 0
		var keys [][]byte
		c := t.uexp.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < defaultTrimBatch; k, _ = c.Next() {
			if int64(getU64(k[:8])) > t.nowNs {
				break
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := t.uexp.Delete(k); err != nil {
				return err
			}
			uk := k[8:]
			if uv, ok := parseUnique(t.unique.Get(uk)); ok && uv.finished && uv.until <= t.nowNs {
				if err := t.unique.Delete(uk); err != nil {
					return err
				}
			}
		}
		n = len(keys)
		return nil
	})
	return n, err
}

func (s *Store) trimStats(ctx context.Context) (int, error) {
	n := 0
	err := s.admin(ctx, func(t *txn) error {
		n = 0
		before := u64(uint64(max(0, t.now.Add(-s.opts.StatsRetention).Unix()/60)))
		var keys [][]byte
		c := t.stats.Cursor()
		for k, _ := c.First(); k != nil && string(k) < string(before); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := t.stats.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	return n, err
}
