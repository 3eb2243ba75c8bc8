package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"conveyor/lanes"
	"conveyor/queue"
)

// samplePath fills a route's wildcards with a sample value.
func samplePath(p string) string {
	return regexp.MustCompile(`:[a-z]+`).ReplaceAllString(p, "1")
}

// publicRoutes are the only routes that answer without authentication:
// liveness, the login page and its form, and the embedded static files (the
// same in every copy of the build, no data).
var publicRoutes = []string{"GET /healthz", "GET /admin/login", "POST /admin/login", "GET /static/*file"}

// TestEveryRouteButHealthzNeedsAuth walks the real route table: every
// route but the public ones refuses a caller without credentials (an API
// route with 401, a page by sending the browser to the login page), takes
// the bearer token, takes a session cookie for reading, and refuses a
// cookie-authenticated change without its CSRF token or from another
// origin.
func TestEveryRouteButHealthzNeedsAuth(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	b := r.login()
	routes := r.srv.Routes()
	if len(routes) < 30 {
		t.Fatalf("route table has %d routes", len(routes))
	}
	for _, rt := range routes {
		path := samplePath(rt.Path)
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			if slices.Contains(publicRoutes, rt.Method+" "+rt.Path) {
				if rt.Auth {
					t.Fatalf("%s %s is public and must not need authentication", rt.Method, rt.Path)
				}
				return
			}
			if !rt.Auth {
				t.Fatalf("%s %s does not need authentication", rt.Method, rt.Path)
			}
			for _, c := range []struct {
				authz, challenge string
			}{
				{"", `Bearer realm="conveyor"`},
				{"Bearer wrong-token-0123456789", `Bearer realm="conveyor", error="invalid_token"`},
				{"Bearer " + testToken + "x", `Bearer realm="conveyor", error="invalid_token"`},
				{"Basic " + testToken, `Bearer realm="conveyor"`},
				{testToken, `Bearer realm="conveyor"`},
			} {
				rp := r.send(rt.Method, path, `{"class":"NoopJob"}`, c.authz)
				if rt.Page && rt.Method == http.MethodGet {
					if rp.status != http.StatusSeeOther || !strings.HasPrefix(rp.header.Get("Location"), "/admin/login") {
						t.Errorf("authz %q: page answers %d to %q, want 303 to the login page", c.authz, rp.status, rp.header.Get("Location"))
					}
					continue
				}
				wantError(t, rp, http.StatusUnauthorized, "Authorization")
				if got := rp.header.Get("WWW-Authenticate"); got != c.challenge {
					t.Errorf("authz %q: WWW-Authenticate %q, want %q", c.authz, got, c.challenge)
				}
			}
			denied := func(rp reply) bool {
				return rp.status == http.StatusUnauthorized || rp.status == http.StatusForbidden ||
					(rp.status == http.StatusSeeOther && strings.HasPrefix(rp.header.Get("Location"), "/admin/login"))
			}
			for _, authz := range []string{"Bearer " + testToken, "bearer " + testToken} {
				if rp := r.send(rt.Method, path, "", authz); denied(rp) && rt.Path != "/admin/logout" {
					t.Fatalf("with the token (%q): status %d, body %s", authz, rp.status, rp.body)
				}
			}
			if rt.Method == http.MethodGet {
				if rp := r.as(b, rt.Method, path, "", nil); denied(rp) {
					t.Fatalf("with the session cookie: status %d, body %s", rp.status, rp.body)
				}
				return
			}
			if rt.Path == "/admin/logout" {
				return // it would end the session the other subtests use; TestLogout covers it
			}
			for _, c := range []struct {
				name  string
				hdr   map[string]string
				field string
			}{
				{"no CSRF token", map[string]string{"Origin": r.origin()}, "X-CSRF-Token"},
				{"wrong CSRF token", map[string]string{"Origin": r.origin(), "X-CSRF-Token": "AAAA" + b.csrf[4:]}, "X-CSRF-Token"},
				{"no Origin", map[string]string{"X-CSRF-Token": b.csrf}, "Origin"},
				{"another origin", map[string]string{"Origin": "http://evil.example", "X-CSRF-Token": b.csrf}, "Origin"},
				{"cross-site fetch", map[string]string{"Origin": r.origin(), "X-CSRF-Token": b.csrf, "Sec-Fetch-Site": "cross-site"}, "Origin"},
			} {
				wantError(t, r.as(b, rt.Method, path, `{"class":"NoopJob"}`, c.hdr), http.StatusForbidden, c.field)
			}
			if rp := r.as(b, rt.Method, path, "", map[string]string{"Origin": r.origin(), "X-CSRF-Token": b.csrf}); denied(rp) {
				t.Fatalf("with the cookie, CSRF token and Origin: status %d, body %s", rp.status, rp.body)
			}
		})
	}
	t.Run("public routes are in the table", func(t *testing.T) {
		for _, p := range publicRoutes {
			if !slices.ContainsFunc(routes, func(rt Route) bool { return rt.Method+" "+rt.Path == p }) {
				t.Errorf("the table lacks %s", p)
			}
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		wantError(t, r.send("GET", "/api/v1/nothing", "", ""), http.StatusUnauthorized, "Authorization")
		wantError(t, r.call("GET", "/api/v1/nothing", ""), http.StatusNotFound, "")
		wantError(t, r.send("DELETE", "/api/v1/jobs", "", ""), http.StatusUnauthorized, "Authorization")
		rp := r.call("DELETE", "/api/v1/jobs", "")
		wantError(t, rp, http.StatusMethodNotAllowed, "")
		if rp.header.Get("Allow") == "" {
			t.Error("405 without Allow")
		}
	})
}

// TestContractRoutes checks that the table serves DESIGN.md's contract for this
// part of the API.
func TestContractRoutes(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	var have []string
	for _, rt := range r.srv.Routes() {
		have = append(have, rt.Method+" "+rt.Path)
	}
	for _, want := range []string{
		"POST /api/v1/jobs", "POST /api/v1/jobs/batch", "GET /api/v1/jobs/:id", "GET /api/v1/jobs",
		"POST /api/v1/jobs/:id/retry", "POST /api/v1/jobs/:id/discard", "GET /api/v1/queues",
		"POST /api/v1/queues/:name/pause", "POST /api/v1/queues/:name/resume", "POST /api/v1/queues/:name/clear",
		"GET /healthz", "GET /readyz", "GET /metrics",
	} {
		if !slices.Contains(have, want) {
			t.Errorf("route table lacks %s", want)
		}
	}
}

// TestBatchBesideJobID covers the way POST /api/v1/jobs/batch shares the
// :id wildcard of POST /api/v1/jobs/:id/retry.
func TestBatchBesideJobID(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	into[batchJSON](t, r.call("POST", "/api/v1/jobs/batch", `{"jobs":[{"class":"NoopJob"}]}`), http.StatusCreated)
	wantError(t, r.call("POST", "/api/v1/jobs/123", `{"class":"NoopJob"}`), http.StatusNotFound, "")
	wantError(t, r.send("POST", "/api/v1/jobs/123", `{}`, ""), http.StatusUnauthorized, "Authorization")
	wantError(t, r.call("GET", "/api/v1/jobs/batch", ""), http.StatusBadRequest, "id")
	wantError(t, r.call("POST", "/api/v1/jobs/batch/retry", ""), http.StatusBadRequest, "id")
	wantError(t, r.call("POST", "/api/v1/jobs/batch/discard", ""), http.StatusBadRequest, "id")
}

func TestWildcardSibling(t *testing.T) {
	t.Parallel()
	routes := []Route{
		{Method: "POST", Path: "/a/batch"},
		{Method: "POST", Path: "/a/:id/retry"},
		{Method: "GET", Path: "/a/batch"},
		{Method: "GET", Path: "/b/:x"},
		{Method: "GET", Path: "/b/c/d"},
	}
	for _, c := range []struct {
		rt                     Route
		pattern, param, static string
		ok                     bool
	}{
		{routes[0], "/a/:id", "id", "batch", true},
		{routes[1], "", "", "", false},
		{routes[2], "", "", "", false}, // no wildcard in GET's tree there
		{routes[4], "", "", "", false}, // static segment not last
	} {
		p, n, s, ok := wildcardSibling(c.rt, routes)
		if p != c.pattern || n != c.param || s != c.static || ok != c.ok {
			t.Errorf("%s %s: got (%q, %q, %q, %v), want (%q, %q, %q, %v)", c.rt.Method, c.rt.Path, p, n, s, ok, c.pattern, c.param, c.static, c.ok)
		}
	}
}

func TestHostCheck(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	_, port, _ := strings.Cut(r.host, ":")
	for _, c := range []struct {
		host   string
		status int
	}{
		{"127.0.0.1:" + port, http.StatusOK},
		{"localhost:" + port, http.StatusOK},
		{"LocalHost:" + port, http.StatusOK},
		{"[::1]:" + port, http.StatusOK},
		{"evil.example:" + port, http.StatusForbidden},
		{"evil.example", http.StatusForbidden},
		{"127.0.0.1", http.StatusForbidden},
		{"127.0.0.1:1", http.StatusForbidden},
		{"localhost.:" + port, http.StatusForbidden},
	} {
		for _, path := range []string{"/healthz", "/api/v1/queues", "/metrics"} {
			for _, authz := range []string{"Bearer " + testToken, ""} {
				req, _ := http.NewRequest("GET", r.ts.URL+path, nil)
				req.Host = c.host
				if authz != "" {
					req.Header.Set("Authorization", authz)
				}
				rp := r.do(req)
				want := c.status
				if want == http.StatusOK && authz == "" && path != "/healthz" {
					want = http.StatusUnauthorized // the Host passed; auth comes next
				}
				if rp.status != want {
					t.Errorf("Host %q %s authz=%v: status %d, want %d", c.host, path, authz != "", rp.status, want)
				}
				if want == http.StatusForbidden {
					wantError(t, rp, http.StatusForbidden, "Host")
				}
			}
		}
	}
}

func TestHostsFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		addr string
		want []string
	}{
		{"127.0.0.1:7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"localhost:7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"[::1]:7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"127.0.0.2:9", []string{"127.0.0.1:9", "localhost:9", "[::1]:9", "127.0.0.2:9"}},
		{":7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"0.0.0.0:7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"[::]:7420", []string{"127.0.0.1:7420", "localhost:7420", "[::1]:7420"}},
		{"192.168.1.5:7420", []string{"192.168.1.5:7420"}},
		{"Box.LAN:7420", []string{"box.lan:7420"}},
		{"127.0.0.1:80", []string{"127.0.0.1:80", "127.0.0.1", "localhost:80", "localhost", "[::1]:80", "[::1]"}},
		{"127.0.0.1", nil},
		{"", nil},
		{"127.0.0.1:", nil},
	} {
		if got := HostsFor(c.addr); !slices.Equal(got, c.want) {
			t.Errorf("HostsFor(%q) = %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	good := func() Config {
		return Config{Store: r.store, Registry: r.reg, Topology: r.topo, Token: testToken, AllowedHosts: []string{"localhost:1"}}
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, c := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Store", func(c *Config) { c.Store = nil }},
		{"Registry", func(c *Config) { c.Registry = nil }},
		{"Token", func(c *Config) { c.Token = "" }},
		{"Token", func(c *Config) { c.Token = "short" }},
		{"Token", func(c *Config) { c.Token = "has a space in the token" }},
		{"AllowedHosts", func(c *Config) { c.AllowedHosts = nil }},
		{"AllowedHosts[1]", func(c *Config) { c.AllowedHosts = []string{"a:1", "http://b/"} }},
		{"MaxBodyBytes", func(c *Config) { c.MaxBodyBytes = -1 }},
		{"MaxBatchBytes", func(c *Config) { c.MaxBatchBytes = -1 }},
		{"ReadyTimeout", func(c *Config) { c.ReadyTimeout = -1 }},
		{"Registerer", func(c *Config) { c.Registerer = prometheus.NewRegistry() }},
		{"Topology", func(c *Config) { c.Topology = lanes.Topology{} }},
	} {
		cfg := good()
		c.edit(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+c.field+" ") {
			t.Errorf("%s: error %v does not name the field", c.field, err)
		}
	}
	// A shared registry holds one server's collector only.
	reg := prometheus.NewRegistry()
	cfg := good()
	cfg.Registerer, cfg.Gatherer = reg, reg
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Config.Registerer") {
		t.Errorf("second registration: %v", err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	for _, c := range []struct {
		method, path, authz string
		json                bool
	}{
		{"GET", "/healthz", "", true},
		{"GET", "/api/v1/queues", "Bearer " + testToken, true},
		{"GET", "/api/v1/queues", "", true},
		{"GET", "/api/v1/jobs/999", "Bearer " + testToken, true},
		{"GET", "/readyz", "Bearer " + testToken, true},
		{"GET", "/metrics", "Bearer " + testToken, false},
	} {
		rp := r.send(c.method, c.path, "", c.authz)
		h := rp.header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" ||
			h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s %s: security headers missing: %v", c.method, c.path, h)
		}
		if c.json && h.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, h.Get("Content-Type"))
		}
	}
}

// TestErrorTable feeds each row of the error table a representative error.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	wrapped := func(e error) error { return fmt.Errorf("context: %w", e) }
	for _, c := range []struct {
		err    error
		status int
		field  string
	}{
		{malformed("class", "want a string"), 400, "class"},
		{queue.ErrBadCursor, 400, "cursor"},
		{&fieldError{kind: errUnauthenticated, Field: "Authorization", Msg: "x"}, 401, "Authorization"},
		{&fieldError{kind: errHost, Field: "Host", Msg: "x"}, 403, "Host"},
		{&fieldError{kind: errNoRoute, Field: "name", Msg: "x"}, 404, "name"},
		{wrapped(queue.ErrNotFound), 404, "id"},
		{&fieldError{kind: errMethod, Msg: "x"}, 405, ""},
		{&fieldError{kind: errBodyTimeout, Msg: "x"}, 408, ""},
		{queue.ErrRunning, 409, "id"},
		{fmt.Errorf("%w: job 3 is done", queue.ErrWrongState), 409, "id"},
		{&http.MaxBytesError{Limit: 10}, 413, ""},
		{invalid("state", "is required"), 422, "state"},
		{&queue.ValidationError{Field: "unique_key", Reason: "too long"}, 422, "unique_key"},
		{prefixed(&queue.ValidationError{Index: 3, Field: "args", Reason: "too big"}, "jobs[3]"), 422, "jobs[3].args"},
		{&fieldError{kind: errUnavailable, Msg: "x"}, 503, ""},
		{wrapped(queue.ErrClosed), 503, ""},
		{errors.New("disk on fire at /secret/path"), 500, ""},
	} {
		status, field, msg := classify(c.err)
		if status != c.status || field != c.field || msg == "" {
			t.Errorf("%v: got (%d, %q, %q), want (%d, %q)", c.err, status, field, msg, c.status, c.field)
		}
		if status == 500 && strings.Contains(msg, "secret") {
			t.Errorf("500 leaks its detail: %q", msg)
		}
	}
}

// TestInternalErrorIsLoggedNotSent makes a handler panic: the client gets a
// generic 500, the log gets the detail.
func TestInternalErrorIsLoggedNotSent(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	r := newRig(t, rigOpts{cfg: func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Ready = func(context.Context) []Check { panic("readiness probe exploded: secret detail") }
	}})
	rp := r.call("GET", "/readyz", "")
	e := wantError(t, rp, http.StatusInternalServerError, "")
	if strings.Contains(string(rp.body), "secret") || strings.Contains(e.Error, "exploded") {
		t.Errorf("500 body leaks the detail: %s", rp.body)
	}
	if !strings.Contains(logs.String(), "secret detail") {
		t.Errorf("the detail was not logged: %q", logs.String())
	}
}
