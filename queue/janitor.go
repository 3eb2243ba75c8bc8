package queue

import (
	"context"
	"time"
)

var timeZero time.Time

// Retention rides on the writer's commits: each main commit also deletes, from
// the oldest end of the finish-time indexes, the done and dead jobs over their
// limit or past their age, and the expired unique keys — at most
// maintenanceBudget entries, so that no commit grows long with it. A commit
// that leaves some due asks for another at once: a backlog is worked off in
// bounded steps between enqueues, and done never overshoots its limit by more
// than one commit's acks. The janitor wakes the writer every JanitorInterval,
// for the jobs that age out while nothing else commits, and trims the
// per-minute counters.
func (s *Store) janitor() {
	defer close(s.janEnd)
	t := time.NewTicker(s.opts.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.submit(func(p *pending) { p.maintain = true }); err != nil {
				return
			}
			if _, err := s.trimStats(context.Background()); err != nil && err != ErrClosed {
				s.log.Error("trimming the per-minute counters failed", "err", err)
			}
		}
	}
}

// maintenanceBudget bounds the retention work of one commit: twice the jobs it
// finishes (so that retention keeps pace) and at least minMaintenance, at most
// maxMaintenance entries.
func maintenanceBudget(finished int) int {
	return min(maxMaintenance, max(minMaintenance, 2*finished))
}

const (
	minMaintenance = 256
	maxMaintenance = 4096
)

// maintain does up to budget entries of retention work and reports whether
// more is due.
func (t *txn) maintain(budget int) (more bool, err error) {
	o := t.s.opts
	for _, f := range []func(int) (int, bool, error){
		func(b int) (int, bool, error) { return t.trimFinished(StateDone, o.DoneLimit, o.DoneRetention, b) },
		func(b int) (int, bool, error) { return t.trimFinished(StateDead, o.DeadLimit, o.DeadRetention, b) },
		t.trimUnique,
	} {
		n, m, err := f(budget)
		if err != nil {
			return false, err
		}
		budget -= n
		more = more || m
	}
	return more, nil
}

// TrimResult counts what one retention pass removed.
type TrimResult struct {
	Done, Dead, UniqueKeys, StatMinutes int
}

// Trim runs a whole retention pass now, in bounded transactions of its own
// (the commits do it as they go; see maintain).
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

// trimFinished deletes the jobs that finished first beyond limit, and every one
// that finished before now-retention, walking the finish-time index from its
// oldest end: the work is the jobs deleted, never the jobs kept.
func (s *Store) trimFinished(ctx context.Context, st State, limit int, retention time.Duration) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.admin(ctx, func(t *txn) error {
			var err error
			n, more, err = t.trimFinished(st, limit, retention, defaultTrimBatch)
			return err
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// trimUnique frees the keys of finished jobs whose UniqueFor window has passed,
// all of them, in transactions of at most defaultTrimBatch.
func (s *Store) trimUnique(ctx context.Context) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.admin(ctx, func(t *txn) error {
			var err error
			n, more, err = t.trimUnique(defaultTrimBatch)
			return err
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// trimUnique frees up to budget expired keys, earliest expiry first, and
// reports whether more have expired.
func (t *txn) trimUnique(budget int) (n int, more bool, err error) {
	c := t.uexp.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if int64(getU64(k[:8])) > t.nowNs {
			return n, false, nil
		}
		if n == budget {
			return n, true, nil
		}
		uk := append([]byte(nil), k[8:]...)
		if err := c.Delete(); err != nil {
			return n, false, err
		}
		if uv, ok := parseUnique(t.unique.Get(uk)); ok && uv.finished && uv.until <= t.nowNs {
			if err := t.unique.Delete(uk); err != nil {
				return n, false, err
			}
		}
		n++
	}
	return n, false, nil
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
