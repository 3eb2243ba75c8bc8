package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// State is where a job is in its life. Every job is in exactly one state at a time,
// and in exactly one state index of the store.
type State uint8

// The states of a job; docs/state-machine.md draws the transitions between them.
const (
	// StateScheduled: waiting for its run_at (enqueued for later, or snoozed).
	StateScheduled State = iota + 1
	// StateReady: due, waiting in its queue for a worker.
	StateReady
	// StateRunning: claimed by a lane; a worker runs it or is about to.
	StateRunning
	// StateRetry: failed, waiting for its next attempt.
	StateRetry
	// StateDone: finished successfully; kept for the retention window.
	StateDone
	// StateDead: failed for good (out of attempts, killed by its handler, or
	// crashed the worker too often); kept for the retention window.
	StateDead
)

// States lists every state in life order.
var States = []State{StateScheduled, StateReady, StateRunning, StateRetry, StateDone, StateDead}

const numStates = int(StateDead) + 1

var stateNames = [...]string{"", "scheduled", "ready", "running", "retry", "done", "dead"}

// String returns the state's name as the API shows it.
func (s State) String() string {
	if s == 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", uint8(s))
	}
	return stateNames[s]
}

// Finished reports whether a job in this state will not run again by itself.
func (s State) Finished() bool { return s == StateDone || s == StateDead }

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	st, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseState returns the state with the given name.
func ParseState(name string) (State, error) {
	for i := 1; i < len(stateNames); i++ {
		if stateNames[i] == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want one of scheduled, ready, running, retry, done, dead)", name)
}

// MaxErrors is how many attempt errors a job keeps; older ones are dropped.
const MaxErrors = 10

// AttemptError is what one failed attempt left behind.
type AttemptError struct {
	Attempt   int       `json:"attempt"`
	Class     string    `json:"class"`
	Message   string    `json:"message"`
	Backtrace string    `json:"backtrace,omitempty"`
	At        time.Time `json:"at"`
}

// Job is one background job as the store knows it. A *Job handed to a worker is
// the worker's own copy; changing it changes nothing in the store.
type Job struct {
	ID          uint64
	Class       string
	Queue       string
	Args        json.RawMessage
	State       State
	Attempt     int // attempts started so far, the running one included
	MaxAttempts int
	RunAt       time.Time // when it became (or becomes) due
	CreatedAt   time.Time
	StartedAt   time.Time // start of the latest attempt; zero if it never started
	FinishedAt  time.Time // when it reached done or dead; zero otherwise
	LeaseUntil  time.Time // while its attempt runs: when the attempt's time is up (its class's timeout)
	Stuck       bool      // running past LeaseUntil: its handler ignores its context
	UniqueKey   string
	UniqueUntil time.Time // the unique key is held at least until then
	Context     map[string]string
	Errors      []AttemptError // oldest first, at most MaxErrors
	Orphans     int            // times a crash interrupted it while running

}

// Context keys the failure pipeline and dashboard understand.
const (
	CtxAccountID  = "account_id"
	CtxProfileID  = "profile_id"
	CtxPipelineID = "pipeline_id"
	CtxStep       = "step"
)

// MaxAttemptsLimit is the most attempts a job may have: an enqueue asking
// for more is refused.
const MaxAttemptsLimit = 1000

// NewJob describes a job to enqueue.
type NewJob struct {
	Class string
	Queue string
	Args  json.RawMessage // any JSON value; nil means null
	// RunAt in the future schedules the job; zero or past means now.
	RunAt time.Time
	// MaxAttempts 0 means the store's default.
	MaxAttempts int
	// UniqueKey, when set, makes the enqueue a no-op returning the existing job while
	// another job holding the same key is unfinished (or, with UniqueFor, until
	// UniqueFor has passed since that job was enqueued, finished or not).
	UniqueKey string
	UniqueFor time.Duration
	Context   map[string]string
}

// Result is what an enqueue did with one NewJob.
type Result struct {
	ID        uint64
	State     State
	Duplicate bool // the unique key was held: nothing was enqueued, ID is the holder
}
