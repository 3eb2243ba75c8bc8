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
	"conveyor/queue"
	"conveyor/ui"
)

// Files in the data directory.
const (
	queueFile = "queue.bolt"
	tokenFile = "token"
)

// app is the wired appliance: what `serve` runs and what end-to-end tests and
// `bench` build too.
type app struct {
	st      settings
	log     *slog.Logger
	store   *queue.Store
	reg     *lanes.Registry
	pool    *lanes.Pool
	web     *ui.Server
	http    *http.Server
	ln      net.Listener
	token   string
	execLog *lanes.ExecLog
	served  chan error
}

// newApp opens the store, builds the lanes and the HTTP server and binds the
// listener; start starts the work. On error everything opened is closed.
func newApp(st settings, log *slog.Logger, tokenOut io.Writer, getenv func(string) string) (a *app, err error) {
	a = &app{st: st, log: log, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.close()
			a = nil
		}
	}()
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
	a.reg = lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(a.reg); err != nil {
		return nil, err
	}
	popts := lanes.Options{ShutdownTimeout: st.ShutdownTimeout, Logger: log.With("part", "lanes")}
	if st.ExecLog != "" {
		if a.execLog, err = lanes.OpenExecLog(st.ExecLog); err != nil {
			return nil, err
		}
		popts.Middleware = append(popts.Middleware, a.execLog.Middleware())
	}
	if a.pool, err = lanes.New(a.store, a.reg, st.Topology, popts); err != nil {
		return nil, err
	}
	if a.ln, err = net.Listen("tcp", st.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", st.Listen, err)
	}
	a.web, err = ui.New(ui.Config{
		Store: a.store, Registry: a.reg, Topology: st.Topology, Pool: a.pool, Token: a.token,
		AllowedHosts: ui.HostsFor(a.ln.Addr().String()), Logger: log.With("part", "http"),
		MaxBodyBytes: int64(a.store.MaxArgsBytes()) + 64<<10,
	})
	if err != nil {
		return nil, err
	}
	// No WriteTimeout: server-sent event streams stay open.
	a.http = &http.Server{Handler: a.web, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return a, nil
}

// start starts the lanes and the HTTP server.
func (a *app) start() error {
	if err := a.pool.Start(); err != nil {
		return err
	}
	go func() { a.served <- a.http.Serve(a.ln) }()
	a.log.Info("conveyor is serving", "addr", "http://"+a.ln.Addr().String(), "data", a.st.DataDir,
		"lanes", len(a.st.Topology.Lanes), "workers", a.st.Topology.Workers())
	return nil
}

// addr is the address the server listens on.
func (a *app) addr() string { return a.ln.Addr().String() }

// stop shuts down gracefully: the HTTP server stops taking requests and
// finishes those in flight (an enqueue that was accepted is committed), the
// lanes drain, and the store closes.
func (a *app) stop(ctx context.Context) error {
	var errs []error
	if a.http != nil {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.http.Shutdown(hctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	if a.pool != nil {
		if err := a.pool.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, a.close())
	return errors.Join(errs...)
}

// close releases what newApp opened.
func (a *app) close() error {
	var errs []error
	if a.ln != nil {
		a.ln.Close()
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
