package cron

import (
	"context"
	"encoding/json"
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

// livenessFingerprint is the one issue the scheduler opens about itself.
var livenessFingerprint = failures.Fingerprint(string(data.SourceScheduler), "liveness", "scheduler", "")

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
		case <-s.quit:
			t.Stop()
			return
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

// report opens or resolves the scheduler issue after a change of verdict;
// at the first verdict it resolves an issue left open by an earlier run.
func (s *Scheduler) report(ctx context.Context, prev, verdict Health, first bool) {
	ctx = context.WithoutCancel(ctx)
	defer s.publish(events.TopicSchedule)
	switch verdict.State {
	case HealthOK, HealthStarting:
		if prev.State == HealthStarting && verdict.State == HealthStarting && !first {
			return
		}
		resolved, err := s.db.ResolveIssueByFingerprint(ctx, livenessFingerprint, data.ResolvedByAuto)
		if err != nil {
			s.log.Error("resolve the scheduler issue", "err", err)
			return
		}
		if resolved {
			s.log.Info("scheduler healthy again: issue resolved")
			s.publish(events.TopicIssues)
		}
	default:
		s.log.Error("scheduler unhealthy", "state", verdict.State, "detail", verdict.Detail)
		detail, _ := json.Marshal(map[string]any{
			"state": verdict.State, "detail": verdict.Detail, "late_after_s": s.opts.LateAfter.Seconds(),
		})
		_, _, err := s.db.UpsertIssue(ctx, data.IssueEvent{
			Fingerprint: livenessFingerprint, Source: data.SourceScheduler, Kind: string(verdict.State),
			Title: "Scheduler " + string(verdict.State) + ": " + verdict.Detail, Context: detail, At: s.clock.Now(),
		})
		if err != nil {
			s.log.Error("open the scheduler issue", "err", err)
			return
		}
		s.publish(events.TopicIssues)
	}
}
