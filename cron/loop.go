package cron

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/ops/events"
	"conveyor/queue"
)

// plan is one entry's decision in a pass.
type firePlan struct {
	sl    *slot
	d     Decision
	epoch uint64
	job   queue.NewJob
	jobID uint64
	fired bool   // the tick's job is durable in the queue
	err   string // why it was not
}

// loop wakes for the next due entry (or after Recheck), handles every due
// entry in one pass, and sleeps again, until ctx ends (Stop cancels it with
// lifecycle.ErrStopped).
func (s *Scheduler) loop(ctx context.Context) {
	why := "stopped"
	defer func() {
		if r := recover(); r != nil {
			why = fmt.Sprintf("panic: %v", r)
			s.log.Error("schedule loop crashed; no more ticks will fire until restart", "panic", r, "stack", string(debug.Stack()))
		}
		s.mu.Lock()
		s.running, s.stopWhy = false, why
		s.inPass = false
		s.notifyLocked()
		s.mu.Unlock()
		poke(s.wdKick)
		s.publish(events.TopicSchedule)
	}()
	io := context.WithoutCancel(ctx) // a pass that began finishes its writes
	for {
		wake := s.pass(io)
		t := s.clock.Timer(wake)
		select {
		case <-t.C():
		case <-s.kick:
		case <-ctx.Done():
			t.Stop()
			if !errors.Is(context.Cause(ctx), lifecycle.ErrStopped) {
				why = "its context ended"
			}
			return
		}
		t.Stop()
	}
}

// pass handles every entry due at the clock's now and returns when the loop
// should wake next.
func (s *Scheduler) pass(ctx context.Context) time.Time {
	if s.beforePass != nil {
		s.beforePass()
	}
	s.mu.Lock()
	now := s.clock.Now()
	s.inPass, s.passFrom, s.replan = true, now, false
	s.notifyLocked()
	var plans []*firePlan
	for len(s.due) > 0 && !s.due[0].next.After(now) {
		sl := heap.Pop(&s.due).(*slot)
		d, err := sl.decide(now)
		if err == nil && !d.Next.After(now) {
			err = fmt.Errorf("cron: Decide returned next tick %s, not after %s", d.Next, now)
		}
		if err != nil {
			s.retire(sl, err)
			continue
		}
		if d.Fire.IsZero() && d.MissedLast.IsZero() { // woken early: the clock went back
			sl.next = d.Next
			heap.Push(&s.due, sl)
			continue
		}
		sl.busy = true
		plans = append(plans, &firePlan{sl: sl, d: d, epoch: sl.epoch})
	}
	s.mu.Unlock()
	poke(s.wdKick)

	if len(plans) > 0 || len(s.unsaved) > 0 {
		s.run(ctx, plans, now)
	}

	s.mu.Lock()
	s.inPass, s.passAt = false, now
	s.passes++
	wake := now.Add(s.opts.Recheck)
	if len(s.due) > 0 && s.due[0].next.Before(wake) {
		wake = s.due[0].next
	}
	s.wakeAt = wake
	s.notifyLocked()
	s.mu.Unlock()
	poke(s.wdKick)
	return wake
}

// run enqueues the plans' ticks in one batch, records what happened in
// SQLite in one transaction, and reschedules the entries.
func (s *Scheduler) run(ctx context.Context, plans []*firePlan, now time.Time) {
	s.enqueue(ctx, plans)
	if s.opts.AfterEnqueue != nil {
		for _, p := range plans {
			if p.fired {
				s.opts.AfterEnqueue()
				break
			}
		}
	}
	firedAt := s.clock.Now()

	runs := make([]data.CronRun, 0, len(plans))
	for _, p := range plans {
		r := data.CronRun{Entry: p.sl.e.Name, ReportedAt: now}
		if p.fired {
			r.Fire, r.JobID, r.FiredAt = p.d.Fire, p.jobID, firedAt
		}
		if !p.d.MissedLast.IsZero() {
			r.MissedFirst, r.MissedLast = p.d.MissedFirst, p.d.MissedLast
			s.log.Warn("missed ticks: they will not run", "entry", p.sl.e.Name,
				"first", p.d.MissedFirst.Format(time.RFC3339), "last", p.d.MissedLast.Format(time.RFC3339),
				"policy", policyOf(p.sl.e), "now", now.Format(time.RFC3339))
		}
		if r.Fire.IsZero() && r.MissedLast.IsZero() {
			continue
		}
		runs = append(runs, r)
	}
	pending := append(s.unsaved, runs...)
	_, recErr := s.db.RecordCronRuns(ctx, pending)
	if recErr != nil {
		if len(pending) > maxUnsaved {
			s.log.Error("dropping unrecorded schedule runs: SQLite has refused them too long", "dropped", len(pending)-maxUnsaved)
			pending = pending[len(pending)-maxUnsaved:]
		}
		s.unsaved = pending
		s.log.Error("schedule history not stored; it is kept in memory and retried", "runs", len(pending), "err", recErr)
	} else {
		s.unsaved = nil
	}

	s.mu.Lock()
	if recErr != nil {
		if s.storeErr == "" {
			s.errSince = now
		}
		s.storeErr = "history not stored in SQLite: " + recErr.Error()
	} else {
		s.storeErr, s.errSince = "", time.Time{}
	}
	for _, p := range plans {
		s.settle(p, now, firedAt)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.publish(events.TopicSchedule)

	if recErr == nil && firedAt.Sub(s.prunedAt) >= pruneEvery {
		s.prunedAt = firedAt
		if n, err := s.db.PruneCronFires(ctx, firedAt.Add(-s.opts.FireRetention)); err != nil {
			s.log.Error("prune schedule history", "err", err)
		} else if n > 0 {
			s.log.Debug("pruned schedule history", "rows", n)
		}
	}
}

// enqueue puts the plans' ticks in the queue in one batch. A job the queue
// refuses is taken out (its entry becomes unavailable) and the rest is
// enqueued again.
func (s *Scheduler) enqueue(ctx context.Context, plans []*firePlan) {
	var batch []*firePlan
	for _, p := range plans {
		if p.d.Fire.IsZero() {
			continue
		}
		job, err := s.tickJob(p)
		if err != nil {
			p.err = err.Error()
			continue
		}
		p.job = job
		batch = append(batch, p)
	}
	for len(batch) > 0 {
		jobs := make([]queue.NewJob, len(batch))
		for i, p := range batch {
			jobs[i] = p.job
		}
		res, err := s.store.EnqueueMany(ctx, jobs)
		var ve *queue.ValidationError
		if errors.As(err, &ve) && ve.Index >= 0 && ve.Index < len(batch) {
			bad := batch[ve.Index]
			bad.err = "the queue refused the job: " + ve.Error()
			s.mu.Lock()
			bad.sl.unavailable = bad.err
			s.mu.Unlock()
			batch = append(batch[:ve.Index], batch[ve.Index+1:]...)
			continue
		}
		if err != nil {
			for _, p := range batch {
				p.err = "enqueue: " + err.Error()
			}
			s.log.Error("schedule enqueue failed; the ticks will be retried", "jobs", len(batch), "err", err)
			return
		}
		for i, p := range batch {
			p.fired, p.jobID = true, res[i].ID
		}
		return
	}
}

// tickJob is the job of a plan's tick, made by the registry's NewJob
// under the tick's unique key. The entry's class and queue are fixed at
// Start, so no lock is needed.
func (s *Scheduler) tickJob(p *firePlan) (queue.NewJob, error) {
	e := p.sl.e
	args, err := e.ArgsAt(p.d.Fire)
	if err != nil {
		return queue.NewJob{}, err
	}
	req := s.request(e, args)
	req.Queue = p.sl.queue
	req.UniqueKey, req.UniqueFor = TickKey(e, p.d.Fire), uniqueFor(e)
	req.Context = tickContext(e.Name, p.d.Fire, p.d.Next, TriggerSchedule)
	nj, err := s.opts.Registry.NewJob(s.opts.Topology, req)
	if err != nil {
		return queue.NewJob{}, errors.New(refused(err))
	}
	return nj, nil
}

// tickContext is the context of a run of entry name for tick (next: the
// tick after it, zero when none): what lets a fan-out know its tick.
func tickContext(name string, tick, next time.Time, trigger string) map[string]string {
	c := map[string]string{CtxEntry: name, CtxTrigger: trigger}
	if !tick.IsZero() {
		c[CtxTick] = tick.UTC().Format(time.RFC3339)
	}
	if !next.IsZero() {
		c[CtxNext] = next.UTC().Format(time.RFC3339)
	}
	return c
}

// settle applies a plan's outcome to its entry and reschedules it. Called
// with s.mu held.
func (s *Scheduler) settle(p *firePlan, now, firedAt time.Time) {
	sl := p.sl
	sl.busy = false
	rec := p.d
	if !p.fired {
		rec.Fire = time.Time{}
	}
	sl.h = sl.h.Record(rec)
	if !rec.MissedLast.IsZero() {
		s.stats.misses++
		sl.misses = append([]Missed{{First: rec.MissedFirst, Last: rec.MissedLast, ReportedAt: now}}, sl.misses...)
		if len(sl.misses) > keepMisses {
			sl.misses = sl.misses[:keepMisses]
		}
	}
	if p.fired {
		sl.lastFiredAt, sl.lastJobID = firedAt, p.jobID
		late := firedAt.Sub(p.d.Fire)
		s.stats.fires++
		if !p.d.Fire.Before(s.started) { // not a catch-up of downtime
			s.stats.lastLate = late
			s.stats.maxLate = max(s.stats.maxLate, late)
			if late > s.opts.LateAfter {
				s.stats.late++
				s.log.Warn("tick fired late", "entry", sl.e.Name, "tick", p.d.Fire.Format(time.RFC3339), "late", late)
			}
		}
		s.log.Debug("tick fired", "entry", sl.e.Name, "tick", p.d.Fire.Format(time.RFC3339), "job", p.jobID, "late", late)
		if s.onFire != nil {
			s.onFire(sl.e.Name, p.d.Fire, firedAt)
		}
	}
	switch {
	case p.err != "":
		if sl.err == "" {
			sl.errSince = now
		}
		sl.err = p.err
		sl.retries++
	default:
		sl.err, sl.errSince, sl.retries = "", time.Time{}, 0
	}
	if !sl.active() {
		sl.next = time.Time{}
		return // disabled (or made unavailable) during the pass
	}
	if sl.epoch != p.epoch {
		s.plan(sl, s.clock.Now()) // re-enabled during the pass: a new Since
		return
	}
	sl.next = p.d.Next
	if p.err != "" {
		// Offer the tick again soon; Decide reports it missed once it is
		// too late for its policy.
		if retry := now.Add(retryWait(sl.retries)); retry.Before(sl.next) {
			sl.next = retry
		}
	}
	heap.Push(&s.due, sl)
}

// retryWait is 1 s, 2 s, 4 s … up to maxRetryWait.
func retryWait(retries int) time.Duration {
	if retries > 5 {
		return maxRetryWait
	}
	return min(time.Second<<max(retries-1, 0), maxRetryWait)
}

func policyOf(e Entry) Policy {
	if e.Policy == RunOnce {
		return RunOnce
	}
	return Skip
}
