package ui

// This file is the JSON API's one shape: an endpointFunc returns a status
// and a response struct (or an error); endpoint wraps it into a route handle
// that writes the response, or the error through errorTable (errors.go);
// decodeBody and writeJSON are the codec every endpoint uses.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

// writeJSON encodes v fully before writing anything, so that a response is
// never half-written. encoding/json escapes <, > and & in strings, so job data
// cannot become markup in whatever displays it.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if a, ok := v.(jsonAppender); ok {
		b = a.appendJSON(make([]byte, 0, 128))
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		s.log.Error("encode response", "err", err)
		b = []byte(`{"error":"internal error (logged on the server)"}`)
		status = http.StatusInternalServerError
	}
	b = append(b, '\n')
	h := w.Header()
	h["Content-Type"] = hdrJSONType
	h["Content-Length"] = contentLength(len(b))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// smallLengths are the Content-Length values of small answers, shared (and
// never modified) as the security headers' values are: no allocation per
// answer.
var smallLengths = func() (v [512][]string) {
	for n := range v {
		v[n] = []string{strconv.Itoa(n)}
	}
	return v
}()

// contentLength is the Content-Length header value for n bytes.
func contentLength(n int) []string {
	if n < len(smallLengths) {
		return smallLengths[n]
	}
	return []string{strconv.Itoa(n)}
}

// jsonAppender is an answer that encodes itself: the bytes json.Marshal
// makes of it, without reflection, for the answers of the hot endpoints
// (single enqueue, where json.Marshal was a twentieth of the server's CPU
// per job). Each implementation is tested against json.Marshal.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

// appendJSONString appends s as json.Marshal encodes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// endpointFunc is a JSON API endpoint: it returns a status and a response
// struct, or an error for errorTable.
type endpointFunc func(r *http.Request, ps httprouter.Params) (status int, body any, err error)

// endpoint is the one wrapper that turns an endpointFunc into a route
// handle: the body as JSON, or the error as errorTable says.
func (s *Server) endpoint(h endpointFunc) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		status, body, err := h(r, ps)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, status, body)
	}
}

// decodeBody reads exactly one JSON value into dst (decodeJSON).
func decodeBody(r io.Reader, dst any, prefix string) error {
	body, err := readAllBody(r, prefix)
	if err != nil {
		return err
	}
	return decodeJSON(body, dst, prefix)
}

// readAllBody reads the rest of a request body (bodyBytes); an error is
// the body's limit (*http.MaxBytesError) or a client error.
func readAllBody(r io.Reader, prefix string) ([]byte, error) {
	body, err := bodyBytes(r)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, err
		}
		return nil, malformed(prefix, "cannot read the body: %v", err)
	}
	return body, nil
}

// decodeJSON decodes body, exactly one JSON value, into dst: unknown
// fields, keys that match a field only when case is ignored, keys given
// twice and trailing data are errors (checkKeys), and errors name the
// field (under prefix) when it is known.
func decodeJSON(body []byte, dst any, prefix string) error {
	if err := checkKeys(json.NewDecoder(bytes.NewReader(body)), reflect.TypeOf(dst), prefix); err != nil && !errors.Is(err, errKeysUnchecked) {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, prefix)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed(prefix, "trailing data after the JSON value")
	}
	return nil
}

// decodeError turns a decoding error into a client error naming the field,
// without Go type names.
func decodeError(err error, prefix string) error {
	var (
		mb *http.MaxBytesError
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mb):
		return err
	case errors.Is(err, io.EOF):
		return malformed(prefix, "the body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed(prefix, "the JSON value is cut short")
	case errors.As(err, &se):
		return malformed(prefix, "invalid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return malformed(joinField(prefix, te.Field), "want %s, got %s", jsonKind(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		return malformed(joinField(prefix, name), "unknown field")
	}
	return malformed(prefix, "invalid JSON")
}

// jsonKind names the JSON a Go type takes.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number in range"
	case reflect.Float32, reflect.Float64:
		return "a number in range"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another value"
}
