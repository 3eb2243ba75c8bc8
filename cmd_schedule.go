package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"conveyor/cron"
	"conveyor/internal/lifecycle"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/queue"
)

const scheduleUsage = `usage: conveyor schedule check [--config FILE] FILE

Validates a schedule file (sidekiq-cron's YAML format) and prints each entry
by name with its next five fire times (RFC 3339, in the entry's zone). Job
classes and queues this Conveyor does not know are warnings. Exit status 1
when an entry is invalid, 2 for a usage error.

flags:
`

// cmdSchedule runs "conveyor schedule check FILE".
func cmdSchedule(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, scheduleUsage)
			return nil
		}
		fmt.Fprint(stderr, scheduleUsage)
		if len(args) == 0 {
			return &usageError{"schedule: name a subcommand (check)"}
		}
		return &usageError{fmt.Sprintf("schedule: unknown subcommand %q (want check)", args[0])}
	}
	fs := flag.NewFlagSet("schedule check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "the serve configuration file whose lanes decide which queues are known (env CONVEYOR_CONFIG)")
	fs.Usage = func() {
		fmt.Fprint(stderr, scheduleUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return flagError(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &usageError{fmt.Sprintf("schedule check takes one file (got %d arguments)", fs.NArg())}
	}
	file := fs.Arg(0)
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	defer f.Close()

	var serveArgs []string
	if *config != "" {
		serveArgs = []string{"--config", *config}
	}
	st, err := serveSettings(serveArgs, getenv, io.Discard)
	if err != nil {
		return err
	}
	reg, err := knownClasses(ctx, st, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "warning: could not register the classes of every feature (%v); only the built-in classes count as known\n", err)
	}
	known := cron.Known{
		Class: func(name string) bool { _, ok := reg.Lookup(name); return ok },
		Queue: func(name string) bool { _, ok := st.Topology.LaneOf(name); return ok },
		Args:  reg.CheckArgs,
	}
	if !cron.Check(f, known, time.Now(), stdout) {
		return fmt.Errorf("schedule %s is invalid", file)
	}
	return nil
}

// knownClasses registers the job classes the way serve does, up to the
// point where serve's openSchedule reads them: the built-ins, then the
// features' (openStorage, openFailures, registerLocalAIJobs, openJobs — the
// catalog and the declared classes; see newApp). It works in a temporary
// data directory with the storage settings zeroed (no replica), so that
// checking a file never touches the real data or its replica. On error the
// registry still holds the built-in classes.
func knownClasses(ctx context.Context, st settings, getenv func(string) string) (*lanes.Registry, error) {
	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		return reg, err
	}
	dir, err := os.MkdirTemp("", "conveyor-schedule-check-")
	if err != nil {
		return reg, err
	}
	defer os.RemoveAll(dir)
	st.DataDir = dir
	st.Storage = storageSettings{}
	log := slog.New(slog.DiscardHandler)
	a := &app{st: st, log: log, getenv: getenv, reg: reg}
	defer a.close(context.WithoutCancel(ctx))
	if a.store, err = queue.Open(filepath.Join(dir, queueFile), queue.Options{NoSync: true, Logger: log}); err != nil {
		return reg, err
	}
	a.opened.Push(lifecycle.Hooks{Name: "queue store", OnStop: func(context.Context) error { return a.store.Close() }})
	a.bus = events.NewBus(events.Options{Logger: log})
	a.opened.Push(lifecycle.Hooks{Name: "broadcaster", OnStop: func(context.Context) error { a.bus.Close(); return nil }})
	if err := a.openStorage(ctx); err != nil {
		return reg, err
	}
	if err := a.openFailures(ctx); err != nil {
		return reg, err
	}
	if err := a.registerLocalAIJobs(); err != nil {
		return reg, err
	}
	a.st.Jobs.Demo = false
	if err := a.openJobs(ctx); err != nil {
		return reg, err
	}
	return reg, nil
}
