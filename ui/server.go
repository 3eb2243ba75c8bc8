package ui

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/queue"
)

// Defaults for Config, and the API's limits.
const (
	// DefaultMaxBodyBytes bounds the body of a one-job request: the store's
	// default args limit plus 64 KiB for the rest of the job.
	DefaultMaxBodyBytes = queue.DefaultMaxArgsBytes + 64<<10
	// DefaultMaxBatchBytes bounds the body of a batch enqueue.
	DefaultMaxBatchBytes = 32 << 20
	// DefaultReadyTimeout bounds the readiness checks of one /readyz request.
	DefaultReadyTimeout = 5 * time.Second
	// MinTokenLen is the shortest bearer token New accepts.
	MinTokenLen = 16
	// MaxBatchJobs is the most jobs one batch enqueue may carry.
	MaxBatchJobs = 10_000
	// smallBodyBytes bounds the body of requests that carry none.
	smallBodyBytes = 64 << 10
)

// Config configures a Server. New validates it and names the offending field.
type Config struct {
	// Store is the job store the API reads and changes. Required.
	Store *queue.Store
	// Registry holds the job classes: an enqueue must name one of them, and a
	// job without a queue goes to its class's queue. Required.
	Registry *lanes.Registry
	// Topology maps queues to lanes: an enqueue must target a queue some lane
	// serves, so that a typo never becomes a job no lane will run. Required
	// (validated with Topology.Validate).
	Topology lanes.Topology
	// Pool supplies live lane statistics (busy workers, gates, processed and
	// failed counts) to /metrics. Nil leaves the lane metrics out.
	Pool *lanes.Pool
	// Token is the bearer token every endpoint but /healthz requires. Required:
	// at least MinTokenLen printable ASCII characters, no spaces.
	Token string
	// AllowedHosts are the Host header values accepted, e.g. "127.0.0.1:7420"
	// and "localhost:7420"; any other Host gets 403 (DNS-rebinding protection).
	// Required. Derive it from the listener's actual address with HostsFor,
	// and append any name the operator reaches the machine by.
	AllowedHosts []string
	// Ready contributes the application's readiness checks (supervisor, local
	// AI, scheduler…) to /readyz, next to the built-in "web" and "queue"
	// checks. Optional.
	Ready func(ctx context.Context) []Check
	// Logger receives request failures (the detail of every 500) and access
	// logs at debug level. Default: discarded.
	Logger *slog.Logger
	// Now is the clock used for relative times in job views and for in_seconds.
	// Default: time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds a one-job request body (default DefaultMaxBodyBytes).
	// If the store was opened with a larger MaxArgsBytes, raise it to match.
	MaxBodyBytes int64
	// MaxBatchBytes bounds a batch enqueue body (default DefaultMaxBatchBytes).
	MaxBatchBytes int64
	// ReadyTimeout bounds the readiness checks of one request (default
	// DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// BodyReadTimeout bounds the time a client has to send a request's body
	// once its header is in (default DefaultBodyReadTimeout); past it the
	// request is answered 408 and its connection closed. It does not bound
	// the event stream, which has no body to wait for.
	BodyReadTimeout time.Duration
	// Registerer and Gatherer are where the server registers its collector and
	// what /metrics serves. Give both or neither; neither means a fresh
	// prometheus.Registry with the Go and process collectors.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	// Events is the broadcaster whose topics GET /api/v1/events streams.
	// Nil answers that endpoint with 503.
	Events *events.Bus

	// The features' own parts of the configuration (failures.go,
	// schedule.go, accounts.go, pages.go).
	FailuresConfig
	ScheduleConfig
	AccountsConfig
	PagesConfig
}

func (c Config) withDefaults() Config {
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.MaxBatchBytes = cmp.Or(c.MaxBatchBytes, DefaultMaxBatchBytes)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, DefaultReadyTimeout)
	c.SessionTTL = cmp.Or(c.SessionTTL, DefaultSessionTTL)
	c.LoginBurst = cmp.Or(c.LoginBurst, defaultLoginBurst)
	c.LoginInterval = cmp.Or(c.LoginInterval, defaultLoginInterval)
	if c.Redact == nil {
		c.Redact = DefaultRedact
	}
	c.BodyReadTimeout = cmp.Or(c.BodyReadTimeout, DefaultBodyReadTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("ui: Config.%s %s", field, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Store == nil:
		return bad("Store", "is required")
	case c.Registry == nil:
		return bad("Registry", "is required")
	case len(c.Token) < MinTokenLen:
		return bad("Token", "must be at least %d characters (got %d)", MinTokenLen, len(c.Token))
	case len(c.AllowedHosts) == 0:
		return bad("AllowedHosts", "is required: use HostsFor(listen address)")
	case c.MaxBodyBytes < 0:
		return bad("MaxBodyBytes", "must not be negative")
	case c.MaxBatchBytes < 0:
		return bad("MaxBatchBytes", "must not be negative")
	case c.ReadyTimeout < 0:
		return bad("ReadyTimeout", "must not be negative")
	case c.BodyReadTimeout < 0:
		return bad("BodyReadTimeout", "must not be negative")
	case (c.Registerer == nil) != (c.Gatherer == nil):
		return bad("Registerer", "and Config.Gatherer go together: give both or neither")
	case c.SessionKey != nil && len(c.SessionKey) < MinSessionKeyLen:
		return bad("SessionKey", "must be at least %d bytes (got %d)", MinSessionKeyLen, len(c.SessionKey))
	case c.SessionTTL < time.Minute:
		return bad("SessionTTL", "must be at least a minute (got %s)", c.SessionTTL)
	case c.LoginBurst < 0 || c.LoginInterval < 0:
		return bad("LoginBurst", "and Config.LoginInterval must not be negative")
	}
	if c.PasswordHash != "" {
		if _, err := parsePasswordHash(c.PasswordHash); err != nil {
			return bad("PasswordHash", "is %v", err)
		}
	}
	for i, p := range c.Redact {
		if strings.TrimSpace(p) == "" {
			return bad(fmt.Sprintf("Redact[%d]", i), "is empty: a pattern is part of a key, e.g. password")
		}
	}
	for _, r := range c.Token {
		if r <= ' ' || r > '~' {
			return bad("Token", "must hold only printable ASCII without spaces")
		}
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, " /\t") {
			return bad(fmt.Sprintf("AllowedHosts[%d]", i), "%q is not a host[:port]", h)
		}
	}
	if err := c.Topology.Validate(); err != nil {
		return bad("Topology", "is invalid: %v", err)
	}
	return nil
}

// Server is Conveyor's HTTP surface: the JSON API, health and metrics. It is an
// http.Handler, safe for concurrent use.
type Server struct {
	cfg      Config
	store    *queue.Store
	reg      *lanes.Registry
	topo     lanes.Topology
	log      *slog.Logger
	now      func() time.Time
	hosts    map[string]bool
	auth     []authenticator
	token    bearer
	sess     *sessions
	password *passwordHash
	limiter  *loginLimiter
	redact   redactor
	pages    *pageSet
	// streamsDone is closed by CloseStreams.
	streamsDone  chan struct{}
	closeStreams func()
	routes       []Route
	router       *httprouter.Router
	gatherer     prometheus.Gatherer
}

// New validates cfg, registers the metrics collector and builds the route
// table.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, store: cfg.Store, reg: cfg.Registry, topo: cfg.Topology,
		log: cfg.Logger, now: cfg.Now, hosts: map[string]bool{},
		token: newBearer(cfg.Token), redact: newRedactor(cfg.Redact),
		limiter:     newLoginLimiter(cfg.LoginBurst, cfg.LoginInterval, cfg.Now),
		streamsDone: make(chan struct{}),
	}
	s.closeStreams = sync.OnceFunc(func() { close(s.streamsDone) })
	for _, h := range cfg.AllowedHosts {
		s.hosts[strings.ToLower(h)] = true
	}
	key := cfg.SessionKey
	if key == nil {
		key = make([]byte, MinSessionKeyLen)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	var err error
	if s.sess, err = newSessions(key, cfg.SessionTTL, cfg.Now, cfg.SecureCookies, cfg.SessionRevokedFile); err != nil {
		return nil, err
	}
	if cfg.PasswordHash != "" {
		ph, _ := parsePasswordHash(cfg.PasswordHash)
		s.password = &ph
	}
	s.auth = []authenticator{s.token, cookieAuth{s: s.sess, hosts: s.hosts}}
	if s.pages, err = s.loadPages(); err != nil {
		return nil, err
	}
	reg, gath := cfg.Registerer, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gath = r, r
	}
	if err := reg.Register(newCollector(cfg.Store, cfg.Topology, cfg.Pool)); err != nil {
		return nil, fmt.Errorf("ui: Config.Registerer: register the conveyor collector: %w", err)
	}
	s.gatherer = gath
	s.routes = s.table()
	s.router = s.mount(s.routes)
	return s, nil
}

// Route is one entry of the server's route table: everything the server
// answers is registered from it, and tests walk it.
type Route struct {
	// Method is the HTTP method (GET, POST).
	Method string
	// Path is the route as the HTTP contract spells it, in httprouter's
	// syntax (/api/v1/jobs/:id).
	Path string
	// Auth is whether the route needs an authenticated caller.
	Auth bool
	// Page is whether the route is an HTML page for browsers: an
	// unauthenticated GET is sent to the login page instead of a 401.
	Page bool

	handle  httprouter.Handle
	maxBody int64
}

// Routes returns a copy of the route table.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	copy(out, s.routes)
	return out
}

// table is the one route table. Handlers returning JSON go through s.api,
// which maps their errors to statuses (errors.go).
func (s *Server) table() []Route {
	api := func(method, path string, h endpointFunc, maxBody int64) Route {
		return Route{Method: method, Path: path, Auth: true, handle: s.endpoint(h), maxBody: maxBody}
	}
	routes := []Route{
		{Method: http.MethodGet, Path: "/healthz", Auth: false, handle: s.endpoint(s.healthz)},
		api(http.MethodGet, "/readyz", s.readyz, 0),
		{Method: http.MethodGet, Path: "/metrics", Auth: true, handle: s.metrics()},

		api(http.MethodPost, "/api/v1/jobs", s.enqueue, s.cfg.MaxBodyBytes),
		api(http.MethodPost, "/api/v1/jobs/batch", s.enqueueBatch, s.cfg.MaxBatchBytes),
		api(http.MethodGet, "/api/v1/jobs", s.listJobs, 0),
		api(http.MethodGet, "/api/v1/jobs/:id", s.getJob, 0),
		api(http.MethodPost, "/api/v1/jobs/:id/retry", s.retryJob, 0),
		api(http.MethodPost, "/api/v1/jobs/:id/discard", s.discardJob, 0),
		api(http.MethodPost, "/api/v1/jobs/bulk", s.bulkJobs, 0),
		api(http.MethodGet, "/api/v1/jobs/count", s.countJobs, 0),

		api(http.MethodGet, "/api/v1/queues", s.listQueues, 0),
		api(http.MethodPost, "/api/v1/queues/:name/pause", s.pauseQueue, 0),
		api(http.MethodPost, "/api/v1/queues/:name/resume", s.resumeQueue, 0),
		api(http.MethodPost, "/api/v1/queues/:name/clear", s.clearQueue, 0),

		{Method: http.MethodGet, Path: "/api/v1/events", Auth: true, handle: s.events},
	}
	routes = append(routes, s.failureRoutes()...)
	routes = append(routes, s.accountsRoutes()...)
	routes = append(routes, s.jobRecordsRoutes()...)
	routes = append(routes, s.scheduleRoutes()...)
	routes = append(routes, s.dashboardRoutes()...)
	return append(routes, s.pageRoutes()...)
}

// mount registers the table on a router.
//
// httprouter v1.3.0 cannot hold a static segment and a wildcard at the same
// place of one method's tree: POST /api/v1/jobs/batch beside POST
// /api/v1/jobs/:id/retry panics. Such a static route (its static segment must
// be its last) is registered as an alternative of the wildcard instead: the
// handle at POST /api/v1/jobs/:id serves :id = "batch" with the batch route and
// answers anything else as the route registered at that exact pattern would,
// or 404 when there is none.
func (s *Server) mount(routes []Route) *httprouter.Router {
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.guard(Route{Auth: true}, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
			s.refuse(w, req, &fieldError{kind: errNoRoute, Msg: "no such endpoint: " + req.URL.Path})
		})(w, req, nil)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// httprouter lists OPTIONS, which HandleOPTIONS = false refuses.
		allow := withoutOptions(w.Header().Get("Allow"))
		w.Header().Set("Allow", allow)
		s.guard(Route{Auth: true}, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
			s.refuse(w, req, &fieldError{kind: errMethod, Msg: req.Method + " is not allowed here; allowed: " + allow})
		})(w, req, nil)
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.writeError(w, req, fmt.Errorf("panic: %v", v))
	}

	type key struct{ method, pattern string }
	type alt struct {
		param string
		by    map[string]httprouter.Handle
	}
	alts := map[key]*alt{}
	var plain []Route
	for _, rt := range routes {
		pattern, param, static, ok := wildcardSibling(rt, routes)
		if !ok {
			plain = append(plain, rt)
			continue
		}
		k := key{rt.Method, pattern}
		if alts[k] == nil {
			alts[k] = &alt{param: param, by: map[string]httprouter.Handle{}}
		}
		alts[k].by[static] = s.handle(rt)
	}
	dispatch := func(a *alt, fallback httprouter.Handle) httprouter.Handle {
		return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
			if h, ok := a.by[ps.ByName(a.param)]; ok {
				h(w, req, ps)
				return
			}
			fallback(w, req, ps)
		}
	}
	for _, rt := range plain {
		h := s.handle(rt)
		if a, ok := alts[key{rt.Method, rt.Path}]; ok {
			h = dispatch(a, h)
			delete(alts, key{rt.Method, rt.Path})
		}
		r.Handle(rt.Method, rt.Path, h)
	}
	for k, a := range alts {
		r.Handle(k.method, k.pattern, dispatch(a, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
			r.NotFound.ServeHTTP(w, req)
		}))
	}
	return r
}

// wildcardSibling reports whether rt's last segment is static where another
// route of the same method has a wildcard, and returns the wildcard pattern
// rt must be served under, the wildcard's name and rt's static segment.
func wildcardSibling(rt Route, routes []Route) (pattern, param, static string, ok bool) {
	segs := strings.Split(rt.Path, "/")
	i := len(segs) - 1
	if i < 1 || strings.HasPrefix(segs[i], ":") || strings.HasPrefix(segs[i], "*") {
		return "", "", "", false
	}
	for _, o := range routes {
		if o.Method != rt.Method || o.Path == rt.Path {
			continue
		}
		os := strings.Split(o.Path, "/")
		if len(os) <= i || !strings.HasPrefix(os[i], ":") || strings.Join(os[:i], "/") != strings.Join(segs[:i], "/") {
			continue
		}
		return strings.Join(append(segs[:i:i], os[i]), "/"), os[i][1:], segs[i], true
	}
	return "", "", "", false
}

// withoutOptions drops OPTIONS from an Allow header value.
func withoutOptions(allow string) string {
	var out []string
	for _, m := range strings.Split(allow, ",") {
		if m = strings.TrimSpace(m); m != "" && m != http.MethodOptions {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// handle wraps a route's handler with its body limit (first: the CSRF
// check of a session may read a form), authentication, and then its body,
// read whole within the limit and Config.BodyReadTimeout (body.go). A route
// open to everyone reads no body unless it is a page (the login form, which
// is the authentication), under a shorter bound.
func (s *Server) handle(rt Route) httprouter.Handle {
	limit := rt.maxBody
	if limit == 0 {
		limit = smallBodyBytes
	}
	h := s.guard(rt, func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		switch {
		case !hasBody(r):
		case !rt.Auth && !rt.Page:
			s.dropBody(w, r)
		default:
			if err := s.readBody(w, r, limit, !rt.Auth); err != nil {
				s.refuse(w, r, err)
				return
			}
		}
		rt.handle(w, r, ps)
	})
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		h(w, r, ps)
	}
}

// The security headers every response carries. Their values are shared,
// never modified slices, assigned under their canonical names: no
// allocation per request (profiled: Header.Set was a tenth of ServeHTTP).
var (
	hdrNosniff  = []string{"nosniff"}
	hdrNoStore  = []string{"no-store"}
	hdrDeny     = []string{"DENY"}
	hdrNoRef    = []string{"no-referrer"}
	hdrCSP      = []string{apiCSP}
	hdrJSONType = []string{"application/json; charset=utf-8"}
)

// ServeHTTP sets the security headers, checks the Host header (before
// authentication) and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Content-Type-Options"] = hdrNosniff
	h["Cache-Control"] = hdrNoStore
	h["X-Frame-Options"] = hdrDeny
	h["Referrer-Policy"] = hdrNoRef
	h["Content-Security-Policy"] = hdrCSP
	if !s.hosts[strings.ToLower(r.Host)] {
		s.refuse(w, r, &fieldError{kind: errHost, Field: "Host", Msg: fmt.Sprintf("host %q is not served here", r.Host)})
		return
	}
	s.boundBody(w, r)
	if !s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.router.ServeHTTP(w, r)
		return
	}
	start := s.now()
	sw := &statusWriter{ResponseWriter: w}
	s.router.ServeHTTP(sw, r)
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", s.now().Sub(start))
}

// statusWriter remembers the status for the access log (debug level).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
