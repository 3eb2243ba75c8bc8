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

	"conveyor/ops/fault"
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
		want fault.Kind
	}{
		{"nil", nil, ""},
		{"plain error", boom, fault.Runtime},
		{"wrapped plain error", fmt.Errorf("perform: %w", boom), fault.Runtime},

		// 1. typed errors win over everything below them.
		{"fault.Error value", fault.Error{Kind: fault.Transient, Err: boom}, fault.Transient},
		{"fault.Error pointer", &fault.Error{Kind: fault.Authentication, Err: boom}, fault.Authentication},
		{"typed beats status", fault.Error{Kind: fault.Runtime, Err: statusErr(503)}, fault.Runtime},
		{"typed beats deadline", fault.Error{Kind: fault.Authentication, Err: context.DeadlineExceeded}, fault.Authentication},
		{"status wrapping typed: typed still wins", fmt.Errorf("x: %w", kindErr{"transient", statusErr(401)}), fault.Transient},
		{"typed deep in chain", fmt.Errorf("a: %w", fmt.Errorf("b: %w", kindErr{"authentication", nil})), fault.Authentication},
		{"typed kind case-insensitive", kindErr{" Transient ", boom}, fault.Transient},
		{"typed unknown kind is ignored", kindErr{"fatal", statusErr(429)}, fault.Transient},
		{"typed empty kind is ignored", kindErr{"", boom}, fault.Runtime},
		{"outermost typed wins", fault.Error{Kind: fault.Runtime, Err: fault.Error{Kind: fault.Transient}}, fault.Runtime},
		{"typed inside join", errors.Join(boom, fault.Error{Kind: fault.Transient}), fault.Transient},

		// 2. HTTP status.
		{"401", statusErr(401), fault.Authentication},
		{"403 wrapped", fmt.Errorf("instagram: %w", statusErr(403)), fault.Authentication},
		{"408", statusErr(408), fault.Transient},
		{"425", statusErr(425), fault.Transient},
		{"429", statusErr(429), fault.Transient},
		{"500", statusErr(500), fault.Transient},
		{"503", statusErr(503), fault.Transient},
		{"599", statusErr(599), fault.Transient},
		{"400", statusErr(400), fault.Runtime},
		{"404", statusErr(404), fault.Runtime},
		{"422", statusErr(422), fault.Runtime},
		{"404 wrapping a timeout falls through", fmt.Errorf("%w: %w", statusErr(404), context.DeadlineExceeded), fault.Transient},
		{"status beats sentinel", fmt.Errorf("%w: %w", statusErr(503), fault.ErrAuthentication), fault.Transient},
		{"status beats deadline", fmt.Errorf("%w: %w", statusErr(401), context.DeadlineExceeded), fault.Authentication},
		{"status inside join", errors.Join(boom, statusErr(429)), fault.Transient},

		// 3. sentinel.
		{"fault.ErrAuthentication", fault.ErrAuthentication, fault.Authentication},
		{"fault.ErrAuthentication wrapped", fmt.Errorf("session expired: %w", fault.ErrAuthentication), fault.Authentication},
		{"sentinel beats timeout", errors.Join(context.DeadlineExceeded, fault.ErrAuthentication), fault.Authentication},

		// 4. timeouts and connection errors.
		{"deadline exceeded", context.DeadlineExceeded, fault.Transient},
		{"deadline exceeded wrapped", fmt.Errorf("fetch: %w", context.DeadlineExceeded), fault.Transient},
		{"os deadline", os.ErrDeadlineExceeded, fault.Transient},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, fault.Transient},
		{"ECONNREFUSED", dialRefused, fault.Transient},
		{"ECONNREFUSED read op", &net.OpError{Op: "read", Err: syscall.ECONNREFUSED}, fault.Transient},
		{"ECONNRESET", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, fault.Transient},
		{"EPIPE", fmt.Errorf("write body: %w", syscall.EPIPE), fault.Transient},
		{"ECONNABORTED", syscall.ECONNABORTED, fault.Transient},
		{"EHOSTUNREACH", syscall.EHOSTUNREACH, fault.Transient},
		{"ENETUNREACH", syscall.ENETUNREACH, fault.Transient},
		{"ETIMEDOUT", syscall.ETIMEDOUT, fault.Transient},
		{"dial error of any cause", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("socket: too many open files")}, fault.Transient},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), fault.Transient},
		{"url error EOF", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, fault.Transient},
		{"plain EOF is not transient", io.EOF, fault.Runtime},
		{"DNS temporary", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, fault.Transient},
		{"DNS timeout", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, fault.Transient},
		{"DNS not found", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, fault.Runtime},
		{"dial DNS not found", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}}, fault.Runtime},
		{"dial DNS temporary", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}}, fault.Transient},

		// 5. interruption.
		{"canceled", context.Canceled, fault.Transient},
		{"canceled wrapped", fmt.Errorf("perform: %w", context.Canceled), fault.Transient},
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
		if got := Classify(err); got != fault.Transient {
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
		if got := Classify(err); got != fault.Transient {
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
		if got := Classify(err); got != fault.Transient {
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
		if got := Classify(err); got != fault.Transient {
			t.Errorf("Classify(%v) = %q, want transient", err, got)
		}
	})
}
