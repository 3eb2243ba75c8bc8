package failures

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
)

// Kind is the class of a job failure. It is stored with every failure and
// steers the queue's retry (see [Retryable]).
type Kind string

// The failure kinds.
const (
	// KindAuthentication: the credentials were refused (HTTP 401/403,
	// [ErrAuthentication]). Never retried automatically: retrying cannot fix
	// it and may lock the account.
	KindAuthentication Kind = "authentication"
	// KindTransient: the outside world was briefly unavailable (timeouts,
	// refused or reset connections, HTTP 408/425/429/5xx, interruption).
	// Retrying later is expected to help.
	KindTransient Kind = "transient"
	// KindRuntime: everything else, including panics. Retried with backoff
	// like transient failures, but reported as a bug to look at.
	KindRuntime Kind = "runtime"
)

// ErrAuthentication is the sentinel for code that knows a failure is an
// authentication problem but has no HTTP status to show for it (an expired
// session, a revoked token). Wrap it: fmt.Errorf("session expired: %w",
// ops.ErrAuthentication). [Classify] returns [KindAuthentication] for any
// error that wraps it.
var ErrAuthentication = errors.New("authentication failed")

// ErrUnknownKind is returned by [ParseKind] for a string that is not one of
// the three kinds.
var ErrUnknownKind = errors.New("unknown failure kind")

// ParseKind returns the Kind named by s ("authentication", "transient" or
// "runtime", case-insensitive, surrounding space ignored), or an error
// wrapping [ErrUnknownKind].
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case KindAuthentication, KindTransient, KindRuntime:
		return k, nil
	}
	return "", fmt.Errorf("%w %q (want authentication, transient or runtime)", ErrUnknownKind, s)
}

// Retryable reports whether the queue may retry a failure of kind k
// automatically: every kind but [KindAuthentication].
func Retryable(k Kind) bool { return k != KindAuthentication }

// Error attaches a failure kind to an error, for code that knows better than
// the rules in [Classify]:
//
//	return ops.Error{Kind: ops.KindTransient, Err: err}
//
// Both ops.Error and *ops.Error satisfy error. Error's message is Err's.
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

// FailureKind returns the kind; it is what [Classify] looks for.
func (e Error) FailureKind() string { return string(e.Kind) }

// failureKinder is implemented by errors that carry their own kind: [Error],
// the lanes' FailJob, handlers' own error types.
type failureKinder interface{ FailureKind() string }

// statusCoder is implemented by errors that carry an HTTP status, such as the
// ones the outside-service connectors return.
type statusCoder interface{ StatusCode() int }

// timeouter is net.Error's Timeout method; many non-net errors have it too
// (context.DeadlineExceeded, *url.Error, syscall.Errno, *net.DNSError).
type timeouter interface{ Timeout() bool }

// maxChainNodes bounds the walk over an error tree, in case of an absurdly
// deep or wide one.
const maxChainNodes = 1000

// Classify returns the failure kind of err, or "" when err is nil. It walks
// the whole chain (fmt.Errorf %w, errors.Join, Unwrap methods) and applies
// these rules in order; the first rule that matches anywhere in the chain
// decides, and within a rule the outermost error wins:
//
//  1. Typed errors win. An error with a FailureKind() string method whose
//     value is a known kind (see [ParseKind]) decides: [Error], the lanes'
//     FailJob and handlers' own types use this. Unknown values are ignored.
//  2. HTTP status. An error with a StatusCode() int method: 401 and 403 are
//     [KindAuthentication]; 408, 425, 429 and 5xx are [KindTransient]; other
//     statuses do not decide and the next rules apply.
//  3. [ErrAuthentication] anywhere in the chain is [KindAuthentication].
//  4. Timeouts and connection errors are [KindTransient]:
//     context.DeadlineExceeded, os.ErrDeadlineExceeded, any error whose
//     Timeout() is true (net.Error); ECONNREFUSED, ECONNRESET, EPIPE,
//     ECONNABORTED, EHOSTUNREACH, ENETUNREACH, ENETDOWN, ETIMEDOUT; a
//     *net.OpError from dialing; io.ErrUnexpectedEOF (a response body cut
//     short); a *url.Error whose cause is io.EOF (the server closed the
//     connection before answering); a *net.DNSError that is temporary or a
//     timeout. A DNS error that is neither (no such host) is not transient,
//     even inside a dial error: it is a configuration problem.
//  5. context.Canceled is [KindTransient]: the job was interrupted (for
//     example by shutdown) and should run again.
//  6. Everything else is [KindRuntime].
//
// Panics are recovered by the worker middleware and recorded as
// [KindRuntime] without calling Classify.
func Classify(err error) Kind {
	if err == nil {
		return ""
	}
	if k, ok := first(err, typedKind); ok {
		return k
	}
	if k, ok := first(err, statusKind); ok {
		return k
	}
	if errors.Is(err, ErrAuthentication) {
		return KindAuthentication
	}
	if isTimeout(err) || isConnectionError(err) {
		return KindTransient
	}
	if errors.Is(err, context.Canceled) {
		return KindTransient
	}
	return KindRuntime
}

func typedKind(err error) (Kind, bool) {
	fk, ok := err.(failureKinder)
	if !ok {
		return "", false
	}
	k, perr := ParseKind(fk.FailureKind())
	return k, perr == nil
}

func statusKind(err error) (Kind, bool) {
	sc, ok := err.(statusCoder)
	if !ok {
		return "", false
	}
	switch code := sc.StatusCode(); {
	case code == 401 || code == 403:
		return KindAuthentication, true
	case code == 408 || code == 425 || code == 429 || (code >= 500 && code <= 599):
		return KindTransient, true
	}
	return "", false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	_, ok := first(err, func(e error) (struct{}, bool) {
		t, ok := e.(timeouter)
		return struct{}{}, ok && t.Timeout()
	})
	return ok
}

// connErrnos are the socket errors that mean "the other side is not there
// right now".
var connErrnos = []error{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE, syscall.ECONNABORTED,
	syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.ETIMEDOUT,
}

func isConnectionError(err error) bool {
	for _, errno := range connErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	_, ok := first(err, func(e error) (struct{}, bool) {
		switch e := e.(type) {
		case *net.DNSError:
			return struct{}{}, e.IsTemporary || e.IsTimeout
		case *net.OpError:
			if e.Op != "dial" {
				return struct{}{}, false
			}
			var dns *net.DNSError
			if errors.As(e.Err, &dns) {
				return struct{}{}, dns.IsTemporary || dns.IsTimeout
			}
			return struct{}{}, true
		case *url.Error:
			return struct{}{}, errors.Is(e.Err, io.EOF)
		}
		return struct{}{}, false
	})
	return ok
}

// first walks err's tree depth-first, outermost first (the order errors.As
// uses), and returns the first value match accepts.
func first[T any](err error, match func(error) (T, bool)) (T, bool) {
	stack := []error{err}
	for visited := 0; len(stack) > 0 && visited < maxChainNodes; visited++ {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if e == nil {
			continue
		}
		if v, ok := match(e); ok {
			return v, true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			stack = append(stack, u.Unwrap())
		case interface{ Unwrap() []error }:
			children := u.Unwrap()
			for i := len(children) - 1; i >= 0; i-- {
				stack = append(stack, children[i])
			}
		}
	}
	var zero T
	return zero, false
}
