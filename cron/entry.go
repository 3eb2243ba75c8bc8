package cron

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Policy says what happens to ticks an entry missed while no scheduler was
// running (downtime, a suspended laptop, a clock jumped forward).
type Policy string

const (
	// Skip fires nothing for missed ticks and resumes at the next tick. A
	// tick at most Grace late is not missed and fires either way. This is
	// sidekiq-cron's behaviour (reschedule_grace_period, 60 s) and the
	// default: a health check or a fan-out that runs late, or twice in a
	// row after a restart, is rarely what anyone wants.
	Skip Policy = "skip"
	// RunOnce fires the most recent missed tick once, late, if it is at
	// most the entry's CatchUpWindow old; older missed ticks, and all but
	// the most recent, never fire. YAML: "missed: run_once".
	RunOnce Policy = "run_once"
)

// DefaultPolicy is the policy of an entry that names none.
const DefaultPolicy = Skip

// Grace is how late a tick may fire and still count as on time, under
// every policy: the scheduler woke late (a busy machine, a paused VM, a
// restart of a few seconds), it was not down. It matches sidekiq-cron's
// default reschedule_grace_period.
const Grace = time.Minute

// DefaultCatchUpWindow is the catch-up window of a RunOnce entry that names
// none: after an hour, a missed tick is left alone.
const DefaultCatchUpWindow = time.Hour

// Entry is one recurring job of the schedule.
type Entry struct {
	// Name identifies the entry; unique within a schedule.
	Name string
	// Line is the cron line as written, zone included.
	Line string
	// Spec is the cron spec without the zone, fields separated by one space.
	Spec string
	// Zone is the time zone the spec is read in; UTC when the line names
	// none. Nil is read as UTC.
	Zone *time.Location
	// Class is the job class to enqueue (sidekiq-cron's "class" or "klass").
	Class string
	// Queue is the queue to enqueue on; empty means the class's default.
	Queue string
	// Args are the job's arguments as JSON: an array stays an array, a hash
	// stays an object (sidekiq-cron passes a hash as one positional
	// argument). Nil when the entry has none.
	Args json.RawMessage
	// Description says what the job does, for people.
	Description string
	// Enabled is false for "status: disabled".
	Enabled bool
	// Policy is the missed-run policy ("missed:"). Parse sets it; in a hand-
	// built Entry any value but RunOnce acts as Skip.
	Policy Policy
	// CatchUpWindow bounds how late a RunOnce tick may still fire
	// ("catch_up_window:"); zero with Skip. Zero with RunOnce means
	// DefaultCatchUpWindow, and it is never less than Grace.
	CatchUpWindow time.Duration
	// Retry is sidekiq-cron's "retry": how many times a failed run is
	// retried (false is 0). Nil leaves it to the queue's default.
	Retry *int
	// DateAsArgument is sidekiq-cron's "date_as_argument": ArgsAt appends
	// the tick's Unix time to the arguments.
	DateAsArgument bool
	// Ignored lists the sidekiq-cron keys the entry set that Conveyor
	// accepts and ignores, in file order.
	Ignored []string

	sched *schedule // set by Parse; derived from Spec when nil
}

// schedule returns the parsed spec, parsing Spec when the entry was built
// by hand.
func (e Entry) schedule() (*schedule, error) {
	if e.sched != nil {
		return e.sched, nil
	}
	s, zone, err := parseLine(e.Spec)
	if err != nil {
		return nil, fmt.Errorf("cron: entry %q: %w", e.Name, err)
	}
	if zone != time.UTC {
		return nil, fmt.Errorf("cron: entry %q: Spec %q carries a time zone; set Zone instead", e.Name, e.Spec)
	}
	return s, nil
}

func (e Entry) location() *time.Location {
	if e.Zone == nil {
		return time.UTC
	}
	return e.Zone
}

// Next returns the entry's first tick strictly after `after`, in the
// entry's zone. Daylight-saving changes follow two rules. An entry whose
// hour field is fixed ("30 2 * * *") fires each matching wall-clock time
// once per day: a time skipped by a spring-forward change fires at the
// first instant after the gap (03:00 for 02:30 in New York), a time
// repeated by a fall-back change fires at its first occurrence only. An
// entry whose hour field is a wildcard ("*/15 * * * *", "0 * * * *")
// follows real time: it does not fire for wall times inside a gap and
// fires at both occurrences of a repeated hour.
//
// The error wraps ErrNever when no tick can be found.
func (e Entry) Next(after time.Time) (time.Time, error) {
	s, err := e.schedule()
	if err != nil {
		return time.Time{}, err
	}
	return s.next(after, e.location())
}

// Prev returns the entry's last tick strictly before `before`, in the
// entry's zone, by the same rules as Next, so that Next(Prev(t)) is the
// first tick at or after t.
func (e Entry) Prev(before time.Time) (time.Time, error) {
	s, err := e.schedule()
	if err != nil {
		return time.Time{}, err
	}
	return s.prev(before, e.location())
}

// NextN returns the entry's next n ticks after `after`, in the entry's zone.
// It returns fewer when a tick cannot be found (see Next).
func (e Entry) NextN(after time.Time, n int) []time.Time {
	ticks := make([]time.Time, 0, max(n, 0))
	for range n {
		t, err := e.Next(after)
		if err != nil {
			break
		}
		ticks = append(ticks, t)
		after = t
	}
	return ticks
}

// TickKey identifies one tick of one entry: "cron:<name>:<unix seconds>" of
// the tick's scheduled instant. It is the same for the tick in every zone
// and across restarts, so an enqueue under it as a unique key runs the tick
// at most once.
func TickKey(e Entry, tick time.Time) string {
	return "cron:" + e.Name + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// ArgsAt returns the arguments to enqueue for a tick. Without
// DateAsArgument it is Args. With it, the tick's Unix time in seconds is
// appended as the last argument, as sidekiq-cron does with the enqueue
// time: to Args when it is an array, after the hash when Args is an object
// (sidekiq-cron passes a hash as one argument), alone when there are none.
// The scheduled tick is used rather than the clock so that a retried
// enqueue carries the same arguments.
func (e Entry) ArgsAt(tick time.Time) (json.RawMessage, error) {
	if !e.DateAsArgument {
		return e.Args, nil
	}
	ts := tick.Unix()
	if len(e.Args) == 0 {
		return json.Marshal([]int64{ts})
	}
	var list []json.RawMessage
	if err := json.Unmarshal(e.Args, &list); err == nil {
		return json.Marshal(append(list, json.RawMessage(strconv.FormatInt(ts, 10))))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Args, &obj); err != nil {
		return nil, errors.New("cron: entry " + strconv.Quote(e.Name) + ": args are neither a JSON array nor an object")
	}
	return json.Marshal([]json.RawMessage{e.Args, json.RawMessage(strconv.FormatInt(ts, 10))})
}
