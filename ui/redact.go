package ui

import (
	"bytes"
	"encoding/json"
	"strings"
)

// DefaultRedact are the key patterns whose values the API and the pages
// never show: a key is redacted when it contains one of them, ignoring case
// ("api_token", "Password", "session_cookie").
var DefaultRedact = []string{"password", "token", "secret", "cookie"}

// Redacted replaces the value of a redacted key.
const Redacted = "[redacted]"

// redactor masks the values of sensitive keys in job data before it is
// shown. It changes only what is shown: the store keeps the job as it was,
// so a retry still runs with the real values.
type redactor struct{ patterns []string }

func newRedactor(patterns []string) redactor {
	r := redactor{}
	for _, p := range patterns {
		r.patterns = append(r.patterns, strings.ToLower(strings.TrimSpace(p)))
	}
	return r
}

// key reports whether a key's value must be masked.
func (r redactor) key(k string) bool {
	k = strings.ToLower(k)
	for _, p := range r.patterns {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// json masks, at any depth, the values of redacted keys in raw JSON. JSON
// without such a key (or that does not parse) comes back as it was; JSON
// with one comes back re-encoded, numbers kept exactly.
func (r redactor) json(raw json.RawMessage) json.RawMessage {
	if len(r.patterns) == 0 || len(raw) == 0 || !bytes.ContainsAny(raw, "{") {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	v, changed := r.walk(v)
	if !changed {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	return out
}

func (r redactor) walk(v any) (any, bool) {
	changed := false
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if r.key(k) {
				t[k] = Redacted
				changed = true
				continue
			}
			if ne, c := r.walk(e); c {
				t[k], changed = ne, true
			}
		}
	case []any:
		for i, e := range t {
			if ne, c := r.walk(e); c {
				t[i], changed = ne, true
			}
		}
	}
	return v, changed
}

// strings returns m with the values of redacted keys masked (a copy when
// anything is masked).
func (r redactor) strings(m map[string]string) map[string]string {
	var out map[string]string
	for k := range m {
		if r.key(k) {
			if out == nil {
				out = make(map[string]string, len(m))
				for k2, v2 := range m {
					out[k2] = v2
				}
			}
			out[k] = Redacted
		}
	}
	if out == nil {
		return m
	}
	return out
}
