package cron

import (
	"fmt"
	"time"

	"github.com/adhocore/gronx"
)

// schedule is a validated spec. gronx evaluates expr on a zone-free wall
// clock (UTC, which has no daylight-saving changes); next and prev map wall
// times to real instants one zone period at a time, which is where the
// daylight-saving rules below are applied. gronx's own handling of zones is
// never used: it skips a whole day when the wall time falls in a
// spring-forward gap, and fires a repeated wall time at its first
// occurrence in some zones and its second in others.
//
// The rules (Vixie cron's, whose distinction between wildcard and fixed
// entries most cron users already know):
//
//   - A fixed-hour entry (hour field not starting with "*": "30 2 * * *",
//     "0 9 * * MON-FRI", "*/15 1 * * *") follows the wall clock: each
//     matching wall time fires exactly once per day. A wall time that does
//     not exist (spring forward) fires at the first instant after the gap
//     (02:30 in New York on the spring-forward day fires at 03:00 EDT); a
//     wall time that occurs twice (fall back) fires at its first occurrence
//     only.
//   - A wildcard-hour entry (hour field "*" or "*/n": "*/15 * * * *",
//     "0 * * * *", "*/30 * * * * *") follows real time: it fires at every
//     real instant whose wall time matches, so wall times inside a gap do
//     not fire (no real time passed there) and wall times repeated by a
//     fall-back fire twice (two real hours passed).
type schedule struct {
	spec string // as written, without the zone
	expr string // six fields, seconds first, names replaced by numbers
	wild bool   // hour field is a wildcard: ticks follow real time
}

// maxPeriods bounds how many zone periods (stretches of constant UTC
// offset) a search crosses, a little over 40 years of twice-yearly changes.
const maxPeriods = 100

// reachable reports ErrNever when the spec cannot fire. The check runs from
// two references four years apart, so leap-day specs are found either way.
func (s *schedule) reachable() error {
	for _, ref := range []time.Time{
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2003, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		if _, err := s.next(ref, time.UTC); err != nil {
			return err
		}
	}
	return nil
}

// period is a stretch of time with one UTC offset in a zone.
type period struct {
	start, end time.Time // zero: unbounded
	off        int       // offset in seconds during the period
	prevOff    int       // offset just before start (off when unbounded)
}

func periodAt(t time.Time, loc *time.Location) period {
	lt := t.In(loc)
	_, off := lt.Zone()
	start, end := lt.ZoneBounds()
	p := period{start: start, end: end, off: off, prevOff: off}
	if !start.IsZero() {
		_, p.prevOff = start.Add(-time.Nanosecond).In(loc).Zone()
	}
	return p
}

// wall is the wall-clock reading of t at offset off, as a UTC time.
func wall(t time.Time, off int) time.Time {
	return time.Unix(t.Unix()+int64(off), int64(t.Nanosecond())).UTC()
}

// instant is the real time at which the wall clock, at offset off, reads w.
func instant(w time.Time, off int, loc *time.Location) time.Time {
	return time.Unix(w.Unix()-int64(off), 0).In(loc)
}

func (s *schedule) gronxNext(from time.Time, incl bool) (time.Time, error) {
	w, err := gronx.NextTickAfter(s.expr, from, incl)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: no tick of %q after %s (%v)", ErrNever, s.spec, from.Format(time.DateTime), err)
	}
	return w, nil
}

func (s *schedule) gronxPrev(from time.Time, incl bool) (time.Time, error) {
	w, err := gronx.PrevTickBefore(s.expr, from, incl)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: no tick of %q before %s (%v)", ErrNever, s.spec, from.Format(time.DateTime), err)
	}
	return w, nil
}

// next returns the first tick strictly after `after`, in loc.
func (s *schedule) next(after time.Time, loc *time.Location) (time.Time, error) {
	p := periodAt(after, loc)
	// Walls strictly after after's wall time: gronx compares whole seconds,
	// and a fractional second is already past its truncated value.
	from, incl := wall(after, p.off).Truncate(time.Second), false
	fresh := false
	for range maxPeriods {
		gap := !s.wild && !p.start.IsZero() && p.prevOff < p.off
		fold := !s.wild && !p.start.IsZero() && p.prevOff > p.off
		if fresh && gap {
			// Wall times in [start+prevOff, start+off) never happened;
			// a fixed-hour tick among them fires as the gap ends.
			w, err := s.gronxNext(wall(p.start, p.prevOff), true)
			if err != nil {
				return time.Time{}, err
			}
			if w.Before(wall(p.start, p.off)) {
				return p.start.In(loc), nil
			}
		}
		for {
			w, err := s.gronxNext(from, incl)
			if err != nil {
				return time.Time{}, err
			}
			if !p.end.IsZero() && !w.Before(wall(p.end, p.off)) {
				break // beyond this period
			}
			if foldEnd := wall(p.start, p.prevOff); fold && w.Before(foldEnd) {
				// A repeated wall time: fixed-hour ticks fired at its
				// first occurrence, in the period before.
				from, incl = foldEnd, true
				continue
			}
			return instant(w, p.off, loc), nil
		}
		p = periodAt(p.end, loc)
		from, incl, fresh = wall(p.start, p.off), true, true
	}
	return time.Time{}, fmt.Errorf("%w: no tick of %q within %d offset changes after %s", ErrNever, s.spec, maxPeriods, after.Format(time.RFC3339))
}

// prev returns the last tick strictly before `before`, in loc.
func (s *schedule) prev(before time.Time, loc *time.Location) (time.Time, error) {
	p := periodAt(before.Add(-time.Nanosecond), loc)
	// Walls strictly before before's wall time.
	w0 := wall(before, p.off)
	from, incl := w0.Truncate(time.Second), false
	if !from.Equal(w0) {
		incl = true // the truncated second is already before w0
	}
	for range maxPeriods {
		fold := !s.wild && !p.start.IsZero() && p.prevOff > p.off
		gap := !s.wild && !p.start.IsZero() && p.prevOff < p.off
		for {
			w, err := s.gronxPrev(from, incl)
			if err != nil {
				return time.Time{}, err
			}
			if !p.start.IsZero() && w.Before(wall(p.start, p.off)) {
				break // before this period
			}
			if fold && w.Before(wall(p.start, p.prevOff)) {
				// Repeated wall time: it fired in the period before.
				break
			}
			return instant(w, p.off, loc), nil
		}
		if p.start.IsZero() {
			break
		}
		if gap {
			w, err := s.gronxPrev(wall(p.start, p.off), false)
			if err != nil {
				return time.Time{}, err
			}
			if !w.Before(wall(p.start, p.prevOff)) {
				return p.start.In(loc), nil
			}
		}
		np := periodAt(p.start.Add(-time.Nanosecond), loc)
		from, incl = wall(p.start, np.off), false
		p = np
	}
	return time.Time{}, fmt.Errorf("%w: no tick of %q within %d offset changes before %s", ErrNever, s.spec, maxPeriods, before.Format(time.RFC3339))
}
