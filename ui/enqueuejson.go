package ui

// This file is the single enqueue's short way through JSON. The general
// decoder (decodeBody: a key check, then encoding/json) was a tenth of the
// server's CPU per job when 64 clients enqueue one job per request, most of
// it allocation and reflection for a body of a few dozen bytes. Bodies in
// the plain shape producers send are read here in one pass instead; any
// other body goes the general way, which accepts it or says what is wrong
// with it exactly as before.

import (
	"strconv"
	"unicode/utf8"
)

// The enqueue request's keys, as bits of a set (a key may come once).
const (
	keyClass = 1 << iota
	keyQueue
	keyArgs
	keyRunAt
	keyInSeconds
	keyUniqueKey
	keyMaxAttempts
	keyContext
)

// decodeEnqueueFast reads body in one pass when it is an object whose
// keys are enqueueRequest's exact names, each given once, with values of
// the fields' JSON types; strings without escapes, in valid UTF-8; no
// null (but within args, which is any JSON value and kept as it is); an
// in_seconds and max_attempts that parse as a float64 and an int. It
// returns ok false for anything else, and the caller decodes the body the
// general way. When ok, the request is the one decodeBody makes of the
// same body (FuzzEnqueueFast checks this), with Args sharing body's memory.
func decodeEnqueueFast(body []byte) (req enqueueRequest, ok bool) {
	s := jsonScan{b: body}
	s.space()
	var seen int
	ok = s.byte('{') && s.list('}', func() bool {
		key, ok := s.plainString()
		if !ok || !s.colon() {
			return false
		}
		bit := 0
		switch string(key) {
		case "class":
			bit = keyClass
			req.Class, ok = s.string()
		case "queue":
			bit = keyQueue
			req.Queue, ok = s.string()
		case "args":
			bit = keyArgs
			start := s.i
			if ok = s.value(0); ok {
				req.Args = body[start:s.i:s.i]
			}
		case "run_at":
			bit = keyRunAt
			var v string
			if v, ok = s.string(); ok {
				req.RunAt = &v
			}
		case "in_seconds":
			bit = keyInSeconds
			var num []byte
			if num, ok = s.number(); ok {
				v, err := strconv.ParseFloat(string(num), 64)
				req.InSeconds, ok = &v, err == nil
			}
		case "unique_key":
			bit = keyUniqueKey
			req.UniqueKey, ok = s.string()
		case "max_attempts":
			bit = keyMaxAttempts
			var num []byte
			if num, ok = s.number(); ok {
				v, err := strconv.Atoi(string(num))
				req.MaxAttempts, ok = &v, err == nil
			}
		case "context":
			bit = keyContext
			req.Context, ok = s.stringMap()
		}
		if bit == 0 || seen&bit != 0 || !ok {
			return false
		}
		seen |= bit
		return true
	})
	s.space()
	return req, ok && s.i == len(s.b)
}

// jsonScan reads JSON from b at i. Its methods advance past what they
// accept; after a refusal the position does not matter (the caller gives
// up).
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *jsonScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// byte consumes c if it comes next.
func (s *jsonScan) byte(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters, in
// valid UTF-8, and returns its content (sharing b's memory).
func (s *jsonScan) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// string reads a plain string (plainString) into a string of its own.
func (s *jsonScan) string() (string, bool) {
	v, ok := s.plainString()
	return string(v), ok
}

// stringMap reads an object of plain strings, each key once.
func (s *jsonScan) stringMap() (map[string]string, bool) {
	m := map[string]string{}
	ok := s.byte('{') && s.list('}', func() bool {
		k, ok := s.string()
		if !ok || !s.colon() {
			return false
		}
		if _, dup := m[k]; dup {
			return false
		}
		m[k], ok = s.string()
		return ok
	})
	return m, ok
}

// list reads the rest of an object or an array, its opening bracket read:
// elements (elem reads one) separated by commas, then close.
func (s *jsonScan) list(close byte, elem func() bool) bool {
	s.space()
	if s.byte(close) {
		return true
	}
	for {
		s.space()
		if !elem() {
			return false
		}
		s.space()
		if s.byte(close) {
			return true
		}
		if !s.byte(',') {
			return false
		}
	}
}

// colon reads the colon after an object's key, with the space around it.
func (s *jsonScan) colon() bool {
	s.space()
	ok := s.byte(':')
	s.space()
	return ok
}

// number reads a JSON number and returns its text.
func (s *jsonScan) number() ([]byte, bool) {
	start := s.i
	s.byte('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.byte('.') && !s.digits() {
		return nil, false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if !s.byte('+') {
			s.byte('-')
		}
		if !s.digits() {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// digits reads one or more digits.
func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// maxScanDepth bounds the nesting value follows; deeper values go the
// general way.
const maxScanDepth = 32

// value reads any JSON value, as encoding/json's scanner accepts it
// (strings may hold escapes and any bytes from 0x20 up, valid UTF-8 or
// not).
func (s *jsonScan) value(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '{':
		s.i++
		return s.list('}', func() bool { return s.anyString() && s.colon() && s.value(depth+1) })
	case c == '[':
		s.i++
		return s.list(']', func() bool { return s.value(depth + 1) })
	case c == '"':
		return s.anyString()
	case c == '-' || c >= '0' && c <= '9':
		_, ok := s.number()
		return ok
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			return true
		}
	}
	return false
}

// anyString reads a string with any valid escapes.
func (s *jsonScan) anyString() bool {
	if !s.byte('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if !isHex(s.peek()) {
						return false
					}
					s.i++
				}
			default:
				return false
			}
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
