package failures

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"

	"conveyor/ops/fault"
)

// failureKinder is implemented by errors that carry their own kind: [fault.Error],
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
//     value is a known kind (see [fault.Parse]) decides: [fault.Error], the lanes'
//     FailJob and handlers' own types use this. Unknown values are ignored.
//  2. HTTP status. An error with a StatusCode() int method: 401 and 403 are
//     [fault.Authentication]; 408, 425, 429 and 5xx are [fault.Transient]; other
//     statuses do not decide and the next rules apply.
//  3. [fault.ErrAuthentication] anywhere in the chain is [fault.Authentication].
//  4. Timeouts and connection errors are [fault.Transient]:
//     context.DeadlineExceeded, os.ErrDeadlineExceeded, any error whose
//     Timeout() is true (net.Error); ECONNREFUSED, ECONNRESET, EPIPE,
//     ECONNABORTED, EHOSTUNREACH, ENETUNREACH, ENETDOWN, ETIMEDOUT; a
//     *net.OpError from dialing; io.ErrUnexpectedEOF (a response body cut
//     short); a *url.Error whose cause is io.EOF (the server closed the
//     connection before answering); a *net.DNSError that is temporary or a
//     timeout. A DNS error that is neither (no such host) is not transient,
//     even inside a dial error: it is a configuration problem.
//  5. context.Canceled is [fault.Transient]: the job was interrupted (for
//     example by shutdown) and should run again.
//  6. Everything else is [fault.Runtime].
//
// Panics are recovered by the worker middleware and recorded as
// [fault.Runtime] without calling Classify.
func Classify(err error) fault.Kind {
	if err == nil {
		return ""
	}
	if k, ok := first(err, typedKind); ok {
		return k
	}
	if k, ok := first(err, statusKind); ok {
		return k
	}
	if errors.Is(err, fault.ErrAuthentication) {
		return fault.Authentication
	}
	if isTimeout(err) || isConnectionError(err) {
		return fault.Transient
	}
	if errors.Is(err, context.Canceled) {
		return fault.Transient
	}
	return fault.Runtime
}

func typedKind(err error) (fault.Kind, bool) {
	fk, ok := err.(failureKinder)
	if !ok {
		return "", false
	}
	k, perr := fault.Parse(fk.FailureKind())
	return k, perr == nil
}

func statusKind(err error) (fault.Kind, bool) {
	sc, ok := err.(statusCoder)
	if !ok {
		return "", false
	}
	switch code := sc.StatusCode(); {
	case code == 401 || code == 403:
		return fault.Authentication, true
	case code == 408 || code == 425 || code == 429 || (code >= 500 && code <= 599):
		return fault.Transient, true
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
