package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

// FuzzDecodeEnqueue: the enqueue decoder never panics, and whatever it is fed
// either becomes a job that satisfies the API's rules or is refused with a
// client error (4xx) — never a 500.
func FuzzDecodeEnqueue(f *testing.F) {
	for _, seed := range []string{
		`{"class":"NoopJob"}`,
		`{"class":"SyncAccountJob","queue":"sync","args":{"account_id":7},"max_attempts":3}`,
		`{"class":"SleepJob","args":{"ms":5},"in_seconds":1.5,"unique_key":"k","context":{"account_id":"1"}}`,
		`{"class":"NoopJob","run_at":"2026-05-01T12:00:00.250+02:00"}`,
		`{"class":"NoopJob","run_at":"2026-05-01T12:00:00Z","in_seconds":1}`,
		`{"class":"NoopJob","run_at":"9999-12-31T23:59:59Z"}`,
		`{"class":"NoopJob","in_seconds":-0.0}`,
		`{"class":"NoopJob","in_seconds":1e308}`,
		`{"class":"NoopJob","max_attempts":0}`,
		`{"class":"NoopJob","max_attempts":-9223372036854775808}`,
		`{"class":"NoopJob","queue":"nowhere"}`,
		`{"class":"noopjob"}`,
		`{"class":"StrandedJob"}`,
		`{"class":"NoopJob","args":null}`,
		`{"class":"NoopJob","context":{"":""}}`,
		`{"class":"NoopJob"} trailing`,
		`{"class":"NoopJob","class":"SleepJob"}`,
		`{"Class":"NoopJob"}`,
		`{"class":"\u0000"}`,
		`{"class":"NoopJob","extra":1}`,
		`{"class":"NoopJob","CLASS":"SleepJob","ARGS":{"ms":1}}`,
		`{"class":"NoopJob","context":{"a":"1","a":"2"}}`,
		`{"class":"NoopJob","claſs":"SleepJob"}`,
		`[]`, `null`, `""`, `{`, ``, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		f.Fatal(err)
	}
	noop := lanes.HandlerFunc(func(context.Context, *queue.Job) error { return nil })
	reg.MustRegister(lanes.Class{Name: "SyncAccountJob", Queue: "sync", Args: lanes.FreeForm, MaxAttempts: 5, Handler: noop})
	reg.MustRegister(lanes.Class{Name: "StrandedJob", Queue: "nowhere", Args: lanes.FreeForm, Handler: noop})
	topo := lanes.DefaultTopology()

	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeEnqueue(body, "")
		if err != nil {
			if status, _, msg := classify(err); status != http.StatusBadRequest || msg == "" {
				t.Fatalf("decode error %v maps to %d %q, want 400", err, status, msg)
			}
			return
		}
		nj, err := buildJob(req, reg, topo, t0)
		if err != nil {
			if status, field, _ := classify(err); status != http.StatusUnprocessableEntity || field == "" {
				t.Fatalf("validation error %v maps to %d field %q, want 422 with a field", err, status, field)
			}
			return
		}
		// Every key of an accepted body is a field's exact name.
		var keys map[string]json.RawMessage
		if json.Unmarshal(body, &keys) == nil {
			known := fieldsOf(reflect.TypeFor[enqueueRequest]()).exact
			for k := range keys {
				if _, ok := known[k]; !ok {
					t.Fatalf("key %q accepted", k)
				}
			}
		}
		cls, ok := reg.Lookup(nj.Class)
		if !ok {
			t.Fatalf("unregistered class %q accepted", nj.Class)
		}
		if _, ok := topo.LaneOf(nj.Queue); !ok {
			t.Fatalf("queue %q no lane serves accepted", nj.Queue)
		}
		if req.Queue == "" && nj.Queue != cls.Queue {
			t.Fatalf("queue %q, want the class's %q", nj.Queue, cls.Queue)
		}
		if req.RunAt != nil && req.InSeconds != nil {
			t.Fatal("run_at and in_seconds both accepted")
		}
		if !nj.RunAt.IsZero() && (nj.RunAt.Before(minRunAt) || !nj.RunAt.Before(maxRunAt)) {
			t.Fatalf("run_at %v out of range accepted", nj.RunAt)
		}
		if nj.MaxAttempts < 0 || nj.MaxAttempts > 1000 || (req.MaxAttempts != nil && nj.MaxAttempts == 0) {
			t.Fatalf("max_attempts %d accepted", nj.MaxAttempts)
		}
		if !bytes.Equal(nj.Args, req.Args) {
			t.Fatalf("args changed: %q → %q", req.Args, nj.Args)
		}
	})
}

// FuzzSessionCookie: whatever a browser sends as the session cookie, the
// check never panics and accepts only what this server signed; CSRF
// tokens likewise.
func FuzzSessionCookie(f *testing.F) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s, err := newSessions(bytes.Repeat([]byte("k"), MinSessionKeyLen), time.Hour, func() time.Time { return now }, false, "")
	if err != nil {
		f.Fatal(err)
	}
	// A fixed session (issue draws a random id, and fuzz workers run this
	// function again).
	good := session{id: "c2Vzc2lvbi1pZC0xMjM0NTY3", expires: now.Add(time.Hour)}
	exp := fmt.Sprint(good.expires.Unix())
	c := &http.Cookie{Value: "v1." + exp + "." + good.id + "." + b64.EncodeToString(s.mac("session", "v1", exp, good.id))}
	for _, seed := range []string{c.Value, "", "v1", "v1...", "v1.1.a.b", "v2." + c.Value[3:], c.Value + "x", "v1.99999999999999999999.a.b"} {
		f.Add(seed, s.csrfToken(good))
	}
	f.Fuzz(func(t *testing.T, value, token string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", SessionCookie+"="+value)
		sess, err := s.check(r)
		// What the server reads of the header (net/http drops what is
		// not a cookie value).
		seen := ""
		if ck, cerr := r.Cookie(SessionCookie); cerr == nil {
			seen = ck.Value
		}
		if seen == c.Value && err != nil {
			t.Fatalf("refused the signed cookie: %v", err)
		}
		if err == nil && seen != c.Value {
			t.Fatalf("accepted a cookie this server did not sign: %q", value)
		}
		if err == nil && s.checkCSRF(sess, token) != (token == s.csrfToken(good)) {
			t.Fatalf("CSRF check of %q disagrees", token)
		}
	})
}

// FuzzRetryAllBody: whatever JSON body POST /api/v1/failures/retry is sent,
// reading it never panics and either refuses it with a 400 or yields a
// filter the store accepts.
func FuzzRetryAllBody(f *testing.F) {
	for _, seed := range []string{
		`{"filter":[{"field":"class","type":"=","value":"SleepJob"}]}`,
		`{"filter":[{"field":"attempt","type":"in","value":[2,3]}],"q":"down","page":1,"size":10}`,
		`{"filter":[{"field":"retryable","value":true}],"sort":[{"field":"id","dir":"desc"}]}`,
		`{"after_id":5,"until_id":9}`,
		`{"filter":[{"field":"class","value":{"x":1}}]}`,
		`{"filter":[{"field":"class","value":null}]}`,
		`{"Filter":[]}`, `{"filter":{}}`, `{}`, `[]`, ``, `{"q":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var b retryAllBody
		err := decodeBody(bytes.NewReader(body), &b, "")
		var params url.Values
		if err == nil {
			params, err = b.merge(url.Values{})
		}
		if err == nil {
			delete(params, "after_id")
			delete(params, "until_id")
			var ff data.FailureFilter
			if ff, err = parseTabulator(params); err == nil {
				if verr := ff.Validate(); verr != nil {
					t.Fatalf("%q: accepted a filter the store refuses: %v", body, verr)
				}
				return
			}
		}
		if status, _, msg := classify(err); status != http.StatusBadRequest || msg == "" || strings.Contains(msg, "ui.") {
			t.Fatalf("%q: %v maps to %d %q, want a 400", body, err, status, msg)
		}
	})
}
