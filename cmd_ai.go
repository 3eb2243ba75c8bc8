package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"conveyor/ops/localai"
)

// cmdAI is `conveyor ai status|start|stop|restart`: the local AI services,
// controlled without restarting the workers. Stop and restart touch only
// what Conveyor started.
func cmdAI(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := func(fs *flag.FlagSet) func() {
		return func() {
			fmt.Fprintln(stderr, "usage: conveyor ai status|start|stop|restart [flags]\n\n"+
				"  status   check the local AI services (exit 1 when required and not healthy)\n"+
				"  start    start them with LOCAL_AI_START_COMMAND unless they are healthy\n"+
				"  stop     stop them, only if Conveyor started them\n"+
				"  restart  stop what Conveyor started, then start them\n\nflags:")
			if fs != nil {
				fs.PrintDefaults()
			}
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		usage(nil)()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil
		}
		return &usageError{"ai needs an action: status, start, stop or restart"}
	}
	action := args[0]
	fs := flag.NewFlagSet("ai "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	of := addOpsFlags(fs)
	fs.Usage = usage(fs)
	switch action {
	case "status", "start", "stop", "restart":
	default:
		usage(nil)()
		return &usageError{fmt.Sprintf("ai: unknown action %q (want status, start, stop or restart)", action)}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("ai %s takes no arguments (got %q)", action, fs.Args())}
	}
	env, err := of.resolve(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sup := localai.NewSupervisor(env.localAI.Config, env.dataDir, log)
	switch action {
	case "start":
		err = sup.Start(ctx)
	case "stop":
		err = sup.Stop(ctx)
		if errors.Is(err, localai.ErrNotOwned) {
			err = fmt.Errorf("nothing stopped: %w (Conveyor stops only what it started)", err)
		}
	case "restart":
		err = sup.Restart(ctx)
	}
	if err != nil {
		return err
	}
	if done := map[string]string{"stop": "stopped", "restart": "restarted"}[action]; done != "" && !*of.json {
		fmt.Fprintf(stdout, "local AI %s\n", done)
	}
	st := sup.Status(ctx)
	if *of.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		printAIStatus(stdout, st)
	}
	if action == "status" && st.Required && !st.Healthy {
		return fmt.Errorf("%w: local AI is not healthy", errNotReady)
	}
	return nil
}

// printAIStatus writes `conveyor ai status` for people.
func printAIStatus(w io.Writer, st localai.Status) {
	rep := localAIHealth(st)
	fmt.Fprintf(w, "local AI: %s (START_LOCAL_AI=%s)\n", rep.Detail, st.Start)
	for _, r := range st.Results {
		fmt.Fprintf(w, "  %s %s (%s)\n", mark(r.OK), r.String(), latency(r.Latency))
	}
	fmt.Fprintln(w, ownershipNote(st))
}
