package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"time"
)

// cmdServe runs the appliance until ctx ends (SIGINT or SIGTERM), then drains.
func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	st, err := serveSettings(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(st.LogFormat, st.LogLevel, stderr)
	a, err := newApp(ctx, st, log, stdout, getenv)
	if err != nil {
		return err
	}
	if err := a.start(ctx); err != nil {
		a.stop(context.Background())
		return err
	}
	var served error
	select {
	case <-ctx.Done():
		log.Info("stopping: running jobs may finish", "timeout", st.ShutdownTimeout)
	case served = <-a.served:
		log.Error("http server stopped", "err", served)
	}
	// The lanes' own shutdown timeout bounds the drain; this bound only guards
	// against a wedged disk.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), st.ShutdownTimeout+time.Minute)
	defer cancel()
	err = a.stop(stopCtx)
	if served != nil && !errors.Is(served, http.ErrServerClosed) {
		return errors.Join(served, err)
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}
