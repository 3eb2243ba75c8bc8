package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"conveyor/ops/localai"
	"conveyor/ui"
)

// errNotReady is what `conveyor health` and `conveyor ai status` return
// (exit status 1) when something is not ready; the report says what.
var errNotReady = errors.New("not ready")

// healthTimeout bounds `conveyor health`'s questions to the server.
const healthTimeout = 15 * time.Second

// opsFlags are the flags `health` and `ai` share: where the data directory
// and the configuration file are.
type opsFlags struct {
	data, config *string
	json         *bool
}

func addOpsFlags(fs *flag.FlagSet) opsFlags {
	return opsFlags{
		data:   fs.String("data", "", "the server's data directory (env CONVEYOR_DATA, default ./var)"),
		config: fs.String("config", "", "the server's YAML configuration file, for its local_ai section (env CONVEYOR_CONFIG)"),
		json:   fs.Bool("json", false, "print JSON"),
	}
}

// opsEnv is what `health` and `ai` resolve, as serve would.
type opsEnv struct {
	dataDir string
	listen  string
	localAI localAISettings
}

// resolve reads the configuration file (when there is one) and the
// environment the way serve does.
func (f opsFlags) resolve(getenv func(string) string) (opsEnv, error) {
	var fc fileConfig
	if path := first(*f.config, getenv("CONVEYOR_CONFIG")); path != "" {
		var err error
		if fc, err = loadConfigFile(path); err != nil {
			return opsEnv{}, err
		}
	}
	env := opsEnv{
		dataDir: first(*f.data, getenv("CONVEYOR_DATA"), fc.Data, defaultDataDir),
		listen:  first(getenv("CONVEYOR_LISTEN"), fc.Listen, defaultListen),
	}
	if err := env.localAI.resolve(fc.localAIFile, getenv, env.dataDir); err != nil {
		return opsEnv{}, err
	}
	return env, nil
}

// healthReport is `conveyor health`'s view: supervisor, web and local AI.
type healthReport struct {
	Ready      bool             `json:"ready"`
	Supervisor supervisorReport `json:"supervisor"`
	Web        webReport        `json:"web"`
	LocalAI    localAIReport    `json:"local_ai"`
}

// supervisorReport is the supervisor part: whether a `conveyor serve`
// holds the data directory, and what the local AI ownership record says.
type supervisorReport struct {
	OK      bool   `json:"ok"`
	Detail  string `json:"detail"`
	DataDir string `json:"data_dir"`
	Serving bool   `json:"serving"`
	// The ownership record: local AI services Conveyor started.
	Owned    bool            `json:"owned"`
	PID      int             `json:"pid,omitempty"`
	Mode     localai.RunMode `json:"mode,omitempty"`
	Command  string          `json:"command,omitempty"`
	Since    time.Time       `json:"since,omitzero"`
	OwnerPID int             `json:"owner_pid,omitempty"`
	Note     string          `json:"note,omitempty"`
}

// webReport is the web part: the running server's /readyz.
type webReport struct {
	OK     bool       `json:"ok"`
	URL    string     `json:"url"`
	Detail string     `json:"detail"`
	Checks []ui.Check `json:"checks,omitempty"`
}

// localAIReport is the local AI part: the checks, run now.
type localAIReport struct {
	OK       bool                   `json:"ok"`
	Required bool                   `json:"required"`
	Healthy  bool                   `json:"healthy"`
	Start    localai.StartMode      `json:"start_mode"`
	Detail   string                 `json:"detail"`
	Checks   []localai.HealthResult `json:"checks,omitempty"`
}

// cmdHealth is `conveyor health`: supervisor, web and local AI readiness in
// one view; exit status 1 when something is not ready.
func cmdHealth(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	of := addOpsFlags(fs)
	server := fs.String("server", "", "the server's URL (env CONVEYOR_URL, default from the listen address)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor health [flags]\n\n"+
			"Reports supervisor, web and local AI readiness; exits 1 when something is not ready.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("health takes no arguments (got %q)", fs.Args())}
	}
	env, err := of.resolve(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	sup := localai.NewSupervisor(env.localAI.Config, env.dataDir, nil)

	var rep healthReport
	var wg sync.WaitGroup
	var st localai.Status
	wg.Go(func() { st = sup.Status(ctx) })
	wg.Go(func() {
		rep.Web = webHealth(ctx, first(*server, getenv("CONVEYOR_URL"), serverURL(env.listen)), env.dataDir, getenv)
	})
	wg.Go(func() { rep.Supervisor = supervisorHealth(env.dataDir) })
	wg.Wait()
	rep.Supervisor.Owned, rep.Supervisor.PID, rep.Supervisor.Mode = st.Owned, st.PID, st.Mode
	rep.Supervisor.Command, rep.Supervisor.Since, rep.Supervisor.OwnerPID = st.Command, st.Since, st.OwnerPID
	rep.Supervisor.Note = ownershipNote(st)
	rep.LocalAI = localAIHealth(st)
	rep.Ready = rep.Supervisor.OK && rep.Web.OK && rep.LocalAI.OK

	if *of.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printHealth(stdout, rep)
	}
	if !rep.Ready {
		var parts []string
		for _, p := range []struct {
			name string
			ok   bool
		}{{"supervisor", rep.Supervisor.OK}, {"web", rep.Web.OK}, {"local AI", rep.LocalAI.OK}} {
			if !p.ok {
				parts = append(parts, p.name)
			}
		}
		return fmt.Errorf("%w: %s", errNotReady, strings.Join(parts, ", "))
	}
	return nil
}

// serverURL is the URL of a server listening on listen, reached locally.
func serverURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// supervisorHealth says whether a `conveyor serve` holds the data
// directory: serve keeps an exclusive lock on its queue file while it runs.
func supervisorHealth(dataDir string) supervisorReport {
	rep := supervisorReport{DataDir: dataDir}
	path := filepath.Join(dataDir, queueFile)
	f, err := os.Open(path)
	if err != nil {
		rep.Detail = fmt.Sprintf("no conveyor serve has used %s (%v)", dataDir, errors.Unwrap(err))
		return rep
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case errors.Is(err, syscall.EWOULDBLOCK):
		rep.OK, rep.Serving = true, true
		rep.Detail = "conveyor serve is running on " + dataDir
	case err != nil:
		rep.Detail = fmt.Sprintf("cannot tell whether conveyor serve is running on %s: %v", dataDir, err)
	default:
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		rep.Detail = "no conveyor serve is running on " + dataDir
	}
	return rep
}

// ownershipNote says who started the local AI services.
func ownershipNote(st localai.Status) string {
	var b strings.Builder
	if st.Owned {
		fmt.Fprintf(&b, "local AI started by Conveyor: pid %d (%s) since %s", st.PID, st.Mode, st.Since.Local().Format(time.DateTime))
		if st.OwnerPID != 0 {
			fmt.Fprintf(&b, ", by Conveyor process %d", st.OwnerPID)
		}
	} else {
		b.WriteString("Conveyor has not started local AI (it stops only what it started)")
	}
	if st.Ignored != "" {
		b.WriteString("; " + st.Ignored)
	}
	return b.String()
}

// notRequiredReason says why local AI is not required ("" when it is).
func notRequiredReason(st localai.Status) string {
	if st.Required {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSuffix(st.Note, st.Ignored), "; ")
}

// webHealth asks the running server's /readyz, with the token.
func webHealth(ctx context.Context, base, dataDir string, getenv func(string) string) webReport {
	base = strings.TrimRight(base, "/")
	rep := webReport{URL: base + "/readyz"}
	c, err := newClient(base, dataDir, getenv)
	if err != nil {
		rep.Detail = err.Error()
		return rep
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rep.URL, nil)
	if err != nil {
		rep.Detail = err.Error()
		return rep
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		rep.Detail = fmt.Sprintf("no answer (is conveyor serve running?): %v", err)
		return rep
	}
	defer resp.Body.Close()
	var body struct {
		Ready  bool       `json:"ready"`
		Checks []ui.Check `json:"checks"`
		Error  string     `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		rep.Detail = fmt.Sprintf("%s, and the body is not /readyz's JSON: %v", resp.Status, err)
		return rep
	}
	rep.Checks = body.Checks
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		rep.Detail = fmt.Sprintf("%s: %s (use the server's token: CONVEYOR_TOKEN, or --data)", resp.Status, body.Error)
	case resp.StatusCode == http.StatusOK && body.Ready:
		rep.OK, rep.Detail = true, "ready"
	default:
		var failing []string
		for _, c := range body.Checks {
			if !c.OK {
				failing = append(failing, c.Name+": "+c.Detail)
			}
		}
		rep.Detail = fmt.Sprintf("%s: not ready (%s)", resp.Status, strings.Join(failing, "; "))
	}
	return rep
}

// localAIHealth turns the supervisor's status into the local AI part.
func localAIHealth(st localai.Status) localAIReport {
	rep := localAIReport{OK: st.Healthy || !st.Required, Required: st.Required, Healthy: st.Healthy, Start: st.Start, Checks: st.Results}
	switch {
	case !st.Required:
		rep.Detail = "not required: " + notRequiredReason(st)
	case st.Healthy:
		rep.Detail = "healthy"
	default:
		rep.Detail = "not healthy"
		switch st.Start {
		case localai.StartNever:
			rep.Detail += "; START_LOCAL_AI=false: serve holds the AI lanes closed until it is; start it yourself"
		default:
			rep.Detail += "; AI lanes held closed; start it with `conveyor ai start` (needs LOCAL_AI_START_COMMAND) or yourself"
		}
	}
	return rep
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func latency(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "NOT READY"
}

// printHealth writes the report for people.
func printHealth(w io.Writer, rep healthReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "conveyor health: %s\n\n", map[bool]string{true: "ready", false: "NOT READY"}[rep.Ready])
	fmt.Fprintf(tw, "supervisor\t%s\t%s\n", okWord(rep.Supervisor.OK), rep.Supervisor.Detail)
	if rep.Supervisor.Note != "" {
		fmt.Fprintf(tw, "\t\t%s\n", rep.Supervisor.Note)
	}
	fmt.Fprintf(tw, "web\t%s\t%s: %s\n", okWord(rep.Web.OK), rep.Web.URL, rep.Web.Detail)
	for _, c := range rep.Web.Checks {
		fmt.Fprintf(tw, "\t\t  %s %s: %s\n", mark(c.OK), c.Name, c.Detail)
	}
	fmt.Fprintf(tw, "local AI\t%s\t%s\n", okWord(rep.LocalAI.OK), rep.LocalAI.Detail)
	for _, r := range rep.LocalAI.Checks {
		fmt.Fprintf(tw, "\t\t  %s %s (%s)\n", mark(r.OK), r.String(), latency(r.Latency))
	}
	tw.Flush()
}
