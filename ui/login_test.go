package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the session and limiter tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// postLogin submits the login form as a browser on this server would.
func (r *rig) postLogin(secret, next string) reply {
	r.t.Helper()
	form := url.Values{"secret": {secret}, "next": {next}}
	req, _ := http.NewRequest("POST", r.ts.URL+"/admin/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", r.origin())
	return r.do(req)
}

func sessionCookie(rp reply) *http.Cookie {
	for _, c := range (&http.Response{Header: rp.header}).Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	return nil
}

func TestLoginLogout(t *testing.T) {
	t.Parallel()
	clk := newClock()
	r := newRig(t, rigOpts{cfg: func(c *Config) { c.Now = clk.now; c.SessionTTL = time.Hour }})

	rp := r.send("GET", "/admin/jobs?state=dead", "", "")
	if rp.status != http.StatusSeeOther || rp.header.Get("Location") != "/admin/login?next=%2Fadmin%2Fjobs%3Fstate%3Ddead" {
		t.Fatalf("a visitor: %d to %q", rp.status, rp.header.Get("Location"))
	}
	if rp := r.send("GET", "/", "", ""); rp.header.Get("Location") != "/admin/login" {
		t.Errorf("/ sends a visitor to %q", rp.header.Get("Location"))
	}
	page := r.send("GET", "/admin/login?next=%2Fadmin%2Fjobs", "", "")
	if page.status != http.StatusOK || !strings.Contains(string(page.body), `name="next" value="/admin/jobs"`) {
		t.Fatalf("login page %d: %s", page.status, page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); csp != pageCSP || strings.Contains(csp, "unsafe") {
		t.Errorf("login page CSP %q", csp)
	}

	bad := r.postLogin("not-the-token-at-all", "/admin/jobs")
	if bad.status != http.StatusUnauthorized || sessionCookie(bad) != nil || !strings.Contains(string(bad.body), "is not right") {
		t.Fatalf("wrong token: %d, cookie %v", bad.status, sessionCookie(bad))
	}
	ok := r.postLogin(testToken, "/admin/jobs?state=dead")
	c := sessionCookie(ok)
	if ok.status != http.StatusSeeOther || ok.header.Get("Location") != "/admin/jobs?state=dead" || c == nil {
		t.Fatalf("login: %d to %q, cookie %v", ok.status, ok.header.Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 ||
		!c.Expires.Equal(clk.now().Add(time.Hour)) {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure on plain HTTP, expiring in an hour", c)
	}
	b := browser{cookie: c}
	home := r.as(b, "GET", "/admin/background_jobs", "", nil)
	if home.status != http.StatusOK || home.header.Get("Content-Security-Policy") != pageCSP || home.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("dashboard with the cookie: %d %v", home.status, home.header)
	}
	if rp := r.as(b, "GET", "/", "", nil); rp.header.Get("Location") != "/admin/background_jobs" {
		t.Errorf("/ sends a logged-in browser to %q", rp.header.Get("Location"))
	}
	if rp := r.as(b, "GET", "/admin/login", "", nil); rp.status != http.StatusSeeOther {
		t.Errorf("the login page for a logged-in browser: %d", rp.status)
	}
	b = r.loginAs(b)

	// Logout by the page's form: the CSRF token in a field, the Origin.
	out := r.as(b, "POST", "/admin/logout", url.Values{"csrf_token": {b.csrf}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": r.origin()})
	if out.status != http.StatusSeeOther || out.header.Get("Location") != "/admin/login" {
		t.Fatalf("logout: %d to %q", out.status, out.header.Get("Location"))
	}
	if cleared := sessionCookie(out); cleared == nil || cleared.MaxAge >= 0 {
		t.Errorf("logout does not clear the cookie: %v", cleared)
	}
	// The old cookie is refused even if a browser kept it.
	if rp := r.as(b, "GET", "/admin/background_jobs", "", nil); rp.status != http.StatusSeeOther {
		t.Errorf("a logged-out cookie: %d", rp.status)
	}
	wantError(t, r.as(b, "GET", "/api/v1/queues", "", nil), http.StatusUnauthorized, SessionCookie)

	// A new login expires after the TTL.
	b2 := r.loginAs(browser{cookie: sessionCookie(r.postLogin(testToken, ""))})
	clk.add(time.Hour - time.Second)
	if rp := r.as(b2, "GET", "/api/v1/queues", "", nil); rp.status != http.StatusOK {
		t.Errorf("a second before expiry: %d", rp.status)
	}
	clk.add(time.Second)
	wantError(t, r.as(b2, "GET", "/api/v1/queues", "", nil), http.StatusUnauthorized, SessionCookie)
}

// loginAs reads the CSRF token for the browser's session from a page.
func (r *rig) loginAs(b browser) browser {
	r.t.Helper()
	page := r.as(b, "GET", "/admin/jobs", "", nil)
	i := strings.Index(string(page.body), `<meta name="csrf-token" content="`)
	if i < 0 {
		r.t.Fatalf("no CSRF token (status %d)", page.status)
	}
	rest := string(page.body[i+len(`<meta name="csrf-token" content="`):])
	b.csrf = rest[:strings.IndexByte(rest, '"')]
	return b
}

func TestLoginForgedOrTampered(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	for _, c := range []struct {
		name   string
		origin string
		status int
	}{
		{"no origin", "", http.StatusForbidden},
		{"another site", "http://evil.example", http.StatusForbidden},
		{"null", "null", http.StatusForbidden},
	} {
		req, _ := http.NewRequest("POST", r.ts.URL+"/admin/login", strings.NewReader(url.Values{"secret": {testToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		rp := r.do(req)
		if rp.status != c.status || sessionCookie(rp) != nil {
			t.Errorf("%s: %d, cookie %v", c.name, rp.status, sessionCookie(rp))
		}
	}
	good := sessionCookie(r.postLogin(testToken, ""))
	// Another server's key signs a cookie this one refuses; a changed
	// expiry breaks the signature.
	other := newRig(t, rigOpts{})
	foreign := sessionCookie(other.postLogin(testToken, ""))
	parts := strings.Split(good.Value, ".")
	parts[1] = fmt.Sprint(time.Now().Add(1000 * time.Hour).Unix())
	for name, v := range map[string]string{
		"foreign": foreign.Value, "extended": strings.Join(parts, "."), "garbage": "v1.x.y.z", "empty": "",
		"unsigned": "v1." + strings.Split(good.Value, ".")[1] + "." + strings.Split(good.Value, ".")[2] + ".",
	} {
		rp := r.as(browser{cookie: &http.Cookie{Name: SessionCookie, Value: v}}, "GET", "/api/v1/queues", "", nil)
		if rp.status != http.StatusUnauthorized {
			t.Errorf("%s cookie: %d", name, rp.status)
		}
	}
	for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:alert(1)", "/ok\r\nX: y"} {
		if got := safeNext(next); got != "/admin/background_jobs" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}
	if got := safeNext("/admin/jobs?state=dead"); got != "/admin/jobs?state=dead" {
		t.Errorf("safeNext of a local path: %q", got)
	}
}

func TestLoginRateLimited(t *testing.T) {
	t.Parallel()
	clk := newClock()
	r := newRig(t, rigOpts{cfg: func(c *Config) { c.Now = clk.now; c.LoginBurst = 3; c.LoginInterval = time.Minute }})
	for i := range 3 {
		if rp := r.postLogin(fmt.Sprintf("wrong-guess-%02d-0123456789", i), ""); rp.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, rp.status)
		}
	}
	// Limited: even the right token is not looked at.
	rp := r.postLogin(testToken, "")
	if rp.status != http.StatusTooManyRequests || rp.header.Get("Retry-After") != "60" || sessionCookie(rp) != nil {
		t.Fatalf("after 3 failures: %d, Retry-After %q", rp.status, rp.header.Get("Retry-After"))
	}
	clk.add(time.Minute)
	if rp := r.postLogin(testToken, ""); rp.status != http.StatusSeeOther {
		t.Fatalf("a minute later: %d", rp.status)
	}
	// Successes do not spend attempts.
	for range 5 {
		if rp := r.postLogin(testToken, ""); rp.status != http.StatusSeeOther {
			t.Fatalf("repeated good logins: %d", rp.status)
		}
	}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	// Cheap costs: the parameters travel in the hash.
	hash, err := hashPassword("correct horse battery staple", 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOpts{cfg: func(c *Config) { c.PasswordHash = hash }})
	if rp := r.postLogin("correct horse battery staple", ""); rp.status != http.StatusSeeOther || sessionCookie(rp) == nil {
		t.Fatalf("password: %d", rp.status)
	}
	if rp := r.postLogin(testToken, ""); rp.status != http.StatusSeeOther {
		t.Fatalf("token beside the password: %d", rp.status)
	}
	if rp := r.postLogin("correct horse battery stapler", ""); rp.status != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d", rp.status)
	}
	if page := r.send("GET", "/admin/login", "", ""); !strings.Contains(string(page.body), "Password or API token") {
		t.Errorf("the login page does not offer the password")
	}
	full, err := HashPassword("x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(full, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("HashPassword: %q", full)
	}
	for _, bad := range []string{"", "plain", "$2a$10$abcdefghijklmnopqrstuu", "$argon2id$v=19$m=99999999,t=3,p=2$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=64,t=1,p=1$$a2V5a2V5a2V5a2V5a2V5",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5"} {
		if _, err := parsePasswordHash(bad); err == nil {
			t.Errorf("parsePasswordHash(%q) accepted", bad)
		}
		cfg := Config{Store: r.store, Registry: r.reg, Topology: r.topo, Token: testToken, AllowedHosts: []string{"a:1"}, PagesConfig: PagesConfig{PasswordHash: bad}}
		if bad != "" {
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "Config.PasswordHash") {
				t.Errorf("New with hash %q: %v", bad, err)
			}
		}
	}
}

func TestLogoutSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := SessionKeyFile(filepath.Join(dir, "session.key"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := SessionKeyFile(filepath.Join(dir, "session.key"))
	if err != nil || string(again) != string(key) {
		t.Fatalf("the key file is not kept: %v", err)
	}
	cfg := func(c *Config) { c.SessionKey = key; c.SessionRevokedFile = filepath.Join(dir, "sessions.revoked") }
	r1 := newRig(t, rigOpts{cfg: cfg})
	b := r1.loginAs(browser{cookie: sessionCookie(r1.postLogin(testToken, ""))})
	kept := r1.loginAs(browser{cookie: sessionCookie(r1.postLogin(testToken, ""))})
	r1.as(b, "POST", "/admin/logout", "", map[string]string{"Origin": r1.origin(), "X-CSRF-Token": b.csrf})

	// "Restart": a new server on the same key and revocation file (the
	// cookie is not bound to the port).
	r2 := newRig(t, rigOpts{cfg: cfg})
	if rp := r2.as(b, "GET", "/api/v1/queues", "", nil); rp.status != http.StatusUnauthorized {
		t.Errorf("a logged-out session after a restart: %d", rp.status)
	}
	if rp := r2.as(kept, "GET", "/api/v1/queues", "", nil); rp.status != http.StatusOK {
		t.Errorf("a session still logged in after a restart: %d", rp.status)
	}
}
