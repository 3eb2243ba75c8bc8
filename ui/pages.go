package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// The operator's pages are server-rendered html/template pages (web/templates)
// with one stylesheet and small scripts (web/static), embedded in the
// binary. Every page renders its panels on the server; its script then
// listens to GET /api/v1/events and re-fetches a panel an event names as an
// HTML fragment of the same template (?panel=name), so there is one
// renderer, and html/template escapes everything a job carries. Actions are
// fetch requests to the JSON API carrying the session's CSRF token.

//go:embed web/templates/*.html
var templateFS embed.FS

//go:embed web/static
var staticFS embed.FS

// PagesConfig is the browser pages' part of Config: logins, sessions,
// redaction, and the dashboard's sources outside this package. Every field
// is optional.
type PagesConfig struct {
	// SessionKey signs session cookies and CSRF tokens: at least
	// MinSessionKeyLen bytes (SessionKeyFile keeps one in the data
	// directory). Nil: a random key for this process, so every login ends
	// when it stops.
	SessionKey []byte
	// SessionTTL is how long a login lasts (default DefaultSessionTTL).
	SessionTTL time.Duration
	// SessionRevokedFile keeps the logged-out sessions (until they would
	// have expired) so that a restart does not revive them. "": kept in
	// memory only.
	SessionRevokedFile string
	// SecureCookies marks the session cookie Secure even on plain HTTP,
	// for a server behind a TLS proxy (it is Secure anyway over TLS).
	SecureCookies bool
	// PasswordHash is an argon2id hash (HashPassword, `conveyor passwd`)
	// of a password that logs in besides the token. "": only the token.
	PasswordHash string
	// LoginBurst failed logins are allowed from one address at once, then
	// one every LoginInterval (defaults 5 and 12 s).
	LoginBurst    int
	LoginInterval time.Duration
	// Redact are the key patterns whose values the pages and the API mask
	// in args and context (DefaultRedact when nil; empty: none).
	Redact []string
	// AI reports the local AI health for the dashboard. Nil: not watched.
	AI func() AIView
	// Replication reports the replication state for the dashboard. Nil:
	// not shown.
	Replication func() ReplicationView
}

// Content-Security-Policy of the JSON API and of the pages: the pages load
// scripts, styles and data from this server only, run no inline script and
// no eval, and may not be framed.
const (
	apiCSP  = "default-src 'none'; frame-ancestors 'none'"
	pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

// pageSet holds the parsed templates and the static files with their
// content hashes (for cache-busting URLs).
type pageSet struct {
	pages  map[string]*template.Template
	static map[string]staticFile
}

type staticFile struct {
	body  []byte
	hash  string
	ctype string
}

// pageNames are the pages, each a template file beside layout.html.
var pageNames = []string{"login", "dashboard", "failures", "jobs", "job", "accounts"}

// loadPages parses the templates with the server's helpers and reads the
// static files.
func (s *Server) loadPages() (*pageSet, error) {
	ps := &pageSet{pages: map[string]*template.Template{}, static: map[string]staticFile{}}
	err := fs.WalkDir(staticFS, "web/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "web/static/")
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".LICENSE", "":
			ct = "text/plain; charset=utf-8"
		}
		ps.static[name] = staticFile{body: b, hash: hex.EncodeToString(sum[:6]), ctype: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: static files: %w", err)
	}
	funcs := s.templateFuncs(ps)
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "web/templates/layout.html", "web/templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "web/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		ps.pages[name] = t
	}
	return ps, nil
}

// templateFuncs are the helpers templates use. Times are shown relative
// with the absolute time on hover (the page's script keeps the relative
// text current).
func (s *Server) templateFuncs(ps *pageSet) template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) {
			f, ok := ps.static[name]
			if !ok {
				return "", fmt.Errorf("no static file %q", name)
			}
			return "/static/" + name + "?v=" + f.hash, nil
		},
		"iso": func(t any) string {
			tt := asTime(t)
			if tt.IsZero() {
				return ""
			}
			return tt.UTC().Format(time.RFC3339Nano)
		},
		"abs": func(t any) string {
			tt := asTime(t)
			if tt.IsZero() {
				return ""
			}
			return tt.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"ago":    func(t any) string { return relTime(asTime(t), s.now()) },
		"num":    func(n any) string { return groupDigits(fmt.Sprint(n)) },
		"ms":     func(ms int64) string { return human(time.Duration(ms) * time.Millisecond) },
		"secs":   func(sec float64) string { return human(time.Duration(sec * float64(time.Second))) },
		"json":   func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		"pretty": prettyJSON,
		// query builds the query of a link, written after a fixed path and
		// "?" ("/admin/jobs?{{query …}}"). It is a template.URL because
		// html/template would query-escape a plain string there, "=" and
		// "&" included; url.Values.Encode has escaped every value already.
		"query": func(kv ...string) template.URL {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					q.Set(kv[i], kv[i+1])
				}
			}
			return template.URL(q.Encode())
		},
		"cut": cutText,
		"plural": func(n any, one, many string) string {
			if fmt.Sprint(n) == "1" {
				return one
			}
			return many
		},
		"pct": func(a, b int) int {
			if b <= 0 {
				return 0
			}
			return a * 100 / b
		},
		"add":   func(a, b int) int { return a + b },
		"deref": func(p *int64) int64 { return *p },
	}
}

// asTime accepts the time types views carry.
func asTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case stamp:
		return time.Time(t)
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// relTime says how long ago (or in how long) t is from now: "12 s ago",
// "in 3 min", "just now"; "never" for the zero time.
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d > -time.Second && d < time.Second:
		return "just now"
	case d > 0:
		return human(d.Truncate(time.Second)) + " ago"
	}
	return "in " + human((-d).Truncate(time.Second))
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if _, err := strconv.ParseUint(s, 10, 64); err != nil || len(s) <= 3 {
		if neg {
			return "-" + s
		}
		return s
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 && !(neg && b.Len() == 1) {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// prettyJSON indents raw JSON for a <pre>, writing <, > and & as they are
// (html/template escapes the text; \u003c would only hide what a job
// carries).
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// pageData is what every page template gets.
type pageData struct {
	Name  string // the page: login, dashboard, …
	Title string
	CSRF  string // the session's CSRF token; "" with a bearer token
	// ByToken: the page was opened with the bearer token (no session:
	// actions from the page need a login).
	ByToken bool
	Quiet   bool
	Error   string
	D       any // the page's own data
}

// render writes a page (or, with fragment set, one named template of it)
// with the page's security headers.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, fragment string, pd pageData) {
	t := s.pages.pages[page]
	pd.Name = page
	if sess := sessionOf(r); sess != nil {
		pd.CSRF = s.sess.csrfToken(*sess)
	} else if page != "login" {
		pd.ByToken = true
	}
	if s.cfg.Pool != nil {
		pd.Quiet = s.cfg.Pool.Quiet()
	}
	var buf bytes.Buffer
	name := "layout"
	if fragment != "" {
		name = fragment
	}
	if err := t.ExecuteTemplate(&buf, name, pd); err != nil {
		s.log.Error("render page", "page", page, "fragment", fragment, "err", err)
		http.Error(w, "internal error (logged on the server)", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	// Not no-referrer: with it, browsers send "Origin: null" on the pages'
	// own POSTs, and the Origin check could not tell them from a forgery.
	// same-origin sends nothing to other sites.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageRoutes are the browser pages, the login and the static files.
func (s *Server) pageRoutes() []Route {
	page := func(p string, h httprouter.Handle) Route {
		return Route{Method: http.MethodGet, Path: p, Auth: true, Page: true, handle: h}
	}
	return []Route{
		page("/", s.home),
		{Method: http.MethodGet, Path: "/admin/login", Auth: false, Page: true, handle: s.loginPage},
		{Method: http.MethodPost, Path: "/admin/login", Auth: false, Page: true, handle: s.login},
		{Method: http.MethodPost, Path: "/admin/logout", Auth: true, Page: true, handle: s.logout},
		page("/admin/background_jobs", s.dashboardPage),
		page("/admin/background_jobs/failures", s.failuresPage),
		page("/admin/jobs", s.jobsPage),
		page("/admin/jobs/:id", s.jobPage),
		page("/admin/accounts", s.accountsPage),
		{Method: http.MethodGet, Path: "/static/*file", Auth: false, handle: s.static},
	}
}

// home serves /: to the dashboard (a visitor who is not logged in has been
// sent to the login page by the guard).
func (s *Server) home(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if r.URL.Path != "/" {
		s.writeError(w, r, &fieldError{kind: errNoRoute, Msg: "no such page: " + r.URL.Path})
		return
	}
	http.Redirect(w, r, "/admin/background_jobs", http.StatusSeeOther)
}

// toLogin sends a browser that is not logged in to the login page, to
// come back here after.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.RequestURI()
	target := "/admin/login"
	if next != "/" && next != "/admin/background_jobs" {
		target += "?" + url.Values{"next": {next}}.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// safeNext accepts only a path on this server as where to go after the
// login (never another site: "//evil", "/\evil", "https://…").
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/admin/background_jobs"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/admin/background_jobs"
	}
	return next
}

// static serves the embedded files. They are the same in every copy of
// this build and carry no data, so they need no login (the login page
// uses them); their URLs carry a content hash, so they may be cached.
func (s *Server) static(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	f, ok := s.pages.static[strings.TrimPrefix(ps.ByName("file"), "/")]
	if !ok {
		s.writeError(w, r, &fieldError{kind: errNoRoute, Msg: "no such file: " + r.URL.Path})
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	h.Set("ETag", `"`+f.hash+`"`)
	if r.URL.Query().Get("v") == f.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.Header.Get("If-None-Match") == `"`+f.hash+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(f.body)
}
