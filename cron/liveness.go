package cron

import (
	"context"
	"fmt"
	"time"

	"conveyor/data"
	"conveyor/ops/events"
	"conveyor/ops/failures"
)

// HealthState names the scheduler's condition.
type HealthState string

// The health states. Only HealthOK is healthy.
const (
	// HealthStarting: Start has not finished its first pass yet.
	HealthStarting HealthState = "starting"
	// HealthOK: the loop handles every tick when it is due.
	HealthOK HealthState = "ok"
	// HealthLate: the loop has not handled due work for LateAfter: it is
	// stuck in a pass (a wedged disk) or not being scheduled.
	HealthLate HealthState = "late"
	// HealthFailing: the loop runs, but for LateAfter it has failed to
	// enqueue a due tick or to record fires in SQLite.
	HealthFailing HealthState = "failing"
	// HealthStopped: the loop is not running (not started, stopped, or
	// crashed).
	HealthStopped HealthState = "stopped"
)

// Health is the scheduler's liveness, as its watchdog last judged it.
type Health struct {
	State  HealthState
	Detail string    // what was seen, in a sentence
	Since  time.Time // when the state began, on the scheduler's clock
	// LastPass is when the loop last began a pass; NextWake when it will
	// wake next (both on the scheduler's clock).
	LastPass, NextWake time.Time
	// LateAfter is the threshold in force.
	LateAfter time.Duration
	// Fires and Misses count the ticks fired and the missed ranges
	// reported since Start; LateFires the fires later than LateAfter.
	Fires, Misses, LateFires uint64
	// LastLateness and MaxLateness are how long after its scheduled instant
	// the last tick, and the latest tick since Start, was durable in the
	// queue (catch-ups of downtime excluded).
	LastLateness, MaxLateness time.Duration
}

// OK reports whether the scheduler is healthy.
func (h Health) OK() bool { return h.State == HealthOK }

// livenessSubject is the subject of the one issue the scheduler raises
// about itself (source scheduler): its fingerprint is
// failures.ProblemFingerprint(data.SourceScheduler, "scheduler").
const livenessSubject = "scheduler"

// legacyLivenessFingerprint is the fingerprint that issue had before the
// scheduler raised it through the issue tracker (source scheduler, kind
// "liveness", class "scheduler", in failures.Fingerprint's terms). An issue
// still open under it is resolved ("auto") at the scheduler's first
// verdict; if the scheduler is unhealthy then, the issue opens again under
// the tracker's fingerprint.
var legacyLivenessFingerprint = failures.Fingerprint(string(data.SourceScheduler), "liveness", "scheduler", "")

// Health returns the scheduler's liveness as its watchdog last judged it,
// with the loop's figures as they are now.
func (s *Scheduler) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	if !s.running && (s.state == stateRunning || s.state == stateStopped) {
		h.State = HealthStopped
		h.Detail = s.stoppedDetail()
	}
	h.LastPass, h.NextWake, h.LateAfter = s.passFrom, s.wakeAt, s.opts.LateAfter
	if !s.running {
		h.NextWake = time.Time{}
	}
	h.Fires, h.Misses, h.LateFires = s.stats.fires, s.stats.misses, s.stats.late
	h.LastLateness, h.MaxLateness = s.stats.lastLate, s.stats.maxLate
	return h
}

func (s *Scheduler) stoppedDetail() string {
	if s.stopWhy == "" {
		return "the scheduler loop is not running"
	}
	return "the scheduler loop stopped: " + s.stopWhy
}

// observation is the watchdog's memory of the loop: which pass count it saw
// at what time while work was due.
type observation struct {
	active bool
	passes uint64
	at     time.Time
}

// watch is the liveness watchdog. It judges the loop by what it sees it do,
// not by clock arithmetic alone: the loop is late when, across LateAfter of
// the watchdog's own observation, work was due and the loop finished no
// pass. So a clock jump, which wakes the loop and the watchdog together,
// never reads as a stall. On every change of verdict it opens (or adds to)
// the scheduler issue, or resolves it.
func (s *Scheduler) watch(ctx context.Context) {
	first := true
	for {
		s.mu.Lock()
		now := s.clock.Now()
		verdict, wake := s.evaluate(now, &s.obs)
		judged := s.passes
		prev := s.health
		changed := verdict.State != prev.State || (verdict.State != HealthOK && verdict.Detail != prev.Detail)
		if changed {
			verdict.Since = now
			if verdict.State == prev.State {
				verdict.Since = prev.Since
			}
			s.health = verdict
			s.notifyLocked()
		}
		s.mu.Unlock()
		if changed || first {
			s.report(ctx, prev, verdict, first)
			first = false
		}
		s.mu.Lock()
		if changed || s.reported == "" {
			s.reported = verdict.State
		}
		s.judged = judged
		s.notifyLocked()
		s.mu.Unlock()

		t := s.clock.Timer(wake)
		select {
		case <-t.C():
		case <-s.wdKick:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// evaluate judges the loop at now and returns when to look again. Called
// with s.mu held.
func (s *Scheduler) evaluate(now time.Time, obs *observation) (Health, time.Time) {
	late := s.opts.LateAfter
	if !s.running {
		*obs = observation{}
		return Health{State: HealthStopped, Detail: s.stoppedDetail()}, now.Add(s.opts.Recheck)
	}
	due := s.wakeAt
	if s.inPass {
		due = s.passFrom
	}
	var verdict Health
	var wake time.Time
	switch {
	case due.After(now):
		*obs = observation{}
		wake = due
	case !obs.active || obs.passes != s.passes:
		*obs = observation{active: true, passes: s.passes, at: now}
		wake = now.Add(late)
		s.notifyLocked()
	case now.Sub(obs.at) >= late:
		what := "waking"
		if s.inPass {
			what = "a pass that began at " + s.passFrom.Format(time.RFC3339)
		}
		verdict = Health{State: HealthLate, Detail: fmt.Sprintf("the scheduler loop is %s behind: work was due at %s and it is still %s",
			now.Sub(due).Round(time.Second), due.Format(time.RFC3339), what)}
		wake = now.Add(late)
	default:
		wake = obs.at.Add(late)
	}
	if verdict.State == "" {
		verdict = Health{State: HealthOK, Detail: "the scheduler handles every tick on time"}
		if s.passes == 0 {
			verdict = Health{State: HealthStarting, Detail: "the scheduler is starting"}
		}
		// Failing enqueues or bookkeeping, for LateAfter or longer.
		if s.storeErr != "" {
			if at := s.errSince.Add(late); !now.Before(at) {
				verdict = Health{State: HealthFailing, Detail: s.storeErr}
			} else if at.Before(wake) {
				wake = at
			}
		}
		if verdict.State != HealthFailing {
			for _, sl := range s.slots {
				if sl.err == "" {
					continue
				}
				if at := sl.errSince.Add(late); !now.Before(at) {
					verdict = Health{State: HealthFailing, Detail: fmt.Sprintf("entry %s: a due tick is not enqueued: %s", sl.e.Name, sl.err)}
					break
				} else if at.Before(wake) {
					wake = at
				}
			}
		}
	}
	return verdict, wake
}

// report raises or clears the scheduler issue after a change of verdict;
// at the first verdict it also clears an issue left open by an earlier run.
func (s *Scheduler) report(ctx context.Context, prev, verdict Health, first bool) {
	ctx = context.WithoutCancel(ctx)
	defer s.publish(events.TopicSchedule)
	if first {
		if _, err := s.issues.Clear(ctx, legacyLivenessFingerprint); err != nil {
			s.log.Error("resolve the scheduler issue of an earlier version", "err", err)
		}
	}
	switch verdict.State {
	case HealthOK, HealthStarting:
		if prev.State == HealthStarting && verdict.State == HealthStarting && !first {
			return
		}
		resolved, err := s.issues.Clear(ctx, failures.ProblemFingerprint(data.SourceScheduler, livenessSubject))
		if err != nil {
			s.log.Error("resolve the scheduler issue", "err", err)
			return
		}
		if resolved {
			s.log.Info("scheduler healthy again: issue resolved")
		}
	default:
		s.log.Error("scheduler unhealthy", "state", verdict.State, "detail", verdict.Detail)
		_, _, err := s.issues.Raise(ctx, failures.Problem{
			Source: data.SourceScheduler, Subject: livenessSubject, Kind: string(verdict.State),
			Title: "Scheduler " + string(verdict.State) + ": " + verdict.Detail, At: s.clock.Now(),
			Detail: map[string]any{"state": verdict.State, "detail": verdict.Detail, "late_after_s": s.opts.LateAfter.Seconds()},
		})
		if err != nil {
			s.log.Error("open the scheduler issue", "err", err)
		}
	}
}
