// Package fault is the failure kind: the one vocabulary every layer uses to
// say what kind of failure a job's error is, and the error type that
// carries a kind.
//
// It is a leaf (it imports only the standard library), so that the queue,
// the lanes, the data layer and the failure pipeline (conveyor/ops/failures,
// which decides a kind for any error with its Classify) can all import it
// without an import cycle, as River's rivertype is shared by every layer of
// River.
//
// Its promise: there are exactly three kinds, [Authentication],
// [Transient] and [Runtime]; only [Authentication] is not retried
// automatically ([Kind.Retryable]).
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the class of a job failure. It is stored with every failure and
// steers the queue's retry (see [Kind.Retryable]).
type Kind string

// The failure kinds, as the seed names them.
const (
	// Authentication: the credentials were refused (HTTP 401/403,
	// [ErrAuthentication]). Never retried automatically: retrying cannot
	// fix it and may lock the account.
	Authentication Kind = "authentication"
	// Transient: the outside world was briefly unavailable (timeouts,
	// refused or reset connections, HTTP 408/425/429/5xx, interruption).
	// Retrying later is expected to help.
	Transient Kind = "transient"
	// Runtime: everything else, including panics: bugs and bad input.
	// Retried with backoff like transient failures, but reported as a bug
	// to look at.
	Runtime Kind = "runtime"
)

// Kinds returns every kind, in the order above.
func Kinds() []Kind { return []Kind{Authentication, Transient, Runtime} }

// Valid reports whether k is one of the three kinds, spelt exactly.
func (k Kind) Valid() bool {
	switch k {
	case Authentication, Transient, Runtime:
		return true
	}
	return false
}

// Retryable reports whether the queue may retry a failure of kind k
// automatically: every kind but [Authentication].
func (k Kind) Retryable() bool { return k != Authentication }

// ErrAuthentication is the sentinel for code that knows a failure is an
// authentication problem but has no HTTP status to show for it (an expired
// session, a revoked token). Wrap it: fmt.Errorf("session expired: %w",
// fault.ErrAuthentication); the failure pipeline classifies any error that
// wraps it as [Authentication].
var ErrAuthentication = errors.New("authentication failed")

// ErrUnknownKind is returned by [Parse] for a string that is not one of the
// three kinds.
var ErrUnknownKind = errors.New("unknown failure kind")

// Parse returns the Kind named by s ("authentication", "transient" or
// "runtime", case-insensitive, surrounding space ignored), or an error
// wrapping [ErrUnknownKind].
func Parse(s string) (Kind, error) {
	if k := Kind(strings.ToLower(strings.TrimSpace(s))); k.Valid() {
		return k, nil
	}
	return "", fmt.Errorf("%w %q (want authentication, transient or runtime)", ErrUnknownKind, s)
}

// Error attaches a failure kind to an error, for code that knows better
// than the failure pipeline's rules:
//
//	return fault.Error{Kind: fault.Transient, Err: err}
//
// Both fault.Error and *fault.Error satisfy error. Error's message is Err's.
// The kind is read through the FailureKind method, which any error type may
// have: a handler's own error types can declare their kind the same way.
type Error struct {
	Kind Kind
	Err  error
}

// Error returns the wrapped error's message, or the kind when Err is nil.
func (e Error) Error() string {
	if e.Err == nil {
		return string(e.Kind)
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e Error) Unwrap() error { return e.Err }

// FailureKind returns the kind: an error with a FailureKind() string method
// declares its own kind.
func (e Error) FailureKind() string { return string(e.Kind) }
