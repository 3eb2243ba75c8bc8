package cron

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"conveyor/data"
	"conveyor/ops/events"
)

// Who decided that an entry is enabled (View.EnabledBy).
const (
	EnabledByFile     = "file"     // the schedule file's status
	EnabledByOperator = "operator" // SetEnabled (the API), persisted
)

// Entry statuses (View.Status).
const (
	StatusActive      = "active"      // enabled, and it can run here
	StatusDisabled    = "disabled"    // disabled by the file or an operator
	StatusUnavailable = "unavailable" // enabled but it cannot run here (see View.Unavailable)
	StatusEnded       = "ended"       // its cron line has no more ticks
)

// Missed is a range of ticks that never fired: every tick of the entry from
// First to Last, both included.
type Missed struct {
	First, Last time.Time
	ReportedAt  time.Time
}

// View is one entry as the API shows it: its definition, its state and its
// history. Times are in the entry's zone; a zero time is "never" or "none".
type View struct {
	Name        string
	Line        string // the cron line as written, zone included
	Zone        string // the zone's name ("UTC" when the line names none)
	Class       string
	Queue       string // where its jobs go (the class's queue when the entry names none)
	Description string
	Args        json.RawMessage
	// Status is StatusActive, StatusDisabled, StatusUnavailable or
	// StatusEnded.
	Status string
	// Enabled is the entry's switch, and EnabledBy who set it
	// (EnabledByFile or EnabledByOperator).
	Enabled   bool
	EnabledBy string
	// Unavailable says why the entry cannot run here (its class is not
	// registered, no lane serves its queue…); "" when it can. An
	// unavailable entry never enqueues, not even on EnqueueNow.
	Unavailable string
	// Ended says why the entry has no more ticks; "" while it has.
	Ended         string
	Policy        Policy
	CatchUpWindow time.Duration // RunOnce only
	MaxAttempts   int           // 0: the queue's default
	// Since is when the scheduler took the entry into its care; no tick at
	// or before it fires.
	Since time.Time
	// LastTick is the scheduled instant of the last tick fired, LastFire
	// when it was enqueued, LastJobID its job.
	LastTick  time.Time
	LastFire  time.Time
	LastJobID uint64
	// ManualAt and ManualJobID are the last enqueue-now.
	ManualAt    time.Time
	ManualJobID uint64
	// NextTick is the tick the scheduler waits for; zero when the entry is
	// not active.
	NextTick time.Time
	// Missed are the latest ranges of ticks reported missed, newest first.
	Missed []Missed
	// Error is the last enqueue error while a due tick is not enqueued.
	Error string
}

// view builds an entry's View. Called with s.mu held.
func (s *Scheduler) view(sl *slot) View {
	e := sl.e
	loc := e.location()
	in := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.In(loc)
	}
	v := View{
		Name: e.Name, Line: e.Line, Zone: loc.String(), Class: e.Class, Queue: sl.queue,
		Description: e.Description, Args: e.Args, Enabled: sl.enabled(), EnabledBy: EnabledByFile,
		Unavailable: sl.unavailable, Ended: sl.ended, Policy: policyOf(e), MaxAttempts: sl.maxAttempts,
		Since: in(sl.h.Since), LastTick: in(sl.h.Last), LastFire: in(sl.lastFiredAt), LastJobID: sl.lastJobID,
		ManualAt: in(sl.manualAt), ManualJobID: sl.manualJobID, Error: sl.err,
	}
	if sl.override != nil {
		v.EnabledBy = EnabledByOperator
	}
	if v.Policy == RunOnce {
		v.CatchUpWindow = max(Grace, cmp.Or(e.CatchUpWindow, DefaultCatchUpWindow))
	}
	switch {
	case !v.Enabled:
		v.Status = StatusDisabled
	case v.Unavailable != "":
		v.Status = StatusUnavailable
	case v.Ended != "":
		v.Status = StatusEnded
	default:
		v.Status = StatusActive
		v.NextTick = in(sl.next)
	}
	for _, m := range sl.misses {
		v.Missed = append(v.Missed, Missed{First: in(m.First), Last: in(m.Last), ReportedAt: in(m.ReportedAt)})
	}
	return v
}

// Entries returns every entry of the schedule, in file order.
func (s *Scheduler) Entries() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]View, len(s.slots))
	for i, sl := range s.slots {
		out[i] = s.view(sl)
	}
	return out
}

// Entry returns one entry, or ErrUnknownEntry.
func (s *Scheduler) Entry(name string) (View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.byName[name]
	if sl == nil {
		return View{}, fmt.Errorf("%w: %q", ErrUnknownEntry, name)
	}
	return s.view(sl), nil
}

// slotFor returns a running scheduler's entry. Called with s.mu held.
func (s *Scheduler) slotFor(name string) (*slot, error) {
	sl := s.byName[name]
	if sl == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEntry, name)
	}
	if s.state != stateRunning {
		return nil, ErrNotRunning
	}
	return sl, nil
}

// EnqueueNow enqueues one job of entry name now, outside its schedule, and
// returns the job's id; disabled entries can be run this way too. It takes
// no unique key (each call is one more run) and leaves the entry's ticks
// alone. It returns ErrUnknownEntry, ErrUnavailable (wrapped, with the
// reason) for an entry that cannot run here, ErrNotRunning, or the queue's
// error.
func (s *Scheduler) EnqueueNow(ctx context.Context, name string) (uint64, error) {
	s.mu.Lock()
	sl, err := s.slotFor(name)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	if sl.unavailable != "" {
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %s", ErrUnavailable, sl.unavailable)
	}
	e, q := sl.e, sl.queue
	s.mu.Unlock()

	now := s.clock.Now()
	args, err := e.ArgsAt(now)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// The run counts as the entry's latest tick (at or before now), so a
	// fan-out it starts shares that tick's unique keys.
	latest, _ := e.Prev(now.Truncate(time.Second).Add(time.Second))
	next, _ := e.Next(now)
	req := s.request(e, args)
	req.Queue = q
	req.Context = tickContext(e.Name, latest, next, TriggerManual)
	nj, err := s.opts.Registry.NewJob(s.opts.Topology, req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s", ErrUnavailable, refused(err))
	}
	res, err := s.store.Enqueue(ctx, nj)
	if err != nil {
		return 0, err
	}
	s.log.Info("schedule entry enqueued now", "entry", e.Name, "job", res.ID)
	if err := s.db.RecordCronManual(ctx, e.Name, res.ID, now); err != nil {
		// The job is enqueued; only the entry's record of it is lost.
		s.log.Error("record enqueue-now", "entry", e.Name, "job", res.ID, "err", err)
	}
	s.mu.Lock()
	sl.manualJobID, sl.manualAt = res.ID, now
	s.notifyLocked()
	s.mu.Unlock()
	s.publish(events.TopicSchedule)
	return res.ID, nil
}

// SetEnabled switches entry name on or off for good (persisted; it
// overrides the schedule file until changed again) and returns the entry as
// it is afterwards. Enabling an entry that was not running gives it a new
// Since, so the time it spent disabled is never caught up. It returns
// ErrUnknownEntry, ErrNotRunning, or SQLite's error (nothing changed then).
func (s *Scheduler) SetEnabled(ctx context.Context, name string, enabled bool) (View, error) {
	s.toggle.Lock()
	defer s.toggle.Unlock()
	s.mu.Lock()
	sl, err := s.slotFor(name)
	if err != nil {
		s.mu.Unlock()
		return View{}, err
	}
	now := s.clock.Now()
	wasActive := sl.active()
	active := enabled && sl.unavailable == "" && sl.ended == ""
	sync := data.CronSync{Name: name, Line: sl.e.Line, Active: active}
	if active && !wasActive {
		sync.Since = now
	}
	s.mu.Unlock()

	if err := s.db.ToggleCron(ctx, sync, &enabled); err != nil {
		return View{}, err
	}

	s.mu.Lock()
	sl.override = &enabled
	sl.epoch++
	if !sync.Since.IsZero() {
		sl.h.Since = sync.Since
	}
	switch {
	case active && !wasActive && !sl.busy:
		s.plan(sl, now)
	case !active && sl.idx >= 0:
		heap.Remove(&s.due, sl.idx)
		sl.next = time.Time{}
	}
	s.replan = true
	v := s.view(sl)
	s.notifyLocked()
	s.mu.Unlock()
	poke(s.kick)
	s.publish(events.TopicSchedule)
	word := "disabled"
	if enabled {
		word = "enabled"
	}
	s.log.Info("schedule entry "+word+" by an operator", "entry", name)
	return v, nil
}
