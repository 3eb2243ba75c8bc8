package cron

import (
	"cmp"
	"errors"
	"time"
)

// ErrNoSince is returned by Decide when History.Since is zero: without it a
// first start could fire ticks from before the entry was ever scheduled.
var ErrNoSince = errors.New("cron: History.Since is zero")

// History is what the scheduler remembers about one entry. Persist its
// fields with the entry's state (none of them is the process start time),
// and update them with Record.
type History struct {
	// Since is when the entry came under the scheduler's care: the first
	// time it was loaded, or the last time it was enabled. No tick at or
	// before Since fires, so a first start or a re-enable never fires ticks
	// from before it. Keep it across restarts, or RunOnce cannot catch up
	// ticks missed during downtime.
	Since time.Time
	// Last is the scheduled instant of the last tick that fired (the tick
	// of the last Decision.Fire recorded); zero if none has. No tick at or
	// before Last fires again, whatever the clock says.
	Last time.Time
	// Missed is the latest tick Decide reported as missed
	// (Decision.MissedLast); zero if none. Missed ticks are reported once
	// and never fire later, even if the clock jumps back.
	Missed time.Time
}

// Record returns the History after d: Last advanced to d.Fire and Missed to
// d.MissedLast. Store it once the enqueue of d.Fire is durable. If the
// enqueue fails, do not record the fire (record only the misses, with
// d.Fire zeroed): the tick is offered again at the next Decide while its
// policy allows, and TickKey keeps a repeated enqueue from running twice.
func (h History) Record(d Decision) History {
	if d.Fire.After(h.Last) {
		h.Last = d.Fire
	}
	if d.MissedLast.After(h.Missed) {
		h.Missed = d.MissedLast
	}
	return h
}

// floor is the instant at or before which no tick fires or is reported.
func (h History) floor() time.Time {
	f := h.Since
	if h.Last.After(f) {
		f = h.Last
	}
	if h.Missed.After(f) {
		f = h.Missed
	}
	return f
}

// Decision is what to do for one entry at one moment.
type Decision struct {
	// Fire is the scheduled instant of the tick to enqueue now (under
	// TickKey), zero when nothing fires. Record it as History.Last once the
	// enqueue is durable.
	Fire time.Time
	// Next is the tick to wait for: strictly after now and after every
	// time in History. Zero for a disabled entry.
	Next time.Time
	// MissedFirst and MissedLast are the earliest and latest ticks after
	// History that fell at or before now and will never fire (downtime, a
	// clock jump forward, or a scheduler that woke too late); zero when
	// none did. Every tick in between was missed too. Log them, a missed
	// tick must never be silent, and Record them so they are reported once.
	MissedFirst, MissedLast time.Time
}

// Decide applies the entry's missed-run policy. It is a pure function of
// its arguments: call it when the scheduler starts, and again whenever it
// wakes for Decision.Next (or is woken early), with the History as stored.
//
// A tick is eligible when it is after every time in History (Since, Last,
// Missed) and at or before now. Of the eligible ticks only the most recent
// can fire: under Skip if it is at most Grace late, under RunOnce if it is
// at most max(CatchUpWindow, Grace) late. All other eligible ticks are
// reported as missed. So each tick is fired or reported missed exactly once
// (given that the caller Records each Decision); after any downtime at most
// one tick fires, never a burst; a clock that jumps backwards fires nothing
// until it is past History again; a clock that jumps forward is downtime.
//
// A disabled entry gets a zero Decision. The error is ErrNoSince, or an
// error wrapping ErrNever when the spec has no tick.
func Decide(e Entry, h History, now time.Time) (Decision, error) {
	if h.Since.IsZero() {
		return Decision{}, ErrNoSince
	}
	if !e.Enabled {
		return Decision{}, nil
	}
	floor := h.floor()
	window := Grace
	if e.Policy == RunOnce {
		window = max(Grace, cmp.Or(e.CatchUpWindow, DefaultCatchUpWindow))
	}

	first, err := e.Next(floor) // the earliest eligible tick, if it is not after now
	if err != nil {
		return Decision{}, err
	}
	if first.After(now) {
		return Decision{Next: first}, nil // nothing due; also a clock behind History
	}
	latest := first
	next, err := e.Next(first)
	if err != nil {
		return Decision{}, err
	}
	if !next.After(now) { // more than one eligible tick: downtime
		if latest, err = e.Prev(now.Add(time.Nanosecond)); err != nil {
			return Decision{}, err
		}
		if next, err = e.Next(latest); err != nil {
			return Decision{}, err
		}
	}
	d := Decision{Next: next}
	switch {
	case now.Sub(latest) > window:
		d.MissedFirst, d.MissedLast = first, latest
	case first.Before(latest):
		d.Fire, d.MissedFirst = latest, first
		if d.MissedLast, err = e.Prev(latest); err != nil {
			return Decision{}, err
		}
	default:
		d.Fire = latest
	}
	return d, nil
}
