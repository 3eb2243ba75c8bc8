// Package testlog gives tests a *slog.Logger whose records go to the test's
// log (t.Log), so that they show with the test that wrote them: only when it
// fails, or with go test -v. It is the one copy of that helper every
// package's tests share.
//
// It lives under internal/ because it is not part of any product area: only
// Conveyor's own tests import it.
package testlog

import (
	"log/slog"
	"strings"
	"testing"
)

// New returns a logger that writes every record, debug and up, to t.Log as
// text. Do not log through it after the test has finished: testing panics
// on a t.Log after the end of a test.
func New(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(writer{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// writer turns each formatted record into one t.Log call.
type writer struct{ t testing.TB }

// Write logs p without its trailing newline.
func (w writer) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
