package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"conveyor/ops/fault"
)

// answer is what the loopback connector service answers.
type answer struct {
	status int
	header map[string]string
	body   string
}

// TestBridgeMapping: every class of answer a connector service can give,
// from a real HTTP server on loopback, maps to the result or the failure
// kind the contract says.
func TestBridgeMapping(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name       string
		ans        answer
		result     string     // a 2xx's result
		kind       fault.Kind // else the error's kind
		status     int
		retryAfter time.Duration
		message    string
	}{
		{name: "200 with a JSON result", ans: answer{200, nil, `{"posts":[],"has_more":false}`}, result: `{"posts":[],"has_more":false}`},
		{name: "201 counts as done", ans: answer{201, nil, ` [1, 2] `}, result: `[1, 2]`},
		{name: "204 without a body", ans: answer{204, nil, ``}, result: `null`},
		{name: "200 that is not JSON", ans: answer{200, nil, `<html>oops</html>`}, kind: fault.Runtime, status: 200, message: "not JSON: <html>oops</html>"},
		{name: "401", ans: answer{401, nil, `{"error":"session expired"}`}, kind: fault.Authentication, status: 401, message: "session expired"},
		{name: "403", ans: answer{403, nil, `forbidden for this account`}, kind: fault.Authentication, status: 403, message: "forbidden for this account"},
		{name: "408", ans: answer{408, nil, ``}, kind: fault.Transient, status: 408, message: "Request Timeout"},
		{name: "429 with Retry-After seconds", ans: answer{429, map[string]string{"Retry-After": "17"}, `{"message":"slow down"}`},
			kind: fault.Transient, status: 429, retryAfter: 17 * time.Second, message: "slow down"},
		{name: "503 with Retry-After as a date", ans: answer{503, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, ``},
			kind: fault.Transient, status: 503, retryAfter: 90 * time.Second},
		{name: "500 with a Retry-After past the cap", ans: answer{500, map[string]string{"Retry-After": "999999"}, ``},
			kind: fault.Transient, status: 500, retryAfter: MaxRetryAfter},
		{name: "502 with a bad Retry-After", ans: answer{502, map[string]string{"Retry-After": "soon"}, ``}, kind: fault.Transient, status: 502},
		{name: "400", ans: answer{400, nil, `{"error":"bad cursor"}`}, kind: fault.Runtime, status: 400, message: "bad cursor"},
		{name: "404", ans: answer{404, nil, ``}, kind: fault.Runtime, status: 404},
		{name: "422 ignores Retry-After", ans: answer{422, map[string]string{"Retry-After": "5"}, `no`}, kind: fault.Runtime, status: 422},
		{name: "a redirect is not followed", ans: answer{302, map[string]string{"Location": "/elsewhere"}, ``}, kind: fault.Runtime, status: 302},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var got Request
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer tok" {
					http.Error(w, "bad request shape", 418)
					return
				}
				json.NewDecoder(r.Body).Decode(&got)
				for k, v := range c.ans.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.ans.status)
				io.WriteString(w, c.ans.body)
			}))
			defer srv.Close()
			b, err := NewBridge(BridgeOptions{URL: srv.URL, Token: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			b.now = func() time.Time { return now }
			req := Request{Class: "CaptureHomeFeedJob", Args: json.RawMessage(`{"account_id":3,"username":"a"}`),
				Context: map[string]string{"account_id": "3"}, Attempt: 2, JobID: 41}
			out, err := b.Call(t.Context(), req)
			if got.Class != req.Class || string(got.Args) != string(req.Args) || got.Context["account_id"] != "3" || got.Attempt != 2 || got.JobID != 41 {
				t.Errorf("the service got %+v", got)
			}
			if c.kind == "" {
				if err != nil || string(out) != c.result {
					t.Fatalf("Call = %s, %v; want %s", out, err, c.result)
				}
				return
			}
			var ce *CallError
			if !errors.As(err, &ce) {
				t.Fatalf("Call = %s, %v; want a *CallError", out, err)
			}
			if ce.Kind != c.kind || ce.FailureKind() != string(c.kind) || ce.Status != c.status || ce.RetryAfter != c.retryAfter ||
				!strings.Contains(ce.Message, c.message) || !strings.Contains(ce.Endpoint, srv.URL) {
				t.Errorf("error %+v; want kind %s, status %d, retry after %v, message %q", ce, c.kind, c.status, c.retryAfter, c.message)
			}
		})
	}
}

// TestBridgeNoAnswer: a refused connection and a service that never
// answers within the timeout are transient; the job's own cancellation is
// passed through as it is.
func TestBridgeNoAnswer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	b, _ := NewBridge(BridgeOptions{URL: closed})
	_, err = b.Call(t.Context(), Request{Class: "X"})
	var ce *CallError
	if !errors.As(err, &ce) || ce.Kind != fault.Transient || ce.Status != 0 {
		t.Fatalf("refused connection: %v", err)
	}

	// The service reads the request and then never answers: the server
	// sees the client go away (its request context ends) once the body is
	// read.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer srv.Close()
	b, _ = NewBridge(BridgeOptions{URL: srv.URL, Timeout: 50 * time.Millisecond})
	_, err = b.Call(t.Context(), Request{Class: "X"})
	if !errors.As(err, &ce) || ce.Kind != fault.Transient || !strings.Contains(ce.Message, "timed out") {
		t.Fatalf("timeout: %v", err)
	}

	b, _ = NewBridge(BridgeOptions{URL: srv.URL})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Call(ctx, Request{Class: "X"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job: %v", err)
	}
}

func TestBridgeOptions(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "ftp://x", "http://", "::", "localhost:8080"} {
		if _, err := NewBridge(BridgeOptions{URL: u}); err == nil {
			t.Errorf("NewBridge accepted URL %q", u)
		}
	}
	if _, err := NewBridge(BridgeOptions{URL: "http://127.0.0.1:1", Timeout: -1}); err == nil {
		t.Error("NewBridge accepted a negative timeout")
	}
}

func TestUnconfigured(t *testing.T) {
	t.Parallel()
	_, err := Unconfigured{}.Call(t.Context(), Request{Class: "CaptureHomeFeedJob"})
	var ce *CallError
	if !errors.As(err, &ce) || !ce.Permanent || ce.Kind != fault.Runtime || !errors.Is(err, ErrNotConfigured) ||
		!strings.Contains(err.Error(), "connector_url") || !strings.Contains(err.Error(), "CONVEYOR_CONNECTOR_URL") {
		t.Fatalf("Unconfigured: %v", err)
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "5", "-3", "99999999999999999999", "Mon, 01 Jun 2026 12:01:00 GMT", "soon", " 7 "} {
		f.Add(s)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(v, now); d < 0 || d > MaxRetryAfter {
			t.Fatalf("retryAfter(%q) = %v", v, d)
		}
	})
}

// FuzzAnswerMessage: whatever a service answers, the message kept is one
// line of valid UTF-8 of bounded size.
func FuzzAnswerMessage(f *testing.F) {
	for _, s := range []string{``, `{"error":"x"}`, `{"message":"slow"}`, "<html>\n<b>oops</b>", "\xff\xfe", strings.Repeat("é", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m := answerMessage("503 Service Unavailable", []byte(body))
		if !utf8.ValidString(m) || strings.Contains(m, "\n") || len(m) > maxMessageBytes+64 {
			t.Fatalf("answerMessage(%q) = %q", body, m)
		}
	})
}
