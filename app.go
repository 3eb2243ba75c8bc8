package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/queue"
	"conveyor/ui"
)

// Files in the data directory.
const (
	queueFile = "queue.bolt"
	tokenFile = "token"
)

// app is the wired appliance: what `serve` runs and what end-to-end tests and
// `bench` build too. The parts each feature adds live in their own files
// (app_failures.go, app_schedule.go, app_localai.go) behind the hooks called
// below, in this order:
//
//	newApp: token, queue store, broadcaster
//	        → openFailures (SQLite, replication, failure capture, job classes)
//	        → openSchedule (the recurring schedule; needs every class registered)
//	        → lanes pool (with the middleware and retry policy gathered above)
//	        → openLocalAI (start-up guardrail; gates of the AI lanes)
//	        → listener and HTTP server (each feature adds its UI config)
//	start:  lanes → startFailures → startSchedule → startLocalAI → HTTP
//	stop:   HTTP → stopSchedule → lanes drain → stopLocalAI → closeFailures → store
type app struct {
	st      settings
	log     *slog.Logger
	getenv  func(string) string
	store   *queue.Store
	reg     *lanes.Registry
	pool    *lanes.Pool
	bus     *events.Bus
	web     *ui.Server
	http    *http.Server
	ln      net.Listener
	token   string
	execLog *lanes.ExecLog
	served  chan error

	// Gathered from the features before the pool is built.
	middleware []lanes.Middleware
	retryable  func(error) bool
	// Readiness checks contributed by the features, for /readyz.
	ready []func(ctx context.Context) []ui.Check

	failures failuresPart
	schedule schedulePart
	localAI  localAIPart
}

// newApp opens the store, builds the lanes and the HTTP server and binds the
// listener; start starts the work. On error everything opened is closed.
func newApp(ctx context.Context, st settings, log *slog.Logger, tokenOut io.Writer, getenv func(string) string) (a *app, err error) {
	a = &app{st: st, log: log, getenv: getenv, served: make(chan error, 1)}
	defer func(built *app) {
		// built, not a: "return nil, err" has already set a to nil here.
		if err != nil {
			built.close(context.WithoutCancel(ctx))
		}
	}(a)
	if err := os.MkdirAll(st.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if a.token, err = loadToken(st.DataDir, getenv("CONVEYOR_TOKEN"), tokenOut); err != nil {
		return nil, err
	}
	qopts := st.Queue
	qopts.Logger = log.With("part", "queue")
	if a.store, err = queue.Open(filepath.Join(st.DataDir, queueFile), qopts); err != nil {
		return nil, err
	}
	a.bus = events.NewBus(events.Options{Logger: log.With("part", "broadcast")})
	a.reg = lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(a.reg); err != nil {
		return nil, err
	}
	if err := a.openFailures(ctx); err != nil {
		return nil, err
	}
	if err := a.registerLocalAIJobs(); err != nil {
		return nil, err
	}
	if err := a.openSchedule(ctx); err != nil {
		return nil, err
	}
	popts := lanes.Options{ShutdownTimeout: st.ShutdownTimeout, Logger: log.With("part", "lanes"),
		Middleware: a.middleware, Retryable: a.retryable}
	if st.ExecLog != "" {
		if a.execLog, err = lanes.OpenExecLog(st.ExecLog); err != nil {
			return nil, err
		}
		popts.Middleware = append(popts.Middleware, a.execLog.Middleware())
	}
	if a.pool, err = lanes.New(a.store, a.reg, st.Topology, popts); err != nil {
		return nil, err
	}
	if err := a.openLocalAI(ctx); err != nil {
		return nil, err
	}
	if a.ln, err = net.Listen("tcp", st.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", st.Listen, err)
	}
	cfg := ui.Config{
		Store: a.store, Registry: a.reg, Topology: st.Topology, Pool: a.pool, Token: a.token,
		AllowedHosts: ui.HostsFor(a.ln.Addr().String()), Logger: log.With("part", "http"),
		MaxBodyBytes: int64(a.store.MaxArgsBytes()) + 64<<10,
		Ready:        a.readyChecks,
		Events:       a.bus,
	}
	a.failuresUI(&cfg)
	a.scheduleUI(&cfg)
	if a.web, err = ui.New(cfg); err != nil {
		return nil, err
	}
	// No WriteTimeout: server-sent event streams stay open.
	a.http = &http.Server{Handler: a.web, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return a, nil
}

// readyChecks gathers the features' readiness checks for /readyz.
func (a *app) readyChecks(ctx context.Context) []ui.Check {
	var out []ui.Check
	for _, f := range a.ready {
		out = append(out, f(ctx)...)
	}
	return out
}

// start starts the lanes, the features' loops and the HTTP server.
func (a *app) start(ctx context.Context) error {
	if err := a.pool.Start(); err != nil {
		return err
	}
	if err := a.startFailures(ctx); err != nil {
		return err
	}
	if err := a.startSchedule(ctx); err != nil {
		return err
	}
	if err := a.startLocalAI(ctx); err != nil {
		return err
	}
	a.forwardChanges()
	go func() { a.served <- a.http.Serve(a.ln) }()
	a.log.Info("conveyor is serving", "addr", "http://"+a.ln.Addr().String(), "data", a.st.DataDir,
		"lanes", len(a.st.Topology.Lanes), "workers", a.st.Topology.Workers())
	return nil
}

// forwardChanges turns the queue's change notifications into the
// broadcaster's topics (coalesced there) until the store closes.
func (a *app) forwardChanges() {
	sub := a.store.Subscribe()
	go func() {
		for range sub.C {
			a.bus.Publish(events.TopicJobs)
			a.bus.Publish(events.TopicMetrics)
		}
	}()
}

// addr is the address the server listens on.
func (a *app) addr() string { return a.ln.Addr().String() }

// stop shuts down gracefully: the HTTP server stops taking requests and
// finishes those in flight (an enqueue that was accepted is committed), the
// schedule stops firing, the lanes drain, and the storage closes.
func (a *app) stop(ctx context.Context) error {
	var errs []error
	if a.http != nil {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.http.Shutdown(hctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	errs = append(errs, a.stopSchedule(ctx))
	if a.pool != nil {
		errs = append(errs, a.pool.Stop(ctx))
	}
	errs = append(errs, a.close(ctx))
	return errors.Join(errs...)
}

// close releases what newApp opened, in reverse order.
func (a *app) close(ctx context.Context) error {
	var errs []error
	if a.ln != nil {
		a.ln.Close()
	}
	errs = append(errs, a.stopLocalAI(ctx), a.closeFailures(ctx))
	if a.bus != nil {
		a.bus.Close()
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.execLog != nil {
		errs = append(errs, a.execLog.Close())
	}
	return errors.Join(errs...)
}

// loadToken returns the API token: CONVEYOR_TOKEN when set, else the one in the
// data directory, generated (mode 0600) and printed once on first start.
func loadToken(dataDir, fromEnv string, out io.Writer) (string, error) {
	if fromEnv != "" {
		if len(fromEnv) < ui.MinTokenLen {
			return "", fmt.Errorf("CONVEYOR_TOKEN is too short: use at least %d characters", ui.MinTokenLen)
		}
		return fromEnv, nil
	}
	path := filepath.Join(dataDir, tokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if len(tok) < ui.MinTokenLen {
			return "", fmt.Errorf("token file %s is damaged (shorter than %d characters): delete it to get a new token", path, ui.MinTokenLen)
		}
		return tok, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("token: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(out, "Generated the API token (kept in %s, mode 0600; shown only now):\n\n    %s\n\n"+
		"Use it as \"Authorization: Bearer <token>\", or set CONVEYOR_TOKEN to choose your own.\n", path, tok)
	return tok, nil
}
