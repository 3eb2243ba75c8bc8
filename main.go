// Command conveyor is a background-job appliance: one binary that queues,
// schedules, runs, retries and explains background jobs on one workstation.
//
//	conveyor serve    run the appliance (queue, lanes, HTTP API)
//	conveyor enqueue  enqueue a job on a running server
//	conveyor bench    measure this machine (temporary data directory)
//	conveyor restore  rebuild a data directory from its replica
//	conveyor schedule check a schedule file
//	conveyor health   report supervisor, web and local AI readiness
//	conveyor ai       control the local AI services
//	conveyor accounts add, list, disable or enable accounts
//	conveyor top      the dashboard in a terminal, live
//	conveyor passwd   hash a dashboard password for the configuration
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() { runMain(context.Background()) }

// runMain is main under a parent context: the end-to-end tests' TestMain
// passes one carrying failpoints (see app_schedule.go).
func runMain(parent context.Context) {
	tuneGC()
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var usage *usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "conveyor:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "conveyor:", err)
		os.Exit(1)
	}
}

// tuneGC trades memory for throughput unless GOGC is set: the writer and the
// lanes allocate short-lived garbage at a high rate (bbolt's nodes, cursors,
// decoded jobs) over a small live heap. Collecting at 4× the live heap instead
// of 2× cut the queue's CPU per job by a third in BenchmarkProcess; bench
// measured 3× (GOGC=300) as fast as 4× within the noise, with the 100,000-job
// run's peak RSS at 86–91 MB against 90–106 MB. The soft limit keeps a runaway
// heap in check.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(300)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(512 << 20)
	}
}

const usageText = `usage: conveyor <command> [flags]

commands:
  serve     run the appliance: the durable queue, the lanes and the HTTP API
  enqueue   enqueue a job on a running server
  bench     measure throughput and latency on a temporary data directory
  restore   rebuild a data directory from its replica
  schedule  check a schedule file ("conveyor schedule check FILE")
  health    report supervisor, web and local AI readiness
  ai        control the local AI services (status, start, stop, restart)
  accounts  add, list, disable or enable accounts on a running server
  top       the dashboard in a terminal, live
  passwd    hash a dashboard password (read from standard input) for the configuration

Run "conveyor <command> --help" for a command's flags.
`

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // --help printed the usage: not an error
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return &usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "enqueue":
		return cmdEnqueue(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return cmdBench(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return cmdRestore(ctx, rest, getenv, stdout, stderr)
	case "schedule":
		return cmdSchedule(ctx, rest, getenv, stdout, stderr)
	case "health":
		return cmdHealth(ctx, rest, getenv, stdout, stderr)
	case "ai":
		return cmdAI(ctx, rest, getenv, stdout, stderr)
	case "accounts":
		return cmdAccounts(ctx, rest, getenv, stdout, stderr)
	case "top":
		return cmdTop(ctx, rest, getenv, stdout, stderr)
	case "passwd":
		return cmdPasswd(ctx, rest, os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprint(stderr, usageText)
		return &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}
