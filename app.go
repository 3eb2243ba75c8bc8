package main

import (
	"context"
	"conveyor/internal/durable"
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

	"conveyor/internal/lifecycle"
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
// (app_storage.go, app_failures.go, app_schedule.go, app_localai.go,
// app_jobs.go) behind the hooks called below, in this order:
//
//	newApp: token, queue store, broadcaster
//	        → openStorage (SQLite, its replication, the queue snapshots)
//	        → openFailures (failure capture, issues, retries, job classes)
//	        → openDemo (demo only: the sandbox, the local AI stand-in)
//	        → registerLocalAIJobs (supervisor, AI health, its check job)
//	        → openJobs (the job catalog and declared classes; demo accounts)
//	        → openSchedule (the recurring schedule; needs every class registered)
//	        → lanes pool (with the middleware and retry policy gathered above)
//	        → openLocalAI (start-up guardrail; gates of the AI lanes)
//	        → listener and HTTP server (each feature adds its UI config)
//	start:  queue snapshots → lanes → failure reconciler → scheduler → (demo)
//	        kickoff of the fan-outs → local-AI watch → change forwarding → HTTP
//	stop:   the reverse of start (HTTP first; the lanes drain before the last
//	        queue snapshot), then close
//	close:  the reverse of newApp (local AI released if this process started
//	        it, the demo's local AI stand-in, failure capture and writer,
//	        SQLite and its replica, broadcaster, queue store)
//
// Everything that runs in the background has one shape,
// lifecycle.Service: newApp pushes what it opened on a.opened, start starts
// its list on a.running, and stop and close pop them in reverse.
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

	// opened holds what newApp opened, running what start started; stop
	// and close stop them in reverse.
	opened, running lifecycle.Stack

	// Gathered from the features before the pool is built.
	middleware []lanes.Middleware
	retryable  func(error) bool
	// Readiness checks contributed by the features, for /readyz.
	ready []func(ctx context.Context) []ui.Check

	storage  storagePart
	failures failuresPart
	schedule schedulePart
	localAI  localAIPart
	jobs     jobsPart
}

// extraClasses, when set, registers more job classes right after the
// built-in ones. It is nil in the product; the end-to-end tests set it (in
// TestMain, before main runs) to add the poison pills the crash tests need.
var extraClasses func(*lanes.Registry) error

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
	if was, err := privateDir(st.DataDir); err != nil {
		return nil, err
	} else if was != 0 {
		log.Warn("made the data directory private: it holds the failure table (job args, messages, backtraces) and the token",
			"dir", st.DataDir, "was", was.String(), "now", (was &^ 0o077).String())
	}
	if a.token, err = loadToken(st.DataDir, getenv("CONVEYOR_TOKEN"), tokenOut); err != nil {
		return nil, err
	}
	qopts := st.Queue
	qopts.Logger = log.With("part", "queue")
	if a.store, err = queue.Open(filepath.Join(st.DataDir, queueFile), qopts); err != nil {
		return nil, err
	}
	// The hooks take the parts, not a: "return nil, err" sets a to nil
	// before the deferred close runs them.
	store := a.store
	a.opened.Push(lifecycle.Hooks{Name: "queue store", OnStop: func(context.Context) error { return store.Close() }})
	bus := events.NewBus(events.Options{Logger: log.With("part", "broadcast")})
	a.bus = bus
	a.opened.Push(lifecycle.Hooks{Name: "broadcaster", OnStop: func(context.Context) error { bus.Close(); return nil }})
	a.reg = lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(a.reg); err != nil {
		return nil, err
	}
	if err := a.openStorage(ctx); err != nil {
		return nil, err
	}
	if extraClasses != nil {
		if err := extraClasses(a.reg); err != nil {
			return nil, err
		}
	}
	if err := a.openFailures(ctx); err != nil {
		return nil, err
	}
	if err := a.openDemo(); err != nil {
		return nil, err
	}
	if err := a.registerLocalAIJobs(); err != nil {
		return nil, err
	}
	if err := a.openJobs(ctx); err != nil {
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
		execLog := a.execLog
		a.opened.Push(lifecycle.Hooks{Name: "execution log", OnStop: func(context.Context) error { return execLog.Close() }})
		popts.Middleware = append(popts.Middleware, a.execLog.Middleware())
	}
	if a.pool, err = lanes.New(a.store, a.reg, st.Topology, popts); err != nil {
		return nil, err
	}
	a.failures.watchLanes(a.pool)
	if err := a.openLocalAI(ctx); err != nil {
		return nil, err
	}
	if a.ln, err = net.Listen("tcp", st.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", st.Listen, err)
	}
	// Closed by the HTTP server's shutdown once it serves; this is for a
	// listener that never served.
	ln := a.ln
	a.opened.Push(lifecycle.Hooks{Name: "listener", OnStop: func(context.Context) error { ln.Close(); return nil }})
	cfg := ui.Config{
		Store: a.store, Registry: a.reg, Topology: st.Topology, Pool: a.pool, Token: a.token,
		AllowedHosts: ui.HostsFor(a.ln.Addr().String()), Logger: log.With("part", "http"),
		MaxBodyBytes: int64(a.store.MaxArgsBytes()) + 64<<10,
		Ready:        a.readyChecks,
		Events:       a.bus,
	}
	a.failuresUI(&cfg)
	a.storageUI(&cfg) // after failuresUI, which sets the whole FailuresConfig
	a.scheduleUI(&cfg)
	a.jobsUI(&cfg)
	if err := a.dashboardUI(&cfg); err != nil {
		return nil, err
	}
	if a.web, err = ui.New(cfg); err != nil {
		return nil, err
	}
	a.http = newHTTPServer(a.web, log)
	// Shutdown waits for requests to end; an open page's event stream never
	// does by itself.
	a.http.RegisterOnShutdown(a.web.CloseStreams)
	return a, nil
}

// newHTTPServer is the HTTP server serve runs, and bench measures: a
// request's header must arrive within 10 s, an idle keep-alive connection
// is closed after 2 minutes. No WriteTimeout: server-sent event streams
// stay open.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// readyChecks gathers the features' readiness checks for /readyz.
func (a *app) readyChecks(ctx context.Context) []ui.Check {
	var out []ui.Check
	for _, f := range a.ready {
		out = append(out, f(ctx)...)
	}
	return out
}

// start starts the background parts in the documented order; stop stops
// them in reverse. On error, what started is left for stop.
func (a *app) start(ctx context.Context) error {
	var services []lifecycle.Service
	if a.storage.snaps != nil {
		// First, so that it stops last: the last snapshot follows the drain.
		services = append(services, a.storage.snaps)
	}
	services = append(services, lifecycle.Hooks{Name: "lanes",
		OnStart: func(context.Context) error { return a.pool.Start() }, OnStop: a.pool.Stop})
	if a.failures.reconciler != nil {
		services = append(services, a.failures.reconciler)
	}
	if a.schedule.sched != nil {
		services = append(services, a.schedule.sched)
	}
	kickoff, err := a.demoKickoff()
	if err != nil {
		return err
	}
	if kickoff != nil {
		services = append(services, kickoff)
	}
	if w := a.localAIWatch(); w != nil {
		services = append(services, w)
	}
	services = append(services, &changeForwarder{store: a.store, bus: a.bus}, lifecycle.Hooks{Name: "http",
		OnStart: a.serveHTTP, OnStop: a.shutdownHTTP})
	if err := a.running.Start(ctx, services...); err != nil {
		return err
	}
	a.log.Info("conveyor is serving", "addr", "http://"+a.ln.Addr().String(), "data", a.st.DataDir,
		"lanes", len(a.st.Topology.Lanes), "workers", a.st.Topology.Workers())
	return nil
}

// serveHTTP serves on the listener until shutdownHTTP; a.served receives
// why it stopped.
func (a *app) serveHTTP(context.Context) error {
	go func() { a.served <- a.http.Serve(a.ln) }()
	return nil
}

// shutdownHTTP stops taking requests and finishes those in flight (an
// enqueue that was accepted is committed), for at most 10 seconds.
func (a *app) shutdownHTTP(ctx context.Context) error {
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.http.Shutdown(hctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// changeForwarder turns the queue's change notifications into the
// broadcaster's topics (coalesced there).
type changeForwarder struct {
	store *queue.Store
	bus   *events.Bus
	sub   *queue.Subscription
	loop  lifecycle.Loop
}

// Start subscribes to the queue and forwards until Stop or the store
// closes.
func (f *changeForwarder) Start(ctx context.Context) error {
	f.sub = f.store.Subscribe()
	f.loop.Go(context.WithoutCancel(ctx), func(ctx context.Context) {
		for {
			select {
			case _, ok := <-f.sub.C:
				if !ok {
					return
				}
				f.bus.Publish(events.TopicJobs)
				f.bus.Publish(events.TopicMetrics)
			case <-ctx.Done():
				return
			}
		}
	})
	return nil
}

// Stop ends the forwarding and the subscription.
func (f *changeForwarder) Stop(ctx context.Context) error {
	err := f.loop.Stop(ctx)
	if f.sub != nil {
		f.sub.Close()
	}
	return err
}

// addr is the address the server listens on.
func (a *app) addr() string { return a.ln.Addr().String() }

// stop shuts down gracefully: what start started stops in reverse (the
// HTTP server first, finishing the requests in flight; the schedule stops
// firing; the lanes drain), then close releases what newApp opened.
func (a *app) stop(ctx context.Context) error {
	return errors.Join(a.running.Stop(ctx), a.close(ctx))
}

// close releases what newApp opened, in reverse order.
func (a *app) close(ctx context.Context) error {
	return a.opened.Stop(ctx)
}

// privateDir creates dir (mode 0700) or, when it exists with permissions for
// its group or others, takes them away and returns the mode it had.
func privateDir(dir string) (was fs.FileMode, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, fmt.Errorf("data directory: %w", err)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return 0, nil
	}
	if err := os.Chmod(dir, perm&^0o077); err != nil {
		return 0, fmt.Errorf("data directory %s is open to other users (mode %v) and cannot be made private: %w", dir, perm, err)
	}
	return perm, nil
}

// loadToken returns the API token: CONVEYOR_TOKEN when set, else the one in the
// data directory, generated (mode 0600) and printed once on first start. A
// token file its group or others can read (or write) is refused: the token
// may have been read, so the operator decides (a new token, or chmod).
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
		if fi, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("token: %w", err)
		} else if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return "", fmt.Errorf("token file %s is open to other users (mode %v), so the token may have been read: "+
				"delete the file to get a new token, or run chmod 600 %s to keep this one", path, perm, path)
		}
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
	if err := durable.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	fmt.Fprintf(out, "Generated the API token (kept in %s, mode 0600; shown only now):\n\n    %s\n\n"+
		"Use it as \"Authorization: Bearer <token>\", or set CONVEYOR_TOKEN to choose your own.\n", path, tok)
	return tok, nil
}
