package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"conveyor/data"
	"conveyor/ops/events"
	"conveyor/queue"
)

// The browser tests drive Debian's chromium (one browser for the package,
// a tab per test) against the real app built in this process on real
// storage in a temp dir. They never skip: without chromium they fail and
// say how to install it.

// chromiumPaths are where Debian and others put the browser;
// CONVEYOR_CHROMIUM names another.
var chromiumPaths = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}

var browser struct {
	// use gives one test at a time the browser: a page in a window of a
	// headless browser that another test's window hides gets no frames,
	// and waits in it never end.
	use     sync.Mutex
	once    sync.Once
	ctx     context.Context
	cancel  func()
	dataDir string
	err     error
}

// closeBrowser ends the shared browser (TestMain calls it after the tests).
func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.dataDir != "" {
		os.RemoveAll(browser.dataDir)
	}
}

func chromiumPath() (string, error) {
	if p := os.Getenv("CONVEYOR_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, p := range chromiumPaths {
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed: the browser tests need it (apt-get install -y chromium; .ci/run installs it), " +
		"or set CONVEYOR_CHROMIUM to a Chrome or Chromium binary")
}

// stuckAfter bounds one browser test's tab: not a speed target (the tests
// take seconds), a bound on how long a stuck page may hold the suite.
const stuckAfter = 3 * time.Minute

// newTab opens a tab of the shared browser for the test, with the test's
// deadline; it fails the test when the browser cannot start.
func newTab(t *testing.T) context.Context {
	t.Helper()
	browser.once.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browser.err = err
			return
		}
		if browser.dataDir, err = os.MkdirTemp("", "conveyor-chromium-"); err != nil {
			browser.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.UserDataDir(browser.dataDir), chromedp.DisableGPU, chromedp.Headless,
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
			chromedp.WindowSize(1400, 1000))
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox)
		}
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(alloc)
		browser.ctx, browser.cancel = ctx, func() { cancel(); cancelAlloc() }
		browser.err = chromedp.Do(ctx) // starts the browser
	})
	if browser.err != nil {
		t.Fatalf("browser: %v", browser.err)
	}
	browser.use.Lock()
	t.Cleanup(browser.use.Unlock)
	tab, cancel := chromedp.NewContext(browser.ctx)
	t.Cleanup(cancel)
	// A page shows each change within a second; a tab still waiting after
	// stuckAfter is stuck, and failing then (with its screenshot) beats
	// running the package out of time, which skips every cleanup.
	dl := time.Now().Add(stuckAfter)
	if td, ok := t.Deadline(); ok && td.Add(-10*time.Second).Before(dl) {
		dl = td.Add(-10 * time.Second)
	}
	tab, c2 := context.WithDeadline(tab, dl)
	t.Cleanup(c2)
	return tab
}

// liveApp is the real app in this process, serving on a loopback port.
type liveApp struct {
	t    *testing.T
	a    *app
	base string

	mu   sync.Mutex
	seen []string // the request URIs the server got
}

// requests returns the request URIs the server got that contain part.
func (l *liveApp) requests(part string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, u := range l.seen {
		if strings.Contains(u, part) {
			out = append(out, u)
		}
	}
	return out
}

func startLiveApp(t *testing.T, env ...string) *liveApp {
	t.Helper()
	return startLiveAppWith(t, failpoints{}, []string{"--replica", "off"}, env...)
}

// startLiveAppWith is startLiveApp with the app's test hooks and more serve
// flags.
func startLiveAppWith(t *testing.T, fp failpoints, args []string, env ...string) *liveApp {
	t.Helper()
	getenv := envFunc(append([]string{"CONVEYOR_TOKEN=" + testToken}, env...)...)
	st, err := serveSettings(append([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0"}, args...), getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	st.ShutdownTimeout = time.Second
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := withFailpoints(context.WithoutCancel(t.Context()), fp)
	a, err := newApp(ctx, st, log, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	l := &liveApp{t: t, a: a, base: "http://" + a.addr()}
	next := a.http.Handler
	a.http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.URL.RequestURI())
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
	if err := a.start(ctx); err != nil {
		a.stop(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return l
}

// api calls the API with the token; out, when not nil, receives the JSON.
func (l *liveApp) api(method, path string, body, out any) int {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, l.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			l.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (l *liveApp) enqueue(body map[string]any) uint64 {
	l.t.Helper()
	var out struct{ ID uint64 }
	if st := l.api("POST", "/api/v1/jobs", body, &out); st != http.StatusCreated {
		l.t.Fatalf("enqueue %v: %d", body, st)
	}
	return out.ID
}

// waitJob waits on the store until the job satisfies cond.
func (l *liveApp) waitJob(id uint64, cond func(*queue.Job) bool) {
	l.t.Helper()
	sub := l.a.store.Subscribe()
	defer sub.Close()
	ctx := deadline(l.t)
	for {
		if j, err := l.a.store.Get(id); err == nil && cond(j) {
			return
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			j, _ := l.a.store.Get(id)
			l.t.Fatalf("job %d never got there: %+v", id, j)
		}
	}
}

// page is a tab on the app with its console and dialogs watched.
type page struct {
	t    *testing.T
	ctx  context.Context
	app  *liveApp
	mu   sync.Mutex
	msgs []string // console errors, exceptions and CSP reports
}

// openPage opens a tab, watches its console from the start, and logs in
// through the login form.
func openPage(t *testing.T, l *liveApp) *page {
	t.Helper()
	p := newPage(t, l)
	p.login(testToken)
	p.do(chromedp.WaitVisible(chromedp.CSS("header.top")))
	return p
}

// login fills and sends the login form.
func (p *page) login(secret string) {
	p.t.Helper()
	p.do(chromedp.Navigate(p.app.base+"/admin/login"), chromedp.SendKeys(chromedp.ID("secret"), secret), chromedp.Click(chromedp.ID("login")))
}

// newPage opens a tab of the shared browser with its console and dialogs
// watched.
func newPage(t *testing.T, l *liveApp) *page {
	t.Helper()
	p := &page{t: t, ctx: newTab(t), app: l}
	msgs := chromedp.Console(p.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			bad := m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException ||
				strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy")
			if bad {
				p.mu.Lock()
				p.msgs = append(p.msgs, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
				p.mu.Unlock()
			}
		}
	}()
	// A native dialog would block the page; the pages use <dialog>, so any
	// alert is a finding.
	dialogs := chromedp.Events(p.ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.msgs = append(p.msgs, "a JavaScript dialog opened: "+ev.Message)
			p.mu.Unlock()
			chromedp.Call(p.ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failed")
		}
	})
	return p
}

// screenshot saves the tab to the test's temp dir.
func (p *page) screenshot(name string) {
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot: %v", err)
		return
	}
	path := filepath.Join(p.t.TempDir(), name+".png")
	if dir := os.Getenv("CONVEYOR_SCREENSHOTS"); dir != "" {
		path = filepath.Join(dir, strings.ReplaceAll(p.t.Name(), "/", "_")+"-"+name+".png")
	}
	if err := os.WriteFile(path, buf, 0o644); err == nil {
		p.t.Logf("screenshot: %s", path)
	}
}

func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// evalAwait evaluates an expression that gives a promise, and its result.
func evalAwait[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits, in the page, for expr to become true; a navigation ends it
// with an error, so what it sees came without a reload.
func (p *page) until(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(0),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		p.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// click clicks the element sel selects, in the page in one step: live
// updates swap panels in at any time, so a node looked up first may be gone
// by the time a separate click reaches it.
func (p *page) click(sel string) {
	p.t.Helper()
	if !eval[bool](p, fmt.Sprintf(`(function(){const e=document.querySelector(%q);if(!e)return false;e.click();return true;})()`, sel)) {
		p.t.Fatalf("nothing to click at %s", sel)
	}
}

// markPage marks the document, so that stillSamePage can tell a reload.
func (p *page) markPage() { eval[bool](p, `window.__same_page = true`) }

// openLive opens path, waits for its live stream and marks the page, for
// stillSamePage.
func (p *page) openLive(path string) {
	p.t.Helper()
	p.do(chromedp.Navigate(p.app.base + path))
	p.live()
	p.markPage()
}

// stillSamePage fails the test when the page was reloaded since markPage.
func (p *page) stillSamePage() {
	p.t.Helper()
	if !eval[bool](p, `window.__same_page === true`) {
		p.t.Error("the page reloaded")
	}
}

// live waits for the page's event stream to be open.
func (p *page) live() {
	p.t.Helper()
	p.until("the live stream", `document.getElementById("live") && document.getElementById("live").className === "live on"`)
}

// clean fails the test on any console error, exception, CSP report or
// dialog seen so far.
func (p *page) clean(where string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.msgs {
		p.t.Errorf("%s: %s", where, m)
	}
	p.msgs = nil
}

// confirm accepts the page's confirmation dialog and returns its text.
func (p *page) confirm() string {
	p.t.Helper()
	p.until("the confirmation", `document.getElementById("confirm").open`)
	msg := eval[string](p, `document.querySelector("#confirm .msg").textContent`)
	p.do(chromedp.Click(chromedp.CSS(`#confirm button[value="ok"]`)))
	return msg
}

func TestBrowserScreensLoadClean(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	id := l.enqueue(map[string]any{"class": "FailJob", "args": map[string]any{"message": "503 from bridge"}, "max_attempts": 1})
	l.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
	p := openPage(t, l)
	for _, path := range []string{"/admin/background_jobs", "/admin/background_jobs/failures", "/admin/jobs",
		fmt.Sprintf("/admin/jobs/%d", id), "/admin/accounts", "/admin/jobs?state=done"} {
		t.Logf("%s: open", path)
		p.do(chromedp.Navigate(l.base + path))
		p.live()
		p.clean(path)
	}
	p.do(chromedp.Navigate(l.base + "/admin/background_jobs/failures"))
	p.until("the failure in the table", `document.querySelectorAll("#failures-table .tabulator-row").length === 1`)
	p.clean("failures table")
	// The empty accounts screen says how to add accounts.
	p.do(chromedp.Navigate(l.base + "/admin/accounts"))
	if txt := eval[string](p, `document.getElementById("accounts-empty").textContent`); !strings.Contains(txt, "POST /api/v1/accounts") {
		t.Errorf("accounts empty state: %q", txt)
	}
}

func TestBrowserDashboardIsLive(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := openPage(t, l)
	p.live()
	p.markPage()
	id := l.enqueue(map[string]any{"class": "NoopJob"})
	p.until("the job in recent jobs", fmt.Sprintf(`!!document.querySelector('#recent tr[data-job="%d"]')`, id))
	// A paused queue's size shows without a reload too.
	if st := l.api("POST", "/api/v1/queues/sync/pause", nil, nil); st != http.StatusOK {
		t.Fatalf("pause: %d", st)
	}
	for range 3 {
		l.enqueue(map[string]any{"class": "NoopJob", "queue": "sync"})
	}
	p.until("sync's size", `(function(){const r=document.querySelector('#queues tr[data-queue="sync"]');return !!r && r.children[2].textContent.trim()==="3" && r.textContent.includes("paused");})()`)
	// The schedule says each cron line in words beside it.
	if w := eval[string](p, `(document.querySelector('#cron tr[data-entry="queue_health_check"] .cron-words') || {}).textContent || ""`); w != "every minute" {
		t.Errorf("queue_health_check's cron line in words: %q, want %q", w, "every minute")
	}
	p.stillSamePage()
	p.clean("dashboard")
}

// TestBrowserAccountsLive: an account added over the API and profiles
// written as the jobs write them (the database, then profiles_table_changed
// on the bus) appear on the open accounts page without a reload; the
// profiles table is paged by the server, and the page the operator is on
// refreshes in place.
func TestBrowserAccountsLive(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := openPage(t, l)
	p.openLive("/admin/accounts")
	var acct struct{ ID int64 }
	if st := l.api("POST", "/api/v1/accounts", map[string]any{"username": "live_account"}, &acct); st != http.StatusCreated {
		t.Fatalf("create account: %d", st)
	}
	p.until("the new account", fmt.Sprintf(`!!document.querySelector('#accounts tr[data-account="%d"]')`, acct.ID))
	addProfiles := func(from, n int) {
		t.Helper()
		ps := make([]*data.Profile, n)
		for i := range ps {
			ps[i] = &data.Profile{AccountID: acct.ID, Username: fmt.Sprintf("profile_%03d", from+i)}
		}
		if err := l.a.storage.db.UpsertProfiles(context.Background(), ps); err != nil {
			t.Fatal(err)
		}
		l.a.bus.Publish(events.TopicProfiles)
	}
	rows := `document.querySelectorAll("#profiles tbody tr").length`
	rangeText := `((document.getElementById("profiles-range") || {}).textContent || "")`
	addProfiles(0, 60)
	p.until("the first page of 60 profiles", rows+` === 50 && `+rangeText+` === "1–50 of 60"`)
	p.stillSamePage()
	p.clean("accounts, first page")
	// The second page (its link), then a profile more: it refreshes in
	// place.
	p.do(chromedp.Navigate(eval[string](p, `document.getElementById("profiles-next").href`)))
	p.live()
	p.until("the second page", rows+` === 10 && `+rangeText+` === "51–60 of 60"`)
	p.markPage()
	addProfiles(60, 1)
	p.until("the second page with a profile more", rows+` === 11 && `+rangeText+` === "51–61 of 61"`)
	p.stillSamePage()
	if !strings.Contains(eval[string](p, `location.search`), "profiles_page=2") {
		t.Errorf("the page left the second page: %s", eval[string](p, `location.href`))
	}
	p.clean("accounts, second page")
}

func TestBrowserPauseAndQuietFromThePage(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := openPage(t, l)
	p.live()
	p.click(`#queues tr[data-queue="sync"] button.pause`)
	p.until("sync paused", `!!document.querySelector('#queues tr[data-queue="sync"] button.resume')`)
	if qi, _ := l.a.store.Queue("sync"); !qi.Paused {
		t.Fatal("the pause button did not pause the queue")
	}
	p.click(`#queues tr[data-queue="sync"] button.resume`)
	p.until("sync resumed", `!!document.querySelector('#queues tr[data-queue="sync"] button.pause')`)
	if qi, _ := l.a.store.Queue("sync"); qi.Paused {
		t.Fatal("the resume button did not resume the queue")
	}

	p.click("#quiet-toggle")
	if msg := p.confirm(); !strings.Contains(msg, "every lane") {
		t.Errorf("quiet confirmation: %q", msg)
	}
	p.until("quiet shown", `!!document.getElementById("lanes-quiet")`)
	if !l.a.pool.Quiet() {
		t.Fatal("the quiet switch did not quiet the lanes")
	}
	id := l.enqueue(map[string]any{"class": "NoopJob"})
	// Nothing claims it while quiet: it is ready, and the page says so.
	p.until("the ready job counted", `document.getElementById("count-ready").textContent.trim() === "1"`)
	if j, _ := l.a.store.Get(id); j.State != queue.StateReady {
		t.Errorf("a job ran while the lanes were quiet: %s", j.State)
	}
	// The quiet panel and the lanes panel are fetched separately: wait for
	// the toggle to have become the resume button, or the click would ask
	// to quiet the lanes again and nothing would ever resume them.
	p.until("the resume button", `document.getElementById("quiet-toggle").dataset.action === "POST /api/v1/lanes/resume"`)
	p.click("#quiet-toggle")
	l.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDone })
	p.until("quiet gone", `!document.getElementById("lanes-quiet")`)
	p.clean("pause and quiet")
}

func TestBrowserFailuresTable(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := openPage(t, l)
	p.openLive("/admin/background_jobs/failures")
	rows := `document.querySelectorAll("#failures-table .tabulator-row")`
	if n := eval[int](p, rows+`.length`); n != 0 {
		t.Fatalf("%d rows before any failure", n)
	}
	// A failure appears without a reload.
	fail := func(class, queueName, msg string) uint64 {
		id := l.enqueue(map[string]any{"class": class, "queue": queueName, "args": map[string]any{"message": msg}, "max_attempts": 1})
		l.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
		return id
	}
	first := fail("FailJob", "default", "503 from bridge")
	p.until("the first failure", rows+`.length === 1`)
	// Retry it from the table: the job runs again.
	p.click(`#failures-table .tabulator-row button.row-retry`)
	l.waitJob(first, func(j *queue.Job) bool { return j.Attempt == 2 && j.State == queue.StateDead })
	p.until("the retry's toast", `document.getElementById("toast").textContent.includes("retried")`)

	// Filtering and sorting go to the server and show its rows.
	fail("FailJob", "sync", "zebra timeout")
	fail("FailJob", "sync", "alpha refused")
	p.until("all four failures", rows+`.length === 4`)
	p.do(chromedp.SetValue(chromedp.ID("f-queue"), "sync"), chromedp.Evaluate[chromedp.Void](
		`document.getElementById("f-queue").dispatchEvent(new Event("change"))`))
	p.until("the two sync failures", rows+`.length === 2`)
	p.click(`#failures-table .tabulator-col[tabulator-field="error_message"]`)
	p.click(`#failures-table .tabulator-col[tabulator-field="id"]`)
	p.until("sorted by id, ascending", `(function(){const r=[...document.querySelectorAll("#failures-table .tabulator-row")].map(e=>Number(e.querySelector('[tabulator-field="id"]').textContent));return r.length===2 && r[0]<r[1];})()`)
	p.do(chromedp.SendKeys(chromedp.ID("q"), "zebra"))
	p.until("the search's one row", rows+`.length === 1 && `+rows+`[0].textContent.includes("zebra timeout")`)
	seen := strings.Join(l.requests("/api/v1/failures?"), "\n")
	for _, want := range []string{"filter%5B0%5D%5Bfield%5D=queue", "filter%5B0%5D%5Bvalue%5D=sync", "sort%5B0%5D%5Bfield%5D=id", "q=zebra"} {
		if !strings.Contains(seen, want) {
			t.Errorf("no request to the server carried %s; requests:\n%s", want, seen)
		}
	}
	p.stillSamePage()
	p.clean("failures")
}

func TestBrowserLoginLogoutAndForgery(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := newPage(t, l)
	p.do(chromedp.Navigate(l.base + "/admin/jobs"))
	p.until("the login page", `location.pathname === "/admin/login"`)
	p.login("wrong-token-0123456789")
	p.do(chromedp.WaitVisible(chromedp.ID("login-error")))
	p.mu.Lock()
	p.msgs = nil // the refused login's 401 is logged by the browser
	p.mu.Unlock()
	p.login(testToken)
	p.do(chromedp.WaitVisible(chromedp.CSS("header.top")))
	p.live()
	// CSRF: a request with the cookie but without the page's token is refused.
	status := evalAwait[int](p, `(async()=>{const r=await fetch("/api/v1/queues/default/pause",{method:"POST",credentials:"same-origin"});return r.status;})()`)
	if status != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d", status)
	}
	if qi, _ := l.a.store.Queue("default"); qi.Paused {
		t.Fatal("a POST without the CSRF token paused the queue")
	}
	// Cross-origin: a page of another origin on this machine posts a form
	// and a fetch to the server with the browser's cookie.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%[1]s/api/v1/queues/default/pause"><input name=csrf_token value=x></form>
<script>fetch(%[1]q+"/api/v1/queues/sync/pause",{method:"POST",mode:"no-cors",credentials:"include"}).finally(()=>{document.title="sent";document.getElementById("f").submit();});</script>`, l.base)
	}))
	defer evil.Close()
	p.do(chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("pre")))
	body := eval[string](p, `document.body.innerText`)
	if !strings.Contains(body, `"field":"Origin"`) && !strings.Contains(body, `"field":"X-CSRF-Token"`) {
		t.Errorf("the forged form was answered %q", body)
	}
	for _, q := range []string{"default", "sync"} {
		if qi, _ := l.a.store.Queue(q); qi.Paused {
			t.Errorf("a request from another origin paused %s", q)
		}
	}
	p.mu.Lock()
	p.msgs = nil // the evil page's refused requests log errors of their own
	p.mu.Unlock()

	// Logout ends the session: the pages send the browser to the login.
	p.do(chromedp.Navigate(l.base + "/admin/background_jobs"))
	p.do(chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("secret")))
	p.do(chromedp.Navigate(l.base+"/admin/background_jobs"), chromedp.WaitVisible(chromedp.ID("secret")))
	if loc := eval[string](p, `location.pathname`); loc != "/admin/login" {
		t.Errorf("a logged-out browser is at %s", loc)
	}
	p.clean("login")
}

func TestBrowserJobDataRunsNothing(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	payloads := []string{`<script>window.__xss=1</script>`, `"><img src=x onerror=window.__xss=1>`, `'><svg onload=window.__xss=1>`}
	msg := payloads[0] + payloads[1] + payloads[2]
	id := l.enqueue(map[string]any{"class": "FailJob", "args": map[string]any{"message": msg}, "max_attempts": 1,
		"unique_key": payloads[1], "context": map[string]string{"note": payloads[2]}})
	l.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
	p := openPage(t, l)
	for _, path := range []string{"/admin/background_jobs", fmt.Sprintf("/admin/jobs/%d", id), "/admin/jobs?state=dead",
		"/admin/background_jobs/failures"} {
		p.do(chromedp.Navigate(l.base + path))
		p.live()
		if path == "/admin/background_jobs/failures" {
			p.until("the failure row", `document.querySelectorAll("#failures-table .tabulator-row").length === 1`)
			p.click(`#failures-table .tabulator-row [tabulator-field="class"]`)
			p.until("the detail", `!document.getElementById("detail").hidden && document.getElementById("d-error").textContent.length > 0`)
			if txt := eval[string](p, `document.getElementById("d-error").textContent`); txt != msg {
				t.Errorf("the detail's error shows %q", txt)
			}
		}
		if eval[bool](p, `window.__xss === 1`) {
			t.Fatalf("%s ran job data", path)
		}
		if n := eval[int](p, `document.querySelectorAll("main img[src='x'], main svg[onload], main script").length`); n != 0 {
			t.Errorf("%s: job data became %d elements", path, n)
		}
		p.clean(path)
	}
	p.do(chromedp.Navigate(fmt.Sprintf("%s/admin/jobs/%d", l.base, id)))
	if txt := eval[string](p, `document.getElementById("job-args").textContent`); !strings.Contains(txt, payloads[0]) || !strings.Contains(txt, payloads[2]) {
		t.Errorf("the job's args are not shown as text: %q", txt)
	}
}
