package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"conveyor/queue"
)

// Kinds of client error. Handlers return a *fieldError of one of these kinds
// (or an error of the store); errorTable maps them to statuses.
var (
	errMalformed       = errors.New("malformed request")       // 400
	errUnauthenticated = errors.New("unauthenticated")         // 401
	errHost            = errors.New("host not allowed")        // 403
	errForbidden       = errors.New("forbidden")               // 403
	errTooMany         = errors.New("too many requests")       // 429
	errNoRoute         = errors.New("not found")               // 404
	errMethod          = errors.New("method not allowed")      // 405
	errBodyTimeout     = errors.New("request body too slow")   // 408
	errConflict        = errors.New("conflict")                // 409
	errMediaType       = errors.New("unsupported media type")  // 415
	errInvalid         = errors.New("invalid request")         // 422
	errUnavailable     = errors.New("temporarily unavailable") // 503
)

// fieldError is a client error about one field of the request. Field is
// spelled as in the request: "class", "jobs[3].class", "state", "id".
type fieldError struct {
	kind  error
	Field string
	Msg   string
}

func (e *fieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *fieldError) Unwrap() error { return e.kind }

func malformed(field, format string, a ...any) error {
	return &fieldError{kind: errMalformed, Field: field, Msg: fmt.Sprintf(format, a...)}
}

func invalid(field, format string, a ...any) error {
	return &fieldError{kind: errInvalid, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// prefixed returns err with its field put under prefix ("jobs[3]"), for
// errors about one element of a batch.
func prefixed(err error, prefix string) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		out := *fe
		out.Field = joinField(prefix, fe.Field)
		return &out
	}
	var ve *queue.ValidationError
	if errors.As(err, &ve) {
		return &fieldError{kind: errInvalid, Field: joinField(prefix, ve.Field), Msg: ve.Reason}
	}
	return err
}

func joinField(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	}
	return prefix + "." + field
}

// errorRow maps the errors it matches to a status; match returns the field
// and message sent to the client.
type errorRow struct {
	status int
	match  func(err error) (field, msg string, ok bool)
}

// is matches errors.Is(err, target); a *fieldError in the chain supplies the
// field and message, else the row's own.
func is(target error, field, msg string) func(error) (string, string, bool) {
	return func(err error) (string, string, bool) {
		if !errors.Is(err, target) {
			return "", "", false
		}
		var fe *fieldError
		if errors.As(err, &fe) {
			return fe.Field, fe.Msg, true
		}
		return field, msg, true
	}
}

// errorTable is the one place errors become statuses. Anything it does not
// match is a 500 whose detail is logged and never sent.
var errorTable = []errorRow{
	{http.StatusBadRequest, is(errMalformed, "", "malformed request")},
	{http.StatusBadRequest, is(queue.ErrBadCursor, "cursor", "bad cursor: pass back the next value of a previous page")},
	{http.StatusUnauthorized, is(errUnauthenticated, "Authorization", "authentication required")},
	{http.StatusForbidden, is(errHost, "Host", "host not allowed")},
	{http.StatusForbidden, is(errForbidden, "", "forbidden")},
	{http.StatusNotFound, is(errNoRoute, "", "not found")},
	{http.StatusNotFound, is(queue.ErrNotFound, "id", "no job has this id")},
	{http.StatusMethodNotAllowed, is(errMethod, "", "method not allowed")},
	{http.StatusRequestTimeout, is(errBodyTimeout, "", "the body did not arrive in time")},
	{http.StatusConflict, is(queue.ErrRunning, "id", "the job is running; wait for its attempt to end")},
	{http.StatusConflict, is(errConflict, "", "conflict")},
	{http.StatusConflict, is(queue.ErrWrongState, "id", "the job is not in a state that allows this")},
	{http.StatusRequestEntityTooLarge, func(err error) (string, string, bool) {
		var mb *http.MaxBytesError
		if !errors.As(err, &mb) {
			return "", "", false
		}
		return "", fmt.Sprintf("the body is larger than %d bytes", mb.Limit), true
	}},
	{http.StatusUnsupportedMediaType, is(errMediaType, "Content-Type", "unsupported media type")},
	{http.StatusUnprocessableEntity, is(errInvalid, "", "invalid request")},
	{http.StatusUnprocessableEntity, func(err error) (string, string, bool) {
		var ve *queue.ValidationError
		if !errors.As(err, &ve) {
			return "", "", false
		}
		return ve.Field, ve.Reason, true
	}},
	{http.StatusTooManyRequests, is(errTooMany, "", "too many requests: wait and try again")},
	{http.StatusServiceUnavailable, is(errUnavailable, "", "temporarily unavailable")},
	{http.StatusServiceUnavailable, is(queue.ErrClosed, "", "the server is shutting down")},
	{http.StatusInsufficientStorage, is(queue.ErrDiskFull, "", "the queue's disk is full: nothing was written; retry once space is freed")},
	{http.StatusServiceUnavailable, is(queue.ErrFailed, "", "the queue file could not be written: writes are refused until the server restarts")},
}

// classify maps err through errorTable: the status and what the client sees.
func classify(err error) (status int, field, msg string) {
	for _, row := range errorTable {
		if f, m, ok := row.match(err); ok {
			return row.status, f, m
		}
	}
	return http.StatusInternalServerError, "", "internal error (logged on the server)"
}

// errorJSON is every error's body. Field is "" when no one field is at fault.
type errorJSON struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// statusClientClosed answers a request its client gave up on (nginx's 499):
// nobody reads it, but the access log shows what happened.
const statusClientClosed = 499

// writeError answers err as JSON with the status errorTable gives it; the
// detail of a 500 goes to the log only. A request whose client went away
// (its context cancelled) is logged as cancelled, not as a server error.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		s.log.Info("request cancelled by its client", "method", r.Method, "path", r.URL.Path)
		s.writeJSON(w, statusClientClosed, errorJSON{Error: "request cancelled"})
		return
	}
	status, field, msg := classify(err)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	s.writeJSON(w, status, errorJSON{Error: msg, Field: field})
}
