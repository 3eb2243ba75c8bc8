package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/queue"
)

const testToken = "test-token-0123456789abcdef"

// rigOpts shape a test server.
type rigOpts struct {
	pool    bool          // run the lanes against the store
	store   queue.Options // options of the store (Logger is set)
	cfg     func(*Config) // changes to the server's config
	classes []lanes.Class // registered besides the builtins
	noCheck bool          // the test closes the store itself
	topo    func(lanes.Topology) lanes.Topology
}

// rig is a real server on 127.0.0.1 in front of a real store in a temp dir.
type rig struct {
	t     testing.TB
	store *queue.Store
	reg   *lanes.Registry
	topo  lanes.Topology
	pool  *lanes.Pool
	srv   *Server
	ts    *httptest.Server
	host  string // host:port of the listener
}

func newRig(t testing.TB, o rigOpts) *rig {
	t.Helper()
	o.store.Logger = testlog.New(t)
	st, err := queue.Open(filepath.Join(t.TempDir(), "queue.bolt"), o.store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !o.noCheck {
			if err := st.Check(); err != nil {
				t.Errorf("store check: %v", err)
			}
		}
		st.Close()
	})
	r := &rig{t: t, store: st, reg: lanes.NewRegistry(), topo: lanes.DefaultTopology()}
	if o.topo != nil {
		r.topo = o.topo(r.topo)
	}
	if err := lanes.RegisterBuiltins(r.reg); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.classes {
		if err := r.reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	if o.pool {
		p, err := lanes.New(st, r.reg, r.topo, lanes.Options{Logger: testlog.New(t), ShutdownTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		r.pool = p
		// Registered after the store's cleanup, so it runs first.
		t.Cleanup(func() {
			if err := p.Stop(context.Background()); err != nil {
				t.Errorf("pool stop: %v", err)
			}
		})
	}
	r.ts = httptest.NewUnstartedServer(nil)
	r.host = r.ts.Listener.Addr().String()
	cfg := Config{
		Store: st, Registry: r.reg, Topology: r.topo, Pool: r.pool, Token: testToken,
		AllowedHosts: HostsFor(r.host), Logger: testlog.New(t),
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	r.ts.Config.Handler = srv
	r.ts.Start()
	t.Cleanup(r.ts.Close)
	// Redirects are answers to check, not to follow.
	r.ts.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return r
}

// browser is a logged-in browser session: its cookie and CSRF token.
type browser struct {
	cookie *http.Cookie
	csrf   string
}

// origin is the rig's own origin, as a browser sends it.
func (r *rig) origin() string { return "http://" + r.host }

// login logs in with the token through the login form, as a browser does,
// and reads the CSRF token from a page.
func (r *rig) login() browser {
	r.t.Helper()
	req, _ := http.NewRequest("POST", r.ts.URL+"/admin/login", strings.NewReader(url.Values{"secret": {testToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", r.origin())
	rp := r.do(req)
	if rp.status != http.StatusSeeOther {
		r.t.Fatalf("login: status %d, body %s", rp.status, rp.body)
	}
	var b browser
	for _, c := range (&http.Response{Header: rp.header}).Cookies() {
		if c.Name == SessionCookie {
			b.cookie = c
		}
	}
	if b.cookie == nil {
		r.t.Fatalf("login set no session cookie: %v", rp.header)
	}
	page := r.as(b, "GET", "/admin/background_jobs", "", nil)
	m := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`).FindSubmatch(page.body)
	if m == nil {
		r.t.Fatalf("no CSRF token on the page (status %d)", page.status)
	}
	b.csrf = string(m[1])
	return b
}

// as performs a request as the browser b, with extra headers.
func (r *rig) as(b browser, method, path, body string, hdr map[string]string) reply {
	r.t.Helper()
	req, err := http.NewRequest(method, r.ts.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.AddCookie(b.cookie)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return r.do(req)
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// errBody decodes the body as the API's error JSON.
func (rp reply) err(t testing.TB) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal(rp.body, &e); err != nil {
		t.Fatalf("error body %q: %v", rp.body, err)
	}
	return e
}

// send performs a request with the given Authorization header value (none
// when empty).
func (r *rig) send(method, path, body, authz string) reply {
	r.t.Helper()
	req, err := http.NewRequest(method, r.ts.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return r.do(req)
}

func (r *rig) do(req *http.Request) reply {
	r.t.Helper()
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// call performs an authenticated request.
func (r *rig) call(method, path, body string) reply {
	r.t.Helper()
	return r.send(method, path, body, "Bearer "+testToken)
}

// into decodes a 2xx reply's body into T, failing on any other status.
func into[T any](t testing.TB, rp reply, want int) T {
	t.Helper()
	if rp.status != want {
		t.Fatalf("status %d, want %d; body %s", rp.status, want, rp.body)
	}
	var v T
	if err := json.Unmarshal(rp.body, &v); err != nil {
		t.Fatalf("body %q: %v", rp.body, err)
	}
	return v
}

// wantError checks an error reply's status and field.
func wantError(t testing.TB, rp reply, status int, field string) errorJSON {
	t.Helper()
	if rp.status != status {
		t.Fatalf("status %d, want %d; body %s", rp.status, status, rp.body)
	}
	e := rp.err(t)
	if e.Field != field {
		t.Fatalf("field %q, want %q; body %s", e.Field, field, rp.body)
	}
	if e.Error == "" || !bytes.Contains(rp.body, []byte(`"field":`)) {
		t.Fatalf("error without a message or a field key; body %s", rp.body)
	}
	return e
}

// counts returns the store's per-state counts, for "nothing was written".
func (r *rig) counts() map[queue.State]int64 { return r.store.Counts() }

// enqueue adds a job through the API and returns its id.
func (r *rig) enqueue(body string) uint64 {
	r.t.Helper()
	return into[enqueuedJSON](r.t, r.call("POST", "/api/v1/jobs", body), http.StatusCreated).ID
}

// waitFor waits, on the store's change notifications, until the job satisfies
// cond. It is bounded by the test's deadline.
func (r *rig) waitFor(id uint64, what string, cond func(*queue.Job) bool) *queue.Job {
	r.t.Helper()
	sub := r.store.Subscribe()
	defer sub.Close()
	ctx := context.Background()
	if dl, ok := r.t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dl.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
			defer cancel()
		}
	}
	for {
		j, err := r.store.Get(id)
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(j) {
			return j
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			r.t.Fatalf("job %d never became %s; it is %+v", id, what, j)
		}
	}
}

func (r *rig) waitState(id uint64, st queue.State) *queue.Job {
	r.t.Helper()
	return r.waitFor(id, st.String(), func(j *queue.Job) bool { return j.State == st })
}

// syncBuffer is a log sink tests read after the fact.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openTestDB opens a real SQLite database in a temp dir, checked and
// closed at cleanup.
func openTestDB(t *testing.T) *data.DB {
	t.Helper()
	db, err := data.Open(t.Context(), filepath.Join(t.TempDir(), "conveyor.db"), data.Options{ReadConns: 4, Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.IntegrityCheck(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("integrity: %v", err)
		}
		db.Close()
	})
	return db
}
