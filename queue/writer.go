package queue

import (
	"context"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The writer is the only goroutine that writes to the file. Producers hand it
// work (enqueues, finished attempts, operator actions) and wake it; each cycle
// takes everything waiting and commits it in one transaction together with the
// promotion of due jobs and the claims the lanes have room for: one fsync for
// all of it (group commit). Replies, deliveries and change notifications happen
// only after the commit returns.

// writerStats counts the writer's main transactions.
type writerStats struct {
	commits, enqueued, finished, commitNanos atomic.Int64
	maxNanos, windowMaxNanos                 atomic.Int64
}

// WriterStats describes the writer's work since Open.
type WriterStats struct {
	Commits    int64         // main transactions committed
	Enqueued   int64         // jobs they enqueued
	Finished   int64         // attempts they finished
	CommitTime time.Duration // total time spent in them, fsync included
	MaxCommit  time.Duration // the longest of them
}

// WriterStats returns the writer's counters: jobs per commit is the measure of
// group commit at work.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{
		Commits:    s.wstats.commits.Load(),
		Enqueued:   s.wstats.enqueued.Load(),
		Finished:   s.wstats.finished.Load(),
		CommitTime: time.Duration(s.wstats.commitNanos.Load()),
		MaxCommit:  time.Duration(s.wstats.maxNanos.Load()),
	}
}

// TakeMaxCommit returns the longest main transaction since the previous call
// (since Open for the first), for a caller that watches commits in windows.
func (s *Store) TakeMaxCommit() time.Duration {
	return time.Duration(s.wstats.windowMaxNanos.Swap(0))
}

func storeMax(a *atomic.Int64, v int64) {
	for old := a.Load(); v > old && !a.CompareAndSwap(old, v); old = a.Load() {
	}
}

type pending struct {
	enq      []*enqueueReq
	fin      []finish
	finSince time.Time // when the oldest waiting finish arrived (real time)
	admin    []*adminReq
	maintain bool // the janitor's tick: look for retention work
}

// Finished attempts are not worth a commit of their own at once: the job has
// run, and its worker is already free. They ride along with the next commit
// that has another reason (an enqueue, a claim, a due job), or get one when the
// oldest has waited ackLinger or ackBatch of them are waiting. At 1,000 jobs/s
// of single enqueues this halves the commits, so an enqueue rarely waits for an
// ack's fsync (the prototype measured a third fewer commits at no latency cost).
const (
	ackLinger = 5 * time.Millisecond
	ackBatch  = 1024
)

type enqueueReq struct {
	jobs    []NewJob
	results []Result
	err     error
	done    chan struct{}
	one     [1]Result // results of a single job, without an allocation of their own
}

type adminReq struct {
	fn    func(t *txn) error // nil: only wait for what came before (Flush)
	after func()             // run by the writer after a successful commit
	err   error
	done  chan struct{}
}

type finishKind uint8

const (
	finAck finishKind = iota + 1
	finFail
	finKill
	finSnooze
	finRelease
)

type finish struct {
	kind    finishKind
	id      uint64 // the job as claimed
	started int64  // when its attempt began (0: not begun)
	err     *AttemptError
	at      time.Time
}

func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) submit(add func(p *pending)) error {
	if err := s.refusing(); err != nil {
		return err
	}
	s.pmu.Lock()
	if s.closing {
		s.pmu.Unlock()
		return ErrClosed
	}
	add(&s.pend)
	s.pmu.Unlock()
	s.kick()
	return nil
}

// admin runs fn in a transaction of its own on the writer, after everything
// handed to the writer before it, and returns its error.
func (s *Store) admin(ctx context.Context, fn func(t *txn) error) error {
	return s.adminAfter(ctx, fn, nil)
}

func (s *Store) adminAfter(ctx context.Context, fn func(t *txn) error, after func()) error {
	req := &adminReq{fn: fn, after: after, done: make(chan struct{})}
	if err := s.submit(func(p *pending) { p.admin = append(p.admin, req) }); err != nil {
		return err
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) writer() {
	defer close(s.writerEnd)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		stopping := false
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.stop:
			stopping = true
		}
		wait := s.cycle(stopping)
		if stopping {
			return
		}
		timer.Stop()
		if wait >= 0 {
			timer.Reset(wait)
		}
	}
}

// cycle commits everything there is to do now and returns how long until there is
// timed work (a due job, finished attempts lingering), or -1 when there is none.
// The last cycle, when the store closes, commits every finished attempt however
// young (closing is a reason to commit) and claims nothing.
func (s *Store) cycle(stopping bool) time.Duration {
	var spare pending // the previous round's slices, handed back for reuse
	for {
		s.linger()
		s.pmu.Lock()
		p := s.pend
		s.pend = pending{enq: spare.enq[:0], fin: spare.fin[:0], admin: spare.admin[:0]}
		s.pmu.Unlock()
		if p.maintain {
			s.trimDue = true
		}

		// The clock is read after taking the work: whatever was handed over
		// after a clock change (a Flush, say) sees promotions as of that change.
		now := s.now()
		var consumers []*Consumer
		if !stopping {
			consumers = s.snapshotConsumers()
		}
		others := (!s.nextDue.IsZero() && !s.nextDue.After(now)) || s.claimable(consumers) || (s.trimDue && !stopping)

		// Finished attempts wait for a commit with another reason (see ackLinger);
		// operator actions and Flush want everything before them committed.
		takeFin := others || stopping || len(p.enq) > 0 || len(p.admin) > 0 ||
			len(p.fin) >= ackBatch || (len(p.fin) > 0 && time.Since(p.finSince) >= ackLinger)
		if !takeFin && len(p.fin) > 0 {
			// Hand them back, ahead of any that arrived meanwhile. Their array
			// now belongs to the pending list, not to spare.
			s.pmu.Lock()
			s.pend.fin = append(p.fin, s.pend.fin...)
			s.pend.finSince = p.finSince
			s.pmu.Unlock()
			p.fin = nil
		}

		did := len(p.enq) > 0 || len(p.fin) > 0 || others
		var err error
		if did {
			err = s.commitMain(now, consumers, p.enq, p.fin)
		}
		for _, a := range p.admin {
			s.runAdmin(a)
		}
		if err != nil {
			// Enqueuers got the error. Finished attempts stay pending and are
			// tried again shortly (a full disk may have space again); after a
			// failed write they wait for the restart, which finds their jobs
			// running and puts them back.
			s.log.Error("queue commit failed", "err", err)
			s.pmu.Lock()
			s.pend.fin = append(p.fin, s.pend.fin...)
			s.pmu.Unlock()
			if s.refusing() != nil {
				return -1
			}
			return 100 * time.Millisecond
		}
		if !did && len(p.admin) == 0 {
			return s.nextWait()
		}
		clear(p.enq)
		clear(p.fin)
		clear(p.admin)
		spare = p
	}
}

// minLingerCallers is the concurrency below which the writer never lingers:
// a few callers are better served at once than by a fuller commit.
const minLingerCallers = 8

// maxLinger bounds how long the writer waits for more enqueues to join a
// commit: at most lingerCommits times the last commit's duration, and never
// more than this.
const maxLinger = 2 * time.Millisecond

// lingerCommits is how many of the last commit's durations the writer waits,
// at most, for the callers it expects. Callers that reach the store over HTTP
// come back one request's processing after another, not all at once: with 64
// HTTP clients on 2 cores, a wait of one commit ended with about 40 of them
// back (40 jobs per commit), a wait of two with about 56, and three waited no
// more usefully than two (bench --phases http). The fuller commits cost less
// CPU per job (fewer fsyncs and page writes), which on a busy machine is what
// bounds the rate.
const lingerCommits = 2

// linger waits, briefly, for enqueue callers to catch up before a commit. When
// the last commit answered many callers, they come back soon after, close
// together; committing for the first one to arrive would leave the rest to wait
// a whole commit, and split them into a small and a large commit (half the
// jobs per fsync). So until about as many callers as it can expect are back,
// the writer waits for the others, up to lingerCommits times the time the last
// commit took (the first ones' wait grows by at most that, and the commits
// carry more jobs). Below minLingerCallers (the latency case) it never waits.
func (s *Store) linger() {
	want := s.enqCallers
	if want < minLingerCallers {
		return
	}
	var timer *time.Timer
	deadline := time.Now().Add(min(maxLinger, lingerCommits*s.lastCommit))
	for {
		s.pmu.Lock()
		n, closing := len(s.pend.enq), s.closing
		s.pmu.Unlock()
		d := time.Until(deadline)
		if n == 0 || n >= want || closing || d <= 0 {
			if timer != nil {
				timer.Stop()
			}
			return
		}
		if timer == nil {
			timer = time.NewTimer(d)
		}
		select {
		case <-s.wake:
		case <-timer.C:
			return
		}
	}
}

func (s *Store) snapshotConsumers() []*Consumer {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return append([]*Consumer(nil), s.consumers...)
}

// commitMain commits one cycle's enqueues and finished attempts together with due
// promotions and claims.
func (s *Store) commitMain(now time.Time, consumers []*Consumer, enq []*enqueueReq, fin []finish) error {
	var t *txn
	var trimMore bool
	t0 := time.Now()
	if len(fin) > 0 {
		s.failpoint(FailpointBeforeAckCommit)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t = s.newTxn(tx, now)
		for i := range fin {
			if err := t.finish(&fin[i]); err != nil {
				return err
			}
		}
		for i, r := range enq {
			if i == len(enq)/2 && i > 0 {
				s.failpoint(FailpointMidGroupCommit)
			}
			if err := t.enqueue(r); err != nil {
				return err
			}
		}
		if !s.nextDue.IsZero() && !s.nextDue.After(now) {
			s.failpoint(FailpointBeforePromote)
		}
		if err := t.promote(defaultPromoteBatch); err != nil {
			return err
		}
		for _, c := range consumers {
			if err := t.claimFor(c); err != nil {
				return err
			}
		}
		var err error
		if trimMore, err = t.maintain(maintenanceBudget(len(fin))); err != nil {
			return err
		}
		if err := t.computeNextDue(); err != nil {
			return err
		}
		if err := t.flushCounts(); err != nil {
			return err
		}
		s.failpoint(FailpointBeforeCommit)
		return nil
	})
	if err != nil {
		err = s.commitFailed(err)
		for _, r := range enq {
			r.results, r.err = nil, err
			close(r.done)
		}
		return err
	}
	s.failpoint(FailpointAfterCommit)
	s.committed()
	s.applyTxn(t)
	s.trimDue = trimMore
	// The callers the next commit can expect: those this one answers (they
	// come back) and those that arrived while it ran (they wait already) —
	// the most seen lately, fading by a tenth per commit when fewer come.
	s.pmu.Lock()
	waiting := len(s.pend.enq)
	s.pmu.Unlock()
	s.enqCallers = max(len(enq)+waiting, s.enqCallers*9/10)
	s.lastCommit = time.Since(t0)
	s.wstats.commits.Add(1)
	s.wstats.enqueued.Add(int64(t.change.Enqueued))
	s.wstats.finished.Add(int64(len(fin)))
	s.wstats.commitNanos.Add(int64(s.lastCommit))
	storeMax(&s.wstats.maxNanos, int64(s.lastCommit))
	storeMax(&s.wstats.windowMaxNanos, int64(s.lastCommit))
	for _, r := range enq {
		close(r.done)
	}
	for _, cb := range t.claims {
		cb.c.deliver(cb.claims)
	}
	s.subs.publish(&t.change)
	return nil
}

// claimable reports whether some open consumer has room and one of its unpaused
// queues has ready jobs, so that a claim would find something.
func (s *Store) claimable(consumers []*Consumer) bool {
	for _, c := range consumers {
		if !c.accepting() || c.inflight.Load() >= int64(c.target()) {
			continue
		}
		for _, name := range c.queueNames {
			if q := s.queues[name]; q != nil && !q.paused && q.counts[StateReady] > 0 {
				return true
			}
		}
	}
	return false
}

func (s *Store) runAdmin(a *adminReq) {
	if a.fn == nil {
		close(a.done)
		return
	}
	var t *txn
	a.err = s.db.Update(func(tx *bolt.Tx) error {
		t = s.newTxn(tx, s.now())
		if err := a.fn(t); err != nil {
			return err
		}
		if err := t.computeNextDue(); err != nil {
			return err
		}
		if err := t.flushCounts(); err != nil {
			return err
		}
		s.failpoint(FailpointBeforeCommit)
		return nil
	})
	if a.err != nil {
		a.err = s.commitFailed(a.err)
	} else {
		s.failpoint(FailpointAfterCommit)
		s.committed()
		s.applyTxn(t)
		if a.after != nil {
			a.after()
		}
		s.subs.publish(&t.change)
	}
	close(a.done)
}

// applyTxn brings the in-memory mirror in step with a committed transaction.
func (s *Store) applyTxn(t *txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range t.newQueues {
		s.queues[q.name] = q
		s.qByID[q.id] = q
	}
	for qid, d := range t.deltas {
		q := s.qByID[qid]
		for st := range d {
			q.counts[st] += d[st]
		}
	}
	for qid, paused := range t.paused {
		s.qByID[qid].paused = paused
	}
	for qid, since := range t.heads {
		s.qByID[qid].headSince = since
	}
	if t.nextDueKnown {
		s.nextDue = t.nextDue
	}
}

// nextWait returns how long until the writer has timed work, or -1.
func (s *Store) nextWait() time.Duration {
	now := s.now()
	wait := time.Duration(-1)
	if !s.nextDue.IsZero() {
		wait = max(0, s.nextDue.Sub(now))
	}
	s.pmu.Lock()
	if len(s.pend.fin) > 0 {
		if d := max(0, ackLinger-time.Since(s.pend.finSince)); wait < 0 || d < wait {
			wait = d
		}
	}
	s.pmu.Unlock()
	return wait
}
