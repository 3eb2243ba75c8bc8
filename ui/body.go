package ui

// This file bounds what a client can make the server wait for. A request
// body is read only after the caller is authenticated, whole, under
// Config.BodyReadTimeout, before its handler runs; a refused request (or
// one answered without its body) is answered at once with Connection:
// close, and the connection is then closed instead of waiting for a body
// nobody will read. net/http would otherwise read up to 256 KiB of an
// unread body before it even writes the answer (to keep the connection
// alive), which lets a client that sends one byte every few seconds hold a
// goroutine and a file descriptor for as long as it likes, token or not.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultBodyReadTimeout bounds the time a client has to send a request's
// body once its header has arrived.
const DefaultBodyReadTimeout = 30 * time.Second

// preAuthBodyTimeout bounds the body of a request read before its caller is
// known, which only a login form is: a few hundred bytes.
const preAuthBodyTimeout = 5 * time.Second

// refusedBodyGrace is how long the connection of a request answered
// without reading its body stays open after the answer, reading what is
// left of the body (at most 256 KiB), so that a client that sent its whole
// body reads the answer rather than a reset connection. A client that
// sends its body slowly is cut off then.
const refusedBodyGrace = time.Second

// hasBody reports whether the request announces a body (a Content-Length,
// or chunked encoding).
func hasBody(r *http.Request) bool { return r.ContentLength != 0 }

// boundBody starts the body's time bound: ServeHTTP calls it before
// routing, so that every path that reads a body (or that net/http reads on
// its own after the handler) is bounded. readBody lifts it once the body
// is in.
func (s *Server) boundBody(w http.ResponseWriter, r *http.Request) {
	if hasBody(r) {
		setReadDeadline(w, time.Now().Add(s.cfg.BodyReadTimeout))
	}
}

// setReadDeadline sets the connection's read deadline: through the
// ResponseWriter's own method when it has one (net/http's does: no
// ResponseController to allocate per request), else a ResponseController
// (a wrapped writer).
func setReadDeadline(w http.ResponseWriter, t time.Time) {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(t)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(t)
}

// readBody reads the whole body of an authenticated request (or, preAuth,
// of the login form, under preAuthBodyTimeout), at most limit bytes, and
// hands it to the handler from memory. It returns a *http.MaxBytesError for
// a body over the limit (having read no more than the limit),
// errBodyTimeout when the body did not arrive in time, and a
// malformed-request error when the client broke off.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64, preAuth bool) error {
	timeout := s.cfg.BodyReadTimeout
	if preAuth && timeout > preAuthBodyTimeout {
		timeout = preAuthBodyTimeout
		setReadDeadline(w, time.Now().Add(timeout))
	}
	if r.ContentLength > limit {
		// Refused, but read (and dropped) up to the limit, within the time
		// bound: a client that writes its whole body before it reads (Go's
		// does) then gets its 413 rather than a reset connection.
		_, _ = io.CopyN(io.Discard, r.Body, limit)
		return &http.MaxBytesError{Limit: limit}
	}
	var body []byte
	var err error
	switch {
	case r.PostForm != nil && isForm(r):
		// A session's CSRF check has read the body as a form: nothing is left.
	case r.ContentLength > 0 && r.ContentLength <= smallBodyBytes:
		// The common case, a small body of known length: one exact buffer.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	default:
		// The buffer grows as the body arrives: a Content-Length alone (an
		// authenticated client's, but still) reserves no more than 64 KiB.
		buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 512), smallBodyBytes)))
		_, err = buf.ReadFrom(io.LimitReader(r.Body, limit+1))
		if err == nil && int64(buf.Len()) > limit {
			return &http.MaxBytesError{Limit: limit}
		}
		body = buf.Bytes()
	}
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &fieldError{kind: errBodyTimeout, Msg: fmt.Sprintf("the body did not arrive within %s", timeout)}
	case err != nil:
		return malformed("", "the body could not be read: it ended before its announced length or was not valid chunked encoding")
	}
	// The body is in: the rest of the request (the handler, and for the
	// event stream an open-ended wait) is not bounded by it.
	setReadDeadline(w, time.Time{})
	r.Body = &bodyReader{Reader: *bytes.NewReader(body), b: body}
	return nil
}

// bodyReader is a request body readBody has read whole: handlers decode
// it from memory (bodyBytes) rather than copy it out again.
type bodyReader struct {
	bytes.Reader
	b []byte
}

func (*bodyReader) Close() error { return nil }

// bodyBytes returns what is left to read of r, and reads it: without a
// copy when r is a body readBody has read.
func bodyBytes(r io.Reader) ([]byte, error) {
	if br, ok := r.(*bodyReader); ok {
		rest := br.b[len(br.b)-br.Len():]
		br.Reset(nil)
		return rest, nil
	}
	return io.ReadAll(r)
}

// dropBody prepares the answer to a request whose body will not be read:
// Connection: close, so that net/http writes the answer at once instead of
// first reading the body, and a short bound on what it reads afterwards.
func (s *Server) dropBody(w http.ResponseWriter, r *http.Request) {
	if !hasBody(r) {
		return
	}
	w.Header().Set("Connection", "close")
	setReadDeadline(w, time.Now().Add(refusedBodyGrace))
}

// refuse answers err without reading the request's body: for requests
// refused before authentication, or answered without their body.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	s.dropBody(w, r)
	s.writeError(w, r, err)
}
