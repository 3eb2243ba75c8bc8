package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"conveyor/lanes"
	"conveyor/queue"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	rp := r.send("GET", "/healthz", "", "")
	if rp.status != http.StatusOK || strings.TrimSpace(string(rp.body)) != `{"status":"ok"}` {
		t.Errorf("healthz %d %s", rp.status, rp.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		checks []Check
		status int
	}{
		{"built-in only", nil, http.StatusOK},
		{"app checks pass", []Check{{Name: "supervisor", OK: true, Detail: "running"}, {Name: "local_ai", OK: true, Detail: "healthy"}}, http.StatusOK},
		{"one app check fails", []Check{{Name: "supervisor", OK: true}, {Name: "local_ai", OK: false, Detail: "connection refused"}}, http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOpts{cfg: func(cfg *Config) {
				if c.checks != nil {
					cfg.Ready = func(ctx context.Context) []Check {
						if _, ok := ctx.Deadline(); !ok {
							t.Error("readiness checks get no deadline")
						}
						return c.checks
					}
				}
			}})
			got := into[readyJSON](t, r.call("GET", "/readyz", ""), c.status)
			want := append([]Check{{Name: "web", OK: true, Detail: "answering"}, {Name: "queue", OK: true, Detail: "store open"}}, c.checks...)
			if got.Ready != (c.status == http.StatusOK) || len(got.Checks) != len(want) {
				t.Fatalf("readyz %+v", got)
			}
			for i := range want {
				if got.Checks[i] != want[i] {
					t.Errorf("check %d: %+v, want %+v", i, got.Checks[i], want[i])
				}
			}
		})
	}
}

// TestClosedStore: readiness fails and API calls get 503 once the store is
// closed (shutdown).
func TestClosedStore(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{noCheck: true})
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	got := into[readyJSON](t, r.call("GET", "/readyz", ""), http.StatusServiceUnavailable)
	if got.Ready || got.Checks[1] != (Check{Name: "queue", Detail: "store closed"}) {
		t.Errorf("readyz %+v", got)
	}
	wantError(t, r.call("POST", "/api/v1/jobs", `{"class":"NoopJob"}`), http.StatusServiceUnavailable, "")
	if rp := r.send("GET", "/healthz", "", ""); rp.status != http.StatusOK {
		t.Errorf("healthz %d", rp.status)
	}
}

// TestServerWithoutRig builds a server by hand the way `serve` would: listen
// first, then derive the allowed hosts from the listener's address.
func TestServerWithoutRig(t *testing.T) {
	t.Parallel()
	st, err := queue.Open(filepath.Join(t.TempDir(), "q.bolt"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	srv, err := New(Config{Store: st, Registry: reg, Topology: lanes.DefaultTopology(), Token: testToken,
		AllowedHosts: HostsFor(ts.Listener.Addr().String())})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}
