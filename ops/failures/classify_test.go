package failures

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

// statusErr stands in for the errors the outside-service connectors return.
type statusErr int

func (e statusErr) Error() string   { return fmt.Sprintf("HTTP %d", int(e)) }
func (e statusErr) StatusCode() int { return int(e) }

// kindErr stands in for a handler's own typed error (or the lanes' FailJob).
type kindErr struct {
	kind string
	err  error
}

func (e kindErr) Error() string       { return "typed: " + e.kind }
func (e kindErr) FailureKind() string { return e.kind }
func (e kindErr) Unwrap() error       { return e.err }

func TestClassify(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, ""},
		{"plain error", boom, KindRuntime},
		{"wrapped plain error", fmt.Errorf("perform: %w", boom), KindRuntime},

		// 1. typed errors win over everything below them.
		{"ops.Error value", Error{Kind: KindTransient, Err: boom}, KindTransient},
		{"ops.Error pointer", &Error{Kind: KindAuthentication, Err: boom}, KindAuthentication},
		{"typed beats status", Error{Kind: KindRuntime, Err: statusErr(503)}, KindRuntime},
		{"typed beats deadline", Error{Kind: KindAuthentication, Err: context.DeadlineExceeded}, KindAuthentication},
		{"status wrapping typed: typed still wins", fmt.Errorf("x: %w", kindErr{"transient", statusErr(401)}), KindTransient},
		{"typed deep in chain", fmt.Errorf("a: %w", fmt.Errorf("b: %w", kindErr{"authentication", nil})), KindAuthentication},
		{"typed kind case-insensitive", kindErr{" Transient ", boom}, KindTransient},
		{"typed unknown kind is ignored", kindErr{"fatal", statusErr(429)}, KindTransient},
		{"typed empty kind is ignored", kindErr{"", boom}, KindRuntime},
		{"outermost typed wins", Error{Kind: KindRuntime, Err: Error{Kind: KindTransient}}, KindRuntime},
		{"typed inside join", errors.Join(boom, Error{Kind: KindTransient}), KindTransient},

		// 2. HTTP status.
		{"401", statusErr(401), KindAuthentication},
		{"403 wrapped", fmt.Errorf("instagram: %w", statusErr(403)), KindAuthentication},
		{"408", statusErr(408), KindTransient},
		{"425", statusErr(425), KindTransient},
		{"429", statusErr(429), KindTransient},
		{"500", statusErr(500), KindTransient},
		{"503", statusErr(503), KindTransient},
		{"599", statusErr(599), KindTransient},
		{"400", statusErr(400), KindRuntime},
		{"404", statusErr(404), KindRuntime},
		{"422", statusErr(422), KindRuntime},
		{"404 wrapping a timeout falls through", fmt.Errorf("%w: %w", statusErr(404), context.DeadlineExceeded), KindTransient},
		{"status beats sentinel", fmt.Errorf("%w: %w", statusErr(503), ErrAuthentication), KindTransient},
		{"status beats deadline", fmt.Errorf("%w: %w", statusErr(401), context.DeadlineExceeded), KindAuthentication},
		{"status inside join", errors.Join(boom, statusErr(429)), KindTransient},

		// 3. sentinel.
		{"ErrAuthentication", ErrAuthentication, KindAuthentication},
		{"ErrAuthentication wrapped", fmt.Errorf("session expired: %w", ErrAuthentication), KindAuthentication},
		{"sentinel beats timeout", errors.Join(context.DeadlineExceeded, ErrAuthentication), KindAuthentication},

		// 4. timeouts and connection errors.
		{"deadline exceeded", context.DeadlineExceeded, KindTransient},
		{"deadline exceeded wrapped", fmt.Errorf("fetch: %w", context.DeadlineExceeded), KindTransient},
		{"os deadline", os.ErrDeadlineExceeded, KindTransient},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, KindTransient},
		{"ECONNREFUSED", dialRefused, KindTransient},
		{"ECONNREFUSED read op", &net.OpError{Op: "read", Err: syscall.ECONNREFUSED}, KindTransient},
		{"ECONNRESET", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, KindTransient},
		{"EPIPE", fmt.Errorf("write body: %w", syscall.EPIPE), KindTransient},
		{"ECONNABORTED", syscall.ECONNABORTED, KindTransient},
		{"EHOSTUNREACH", syscall.EHOSTUNREACH, KindTransient},
		{"ENETUNREACH", syscall.ENETUNREACH, KindTransient},
		{"ETIMEDOUT", syscall.ETIMEDOUT, KindTransient},
		{"dial error of any cause", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("socket: too many open files")}, KindTransient},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), KindTransient},
		{"url error EOF", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, KindTransient},
		{"plain EOF is not transient", io.EOF, KindRuntime},
		{"DNS temporary", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, KindTransient},
		{"DNS timeout", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, KindTransient},
		{"DNS not found", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, KindRuntime},
		{"dial DNS not found", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}}, KindRuntime},
		{"dial DNS temporary", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}}, KindTransient},

		// 5. interruption.
		{"canceled", context.Canceled, KindTransient},
		{"canceled wrapped", fmt.Errorf("perform: %w", context.Canceled), KindTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestClassifyRealNetworkErrors classifies the errors Go's own net/http
// returns, not hand-built ones.
func TestClassifyRealNetworkErrors(t *testing.T) {
	t.Parallel()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = http.Get("http://" + addr + "/")
		if err == nil {
			t.Fatal("want an error from a closed port")
		}
		if got := Classify(err); got != KindTransient {
			t.Errorf("Classify(%v) = %q, want transient", err, got)
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		_, err := srv.Client().Do(req)
		if err == nil {
			t.Fatal("want a timeout")
		}
		if got := Classify(err); got != KindTransient {
			t.Errorf("Classify(%v) = %q, want transient", err, got)
		}
	})

	t.Run("body cut short", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprint(buf, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a little")
			buf.Flush()
		}))
		t.Cleanup(srv.Close)
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		if err == nil {
			t.Fatal("want an error reading a short body")
		}
		if got := Classify(err); got != KindTransient {
			t.Errorf("Classify(%v) = %q, want transient", err, got)
		}
	})

	t.Run("server closes before answering", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				// Read the request line, then hang up without a reply.
				bufio.NewReader(conn).ReadString('\n')
				conn.Close()
			}
		}()
		_, err = http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			t.Fatal("want an error")
		}
		if got := Classify(err); got != KindTransient {
			t.Errorf("Classify(%v) = %q, want transient", err, got)
		}
	})
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]bool{KindAuthentication: false, KindTransient: true, KindRuntime: true} {
		if got := Retryable(k); got != want {
			t.Errorf("Retryable(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"authentication", "transient", "runtime", " RUNTIME "} {
		if _, err := ParseKind(s); err != nil {
			t.Errorf("ParseKind(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "auth", "fatal"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v, want ErrUnknownKind", s, err)
		}
	}
}

func TestErrorMessageAndUnwrap(t *testing.T) {
	t.Parallel()
	inner := errors.New("token expired")
	e := Error{Kind: KindAuthentication, Err: inner}
	if e.Error() != "token expired" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !errors.Is(e, inner) {
		t.Error("errors.Is does not see the wrapped error")
	}
	if got := (Error{Kind: KindTransient}).Error(); got != "transient" {
		t.Errorf("Error() without Err = %q", got)
	}
}
