package localai

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinels for the Supervisor's failures. A *StartError wraps the first
// four; errors.Is works on it.
var (
	// ErrStartDisabled: local AI is not healthy and START_LOCAL_AI=false, so
	// Conveyor does not start it. Serve holds the AI lanes closed and goes on.
	ErrStartDisabled = errors.New("START_LOCAL_AI=false")
	// ErrNoStartCommand: local AI is not healthy and there is no
	// LOCAL_AI_START_COMMAND to start it with.
	ErrNoStartCommand = errors.New("no LOCAL_AI_START_COMMAND")
	// ErrStartCommandFailed: the start command exited non-zero before the
	// services became healthy.
	ErrStartCommandFailed = errors.New("local AI start command failed")
	// ErrStartTimeout: the services did not become healthy within
	// LOCAL_AI_START_TIMEOUT.
	ErrStartTimeout = errors.New("local AI did not become healthy in time")
	// ErrNotOwned is returned by Stop and Restart when no valid ownership
	// record proves Conveyor started the services; nothing was stopped.
	ErrNotOwned = errors.New("local AI services were not started by Conveyor")
	// ErrNoStopCommand is returned by Stop for services a background start
	// command started when there is no LOCAL_AI_STOP_COMMAND and none of
	// their processes is left in the start command's process group.
	ErrNoStopCommand = errors.New("no LOCAL_AI_STOP_COMMAND")
	// ErrNotRequired is returned by Start and Restart when local AI is not
	// required (see Config.Required): there is nothing to check.
	ErrNotRequired = errors.New("local AI is not required")
)

// StartError is the start-up guardrail's failure: its message says which
// check failed, what it got, and how to fix it.
type StartError struct {
	// Results are the last health checks.
	Results []HealthResult
	// Cause is ErrStartDisabled, ErrNoStartCommand, ErrStartCommandFailed
	// (wrapping the exit error), ErrStartTimeout, the context's error, or
	// the error that kept the command from running.
	Cause error
	// Command is the start command, when one was run.
	Command string
	// Output is the end of the start command's output, when it failed.
	Output string
	// Timeout is LOCAL_AI_START_TIMEOUT.
	Timeout time.Duration
	// Log is the file with the commands' full output.
	Log string
	// PID is set when the services were started by Conveyor earlier but are
	// not healthy.
	PID int
}

// Error says which check failed, what it got, and how to fix it.
func (e *StartError) Error() string {
	var b strings.Builder
	var failing []string
	for _, r := range e.Results {
		if !r.OK {
			failing = append(failing, r.String())
		}
	}
	if len(failing) == 0 {
		failing = append(failing, "local AI is not healthy")
	}
	b.WriteString(strings.Join(failing, "; "))
	b.WriteString("; ")
	switch {
	case errors.Is(e.Cause, ErrStartDisabled):
		b.WriteString("START_LOCAL_AI=false, so Conveyor does not start it and keeps the AI lanes closed until it is healthy; " +
			"start it yourself, or set START_LOCAL_AI=auto and LOCAL_AI_START_COMMAND")
	case errors.Is(e.Cause, ErrNoStartCommand):
		b.WriteString("LOCAL_AI_START_COMMAND is not set, so Conveyor cannot start it; start it yourself, " +
			"or set LOCAL_AI_START_COMMAND (with START_LOCAL_AI=auto or true), " +
			"or set USE_LOCAL_AI_MICROSERVICE=false to run without local AI")
	case errors.Is(e.Cause, ErrStartCommandFailed):
		fmt.Fprintf(&b, "the start command %q failed: %s", e.Command,
			strings.TrimPrefix(e.Cause.Error(), ErrStartCommandFailed.Error()+": "))
		if e.Output != "" {
			fmt.Fprintf(&b, "; its output ends with: %s", e.Output)
		}
		fmt.Fprintf(&b, "; fix LOCAL_AI_START_COMMAND or start the services yourself (full output in %s)", e.Log)
	case errors.Is(e.Cause, ErrStartTimeout) && e.PID != 0:
		fmt.Fprintf(&b, "Conveyor started it earlier (pid %d) but the checks did not pass within %v (LOCAL_AI_START_TIMEOUT); "+
			"restart it with `conveyor ai restart` (output in %s)", e.PID, e.Timeout, e.Log)
	case errors.Is(e.Cause, ErrStartTimeout):
		fmt.Fprintf(&b, "ran %q but the checks did not pass within %v (LOCAL_AI_START_TIMEOUT); "+
			"raise LOCAL_AI_START_TIMEOUT if it is only slow, or fix the service (output in %s)", e.Command, e.Timeout, e.Log)
	case errors.Is(e.Cause, context.Canceled) || errors.Is(e.Cause, context.DeadlineExceeded):
		fmt.Fprintf(&b, "start-up interrupted: %v", e.Cause)
	default:
		fmt.Fprintf(&b, "could not run the start command %q: %v; fix LOCAL_AI_START_COMMAND", e.Command, e.Cause)
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *StartError) Unwrap() error { return e.Cause }
