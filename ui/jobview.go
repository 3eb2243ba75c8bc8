package ui

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"conveyor/queue"
)

// stampLayout is how every time is sent: RFC 3339 in UTC with milliseconds.
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

// stamp is a time as the API sends it; the zero time is null.
type stamp time.Time

// MarshalJSON encodes the time in UTC with milliseconds, or null when zero.
func (t stamp) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format(stampLayout) + `"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *stamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = stamp{}
		return nil
	}
	var tt time.Time
	if err := tt.UnmarshalJSON(b); err != nil {
		return err
	}
	*t = stamp(tt)
	return nil
}

// jobJSON is a job as the API shows it. Times are null when they have not
// happened; args is the job's raw JSON (null when none); context is always an
// object and errors always an array.
type jobJSON struct {
	ID          uint64            `json:"id"`
	Class       string            `json:"class"`
	Queue       string            `json:"queue"`
	Lane        string            `json:"lane"`
	State       string            `json:"state"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"max_attempts"`
	Args        json.RawMessage   `json:"args"`
	RunAt       stamp             `json:"run_at"`
	CreatedAt   stamp             `json:"created_at"`
	StartedAt   stamp             `json:"started_at"`
	FinishedAt  stamp             `json:"finished_at"`
	LeaseUntil  stamp             `json:"lease_until"`
	Stuck       bool              `json:"stuck"` // running past lease_until: its handler ignores its context
	UniqueKey   *string           `json:"unique_key"`
	Context     map[string]string `json:"context"`
	Orphans     int               `json:"orphans"`
	Errors      []attemptJSON     `json:"errors"`
	// Timeline is left out of lists (see listJobs).
	Timeline []eventJSON `json:"timeline,omitempty"`
}

// attemptJSON is one failed attempt. Backtrace is left out of lists.
type attemptJSON struct {
	Attempt   int    `json:"attempt"`
	Class     string `json:"class"`
	Message   string `json:"message"`
	Backtrace string `json:"backtrace,omitempty"`
	At        stamp  `json:"at"`
}

// eventJSON is one step of a job's timeline. Event is one of the event*
// constants; Attempt is set for attempt events.
type eventJSON struct {
	At      stamp  `json:"at"`
	Event   string `json:"event"`
	Attempt int    `json:"attempt,omitempty"`
	Detail  string `json:"detail"`
}

// Timeline events.
const (
	eventEnqueued  = "enqueued"  // created; detail: the queue
	eventScheduled = "scheduled" // at: when first due; detail: how long after enqueue
	eventReady     = "ready"     // at: when it became due; detail: how long it has waited
	eventStarted   = "started"   // an attempt began; detail for a running one: for how long
	eventFailed    = "failed"    // an attempt failed; detail: the error message
	eventRetry     = "retry"     // at: when the next attempt is due; detail: the wait after the failure
	eventDone      = "done"      // detail: how long the last attempt took
	eventDead      = "dead"      // detail: why it will not run again
)

// jobView shapes a job for the API, lane being the lane serving its queue
// ("" when none) and now the time relative details are measured from. It is
// pure: the same job, lane and now give the same view.
//
// The timeline is rebuilt from what the job record keeps: its creation, first
// due time (while no attempt has run), each kept attempt error, the due time
// that followed the latest error, the start of the latest attempt and its end.
// Starts of earlier attempts are not kept by the store and are not shown.
func jobView(j *queue.Job, lane string, now time.Time) jobJSON {
	v := jobJSON{
		ID: j.ID, Class: j.Class, Queue: j.Queue, Lane: lane, State: j.State.String(),
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, Args: j.Args,
		RunAt: stamp(j.RunAt), CreatedAt: stamp(j.CreatedAt), StartedAt: stamp(j.StartedAt),
		FinishedAt: stamp(j.FinishedAt), LeaseUntil: stamp(j.LeaseUntil), Stuck: j.Stuck,
		Context: map[string]string{}, Orphans: j.Orphans, Errors: make([]attemptJSON, 0, len(j.Errors)),
	}
	if len(v.Args) == 0 {
		v.Args = json.RawMessage("null")
	}
	if j.UniqueKey != "" {
		k := j.UniqueKey
		v.UniqueKey = &k
	}
	for k, val := range j.Context {
		v.Context[k] = val
	}
	for _, e := range j.Errors {
		v.Errors = append(v.Errors, attemptJSON{Attempt: e.Attempt, Class: e.Class, Message: e.Message, Backtrace: e.Backtrace, At: stamp(e.At)})
	}
	v.Timeline = timeline(j, now)
	return v
}

// listView is jobView without the timeline and backtraces, for lists.
func listView(j *queue.Job, lane string, now time.Time) jobJSON {
	v := jobView(j, lane, now)
	v.Timeline = nil
	for i := range v.Errors {
		v.Errors[i].Backtrace = ""
	}
	return v
}

func timeline(j *queue.Job, now time.Time) []eventJSON {
	ev := []eventJSON{{At: stamp(j.CreatedAt), Event: eventEnqueued, Detail: "queue " + j.Queue}}
	if j.Attempt == 0 && len(j.Errors) == 0 && j.RunAt.After(j.CreatedAt) {
		ev = append(ev, eventJSON{At: stamp(j.RunAt), Event: eventScheduled,
			Detail: "due " + human(j.RunAt.Sub(j.CreatedAt)) + " after enqueue"})
	}
	for _, e := range j.Errors {
		ev = append(ev, eventJSON{At: stamp(e.At), Event: eventFailed, Attempt: e.Attempt, Detail: e.Message})
	}
	// run_at is the due time that followed the latest error before it; a dead
	// job's final error ends it, so only an earlier one can have been retried.
	for i := len(j.Errors) - 1; i >= 0; i-- {
		e := j.Errors[i]
		if !e.At.Before(j.RunAt) {
			continue
		}
		if j.State != queue.StateDead || i < len(j.Errors)-1 {
			ev = append(ev, eventJSON{At: stamp(j.RunAt), Event: eventRetry, Attempt: e.Attempt + 1,
				Detail: human(j.RunAt.Sub(e.At)) + " after the failure"})
		}
		break
	}
	if j.State == queue.StateReady {
		ev = append(ev, eventJSON{At: stamp(j.RunAt), Event: eventReady, Detail: "waiting for " + human(now.Sub(j.RunAt))})
	}
	if !j.StartedAt.IsZero() && j.Attempt > 0 {
		e := eventJSON{At: stamp(j.StartedAt), Event: eventStarted, Attempt: j.Attempt}
		if j.State == queue.StateRunning {
			e.Detail = "running for " + human(now.Sub(j.StartedAt))
		}
		ev = append(ev, e)
	}
	switch j.State {
	case queue.StateDone:
		e := eventJSON{At: stamp(j.FinishedAt), Event: eventDone, Attempt: j.Attempt}
		if !j.StartedAt.IsZero() {
			e.Detail = "took " + human(j.FinishedAt.Sub(j.StartedAt))
		}
		ev = append(ev, e)
	case queue.StateDead:
		at := j.FinishedAt
		if at.IsZero() && len(j.Errors) > 0 {
			at = j.Errors[len(j.Errors)-1].At
		}
		ev = append(ev, eventJSON{At: stamp(at), Event: eventDead, Attempt: j.Attempt, Detail: deadReason(j)})
	}
	slices.SortStableFunc(ev, func(a, b eventJSON) int { return time.Time(a.At).Compare(time.Time(b.At)) })
	return ev
}

// deadReason says why a dead job will not run again, as far as the record
// tells.
func deadReason(j *queue.Job) string {
	if n := len(j.Errors); n > 0 && j.Errors[n-1].Class == "Orphaned" && j.Orphans > 0 {
		return j.Errors[n-1].Message
	}
	if j.Attempt >= j.MaxAttempts {
		return fmt.Sprintf("out of attempts (%d of %d)", j.Attempt, j.MaxAttempts)
	}
	return fmt.Sprintf("not retryable (after attempt %d of %d)", j.Attempt, j.MaxAttempts)
}

// human writes a duration the way the dashboard shows it: "340 ms", "2.5 s",
// "16 s", "5 min 3 s", "2 h 5 min", "3 d 4 h".
func human(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case d < 10*time.Second:
		s := strconv.FormatFloat(float64(d.Milliseconds()/100)/10, 'f', -1, 64)
		return s + " s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	}
	two := func(big time.Duration, bigName string, small time.Duration, smallName string) string {
		a, b := int64(d/big), int64(d%big/small)
		if b == 0 {
			return fmt.Sprintf("%d %s", a, bigName)
		}
		return fmt.Sprintf("%d %s %d %s", a, bigName, b, smallName)
	}
	switch {
	case d < time.Hour:
		return two(time.Minute, "min", time.Second, "s")
	case d < 24*time.Hour:
		return two(time.Hour, "h", time.Minute, "min")
	}
	return two(24*time.Hour, "d", time.Hour, "h")
}
