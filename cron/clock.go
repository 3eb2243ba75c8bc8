package cron

import (
	"sync"
	"time"
)

// Clock is the scheduler's time source: what time it is, and a timer that
// fires once the clock reads a given time. SystemClock is the machine's;
// FakeClock is one tests move by hand.
type Clock interface {
	Now() time.Time
	// Timer returns a timer whose channel receives once the clock reads t
	// or later (at once when it already does).
	Timer(t time.Time) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	// C receives the clock's time once the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped
	// it (false when it had fired or been stopped).
	Stop() bool
}

// SystemClock is the machine's clock. Its timers wait for the wall-clock
// time they are given, measured when they are made: Go's timers run on the
// monotonic clock, so a wall clock set forward, or a machine that was
// suspended, does not bring them forward. The scheduler therefore never
// waits longer than Options.Recheck at a time.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Timer(t time.Time) Timer { return systemTimer{time.NewTimer(time.Until(t))} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// FakeClock is a Clock that moves only when told to, for tests: Advance and
// Set fire every timer whose time has come, so a test drives a scheduler
// through hours of ticks, daylight-saving changes and clock jumps without
// sleeping. It is safe for concurrent use.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

// NewFakeClock returns a FakeClock reading now.
func NewFakeClock(now time.Time) *FakeClock {
	return &FakeClock{now: now, timers: map[*fakeTimer]struct{}{}}
}

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Timer returns a timer that fires when the clock is moved to t or later.
func (c *FakeClock) Timer(t time.Time) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{c: c, at: t, ch: make(chan time.Time, 1)}
	if !t.After(c.now) {
		ft.ch <- c.now
		return ft
	}
	c.timers[ft] = struct{}{}
	return ft
}

// Advance moves the clock forward by d (back when d is negative) and fires
// the timers that are due.
func (c *FakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(c.now.Add(d))
	return c.now
}

// Set moves the clock to t, forward or back (a clock jump), and fires the
// timers that are due.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(t)
}

func (c *FakeClock) set(t time.Time) {
	c.now = t
	for ft := range c.timers {
		if !ft.at.After(t) {
			ft.ch <- t
			delete(c.timers, ft)
		}
	}
}

type fakeTimer struct {
	c  *FakeClock
	at time.Time
	ch chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, waiting := t.c.timers[t]
	delete(t.c.timers, t)
	return waiting
}

// OffsetClock is the machine's clock shifted to read a chosen time: it
// reads start at its first reading and runs at real speed from there.
// End-to-end tests run a real server with it to put a tick a second away.
type OffsetClock struct {
	start  time.Time
	once   sync.Once
	offset time.Duration
}

// NewOffsetClock returns a clock whose first reading is start.
func NewOffsetClock(start time.Time) *OffsetClock {
	return &OffsetClock{start: start}
}

// Now returns the machine's time shifted by the offset.
func (c *OffsetClock) Now() time.Time {
	c.once.Do(func() { c.offset = time.Until(c.start) })
	return time.Now().Add(c.offset).Round(0)
}

// Timer fires when the shifted clock reads t.
func (c *OffsetClock) Timer(t time.Time) Timer {
	return systemTimer{time.NewTimer(t.Sub(c.Now()))}
}
