package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"conveyor/ops/fault"
)

// Connector reaches the outside services the account jobs act on
// (Instagram, in the seed). One Call is one request: the job's class, the
// call's args (the job's args and, for paged calls, the cursor), the job's
// context and attempt. A 2xx answer's JSON body is the result; anything else
// is a *CallError that says its failure kind. Two implementations: Bridge
// (HTTP, to a URL the operator configures) and the sandbox (package
// jobs/sandbox), deterministic from a seed.
type Connector interface {
	Call(ctx context.Context, req Request) (json.RawMessage, error)
}

// Request is one call to the outside: what the bridge posts as JSON.
type Request struct {
	Class   string            `json:"class"`
	Args    json.RawMessage   `json:"args"`
	Context map[string]string `json:"context,omitempty"`
	Attempt int               `json:"attempt"`
	// JobID identifies the job making the call, so that the service can
	// recognise a retried call.
	JobID uint64 `json:"job_id"`
}

// CallError is a call the outside service did not answer with success.
// Its FailureKind is what the failure pipeline records: authentication
// failures are never retried; a transient one with RetryAfter is snoozed
// by the job for that long (no attempt spent).
type CallError struct {
	Endpoint string
	// Status is the HTTP status; 0 when there was no answer.
	Status int
	// Kind is the failure's kind (fault.Authentication, fault.Transient
	// or fault.Runtime).
	Kind fault.Kind
	// RetryAfter is the service's Retry-After (transient answers only).
	RetryAfter time.Duration
	// Message is what the service said, or what went wrong.
	Message string
	// Permanent: retrying cannot help (the connector is not configured).
	Permanent bool
}

// Error names the endpoint, the status and the message.
func (e *CallError) Error() string {
	switch {
	case e.Status != 0:
		return fmt.Sprintf("%s: %d %s", e.Endpoint, e.Status, e.Message)
	case e.Endpoint != "":
		return e.Endpoint + ": " + e.Message
	}
	return e.Message
}

// FailureKind is the failure's kind, read by the failure pipeline.
func (e *CallError) FailureKind() string { return string(e.Kind) }

// ErrNotConfigured is matched (errors.Is) by the error of a call when no
// connector is configured.
var ErrNotConfigured = errors.New("jobs: no connector is configured")

// Unconfigured is the connector of a Conveyor without connector_url: every
// call fails with one clear, permanent error naming the setting.
type Unconfigured struct{}

// Call fails.
func (Unconfigured) Call(context.Context, Request) (json.RawMessage, error) {
	return nil, &CallError{Kind: fault.Runtime, Permanent: true, Endpoint: "connector",
		Message: "no connector is configured: set connector_url in the configuration file or CONVEYOR_CONNECTOR_URL " +
			"to the URL of your connector service (or run the demo: conveyor serve --demo)"}
}

// Is matches ErrNotConfigured for an Unconfigured call.
func (e *CallError) Is(target error) bool {
	return target == ErrNotConfigured && e.Permanent && e.Endpoint == "connector"
}
