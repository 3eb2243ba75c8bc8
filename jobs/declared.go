package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"conveyor/data"
	"conveyor/internal/procenv"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// Declared classes: job classes an operator declares in the configuration
// file, so that code in any language can be a Conveyor job. A declared
// class is an HTTP call (the connector contract: POST {class, args,
// context, attempt, job_id}, the answer mapped as Bridge maps it) or a
// command run with the job's args as JSON on stdin. It takes part in lanes,
// schedules, failures and retries like a built-in class.

// Bounds and defaults of declared classes.
const (
	DefaultDeclaredTimeout = time.Minute
	MaxDeclaredTimeout     = 24 * time.Hour
	// maxOutput bounds the output a command's run keeps (its start).
	maxOutput = 64 << 10
	// Exit statuses of a declared command that are not runtime failures
	// (sysexits.h): EX_TEMPFAIL is transient, EX_NOPERM authentication.
	ExitTransient      = 75
	ExitAuthentication = 77
)

// DeclaredConfig is one entry of the configuration file's job_classes:
//
//	job_classes:
//	  - name: ResizeImageJob
//	    queue: default          # default: default
//	    max_attempts: 5         # default: the store's (25)
//	    timeout: 2m             # default 1m, at most 24h
//	    args: free-form         # free-form (default) or none
//	    http:
//	      url: http://127.0.0.1:9000/resize
//	      token: secret         # optional bearer token
//	  - name: NightlyReportJob
//	    queue: maintenance
//	    command: [/usr/local/bin/report, --fast]   # args JSON on stdin
//	    pass_env: [REPORT_BUCKET]                   # besides PATH, HOME, LANG…
type DeclaredConfig struct {
	Name        string   `yaml:"name"`
	Queue       string   `yaml:"queue"`
	MaxAttempts int      `yaml:"max_attempts"`
	Timeout     string   `yaml:"timeout"`
	Args        string   `yaml:"args"`
	HTTP        *HTTPRun `yaml:"http"`
	Command     Argv     `yaml:"command"`
	// PassEnv names the variables of Conveyor's environment a command
	// gets besides procenv.Base (never the rest: CONVEYOR_TOKEN, cloud
	// credentials).
	PassEnv Argv `yaml:"pass_env"`
}

// HTTPRun is a declared class run by an HTTP call.
type HTTPRun struct {
	URL   string `yaml:"url"`
	Token string `yaml:"token"`
}

// DeclaredClass is a checked declaration.
type DeclaredClass struct {
	Name        string
	Queue       string
	MaxAttempts int
	Timeout     time.Duration
	FreeForm    bool // args: any JSON; else none
	HTTP        *HTTPRun
	Command     []string
	PassEnv     []string
}

// ParseDeclared checks the configuration file's declarations. An error
// names the entry and the key.
func ParseDeclared(cfgs []DeclaredConfig) ([]DeclaredClass, error) {
	var out []DeclaredClass
	seen := map[string]bool{}
	for i, c := range cfgs {
		bad := func(key, format string, a ...any) error {
			name := c.Name
			if name == "" {
				name = "#" + strconv.Itoa(i+1)
			}
			return fmt.Errorf("job class %s: %s: %s", name, key, fmt.Sprintf(format, a...))
		}
		d := DeclaredClass{Name: c.Name, Queue: c.Queue, MaxAttempts: c.MaxAttempts, Timeout: DefaultDeclaredTimeout,
			HTTP: c.HTTP, Command: c.Command, FreeForm: true}
		switch {
		case !validClassName(c.Name):
			return nil, bad("name", "want letters, digits, _ and :: (got %q)", c.Name)
		case seen[c.Name]:
			return nil, bad("name", "declared twice")
		case c.MaxAttempts < 0 || c.MaxAttempts > queue.MaxAttemptsLimit:
			return nil, bad("max_attempts", "must be 1..%d", queue.MaxAttemptsLimit)
		case (c.HTTP == nil) == (len(c.Command) == 0):
			return nil, bad("http", "give http (a URL to call) or command (a program to run), one of the two")
		}
		seen[c.Name] = true
		if d.Queue == "" {
			d.Queue = "default"
		}
		if c.Timeout != "" {
			t, err := parseDuration(c.Timeout)
			if err != nil || t <= 0 || t > MaxDeclaredTimeout {
				return nil, bad("timeout", "want a duration from 1s to 24h such as 2m (got %q)", c.Timeout)
			}
			d.Timeout = t
		}
		switch c.Args {
		case "", "free-form":
		case "none":
			d.FreeForm = false
		default:
			return nil, bad("args", "want free-form or none (got %q)", c.Args)
		}
		if c.HTTP != nil {
			if err := CheckURL(c.HTTP.URL); err != nil {
				return nil, bad("http.url", "%v", err)
			}
		}
		if len(c.Command) > 0 && strings.TrimSpace(c.Command[0]) == "" {
			return nil, bad("command", "the program is empty")
		}
		if len(c.PassEnv) > 0 && len(c.Command) == 0 {
			return nil, bad("pass_env", "only a command gets an environment")
		}
		for _, name := range c.PassEnv {
			if !procenv.ValidName(name) {
				return nil, bad("pass_env", "%q is not a variable name", name)
			}
		}
		d.PassEnv = slices.Clone(c.PassEnv)
		out = append(out, d)
	}
	return out, nil
}

// Argv is a command and its arguments: a YAML list, or one string split
// on spaces.
type Argv []string

// UnmarshalYAML reads a list or a string.
func (a *Argv) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*a = strings.Fields(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("line %d: command: want a list of strings or one string", n.Line)
	}
	*a = list
	return nil
}

func validClassName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':') {
			return false
		}
	}
	return true
}

// RegisterDeclared registers the declared classes in the catalog's
// registry.
func (c *Catalog) RegisterDeclared(ds []DeclaredClass) error {
	var errs []error
	for _, d := range ds {
		errs = append(errs, c.reg.Register(c.declaredClass(d)))
	}
	return errors.Join(errs...)
}

func (c *Catalog) declaredClass(d DeclaredClass) lanes.Class {
	args := lanes.FreeForm
	if !d.FreeForm {
		args = lanes.NoArgs
	}
	var run func(ctx context.Context, job *queue.Job) error
	if d.HTTP != nil {
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		run = func(ctx context.Context, job *queue.Job) error {
			start := time.Now()
			req := Request{Class: job.Class, Args: job.Args, Context: job.Context, Attempt: job.Attempt, JobID: job.ID}
			if req.Args == nil {
				req.Args = json.RawMessage("null")
			}
			out, err := postJSON(ctx, client, d.HTTP.URL, d.HTTP.Token, nil, req, job.Class, time.Now)
			return c.declaredOutcome(ctx, job, "POST "+d.HTTP.URL, time.Since(start), statusOrOK(err), string(out), err)
		}
	} else {
		run = func(ctx context.Context, job *queue.Job) error { return c.runCommand(ctx, job, d) }
	}
	return lanes.Class{Name: d.Name, Queue: d.Queue, Timeout: d.Timeout, MaxAttempts: d.MaxAttempts, Args: args,
		Handler: lanes.HandlerFunc(run)}
}

func statusOrOK(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return statusOf(err)
}

// declaredOutcome records a declared class's run and returns its outcome.
func (c *Catalog) declaredOutcome(ctx context.Context, job *queue.Job, endpoint string, took time.Duration, status int, output string, err error) error {
	rec := data.JobCall{JobID: job.ID, Endpoint: endpoint, Status: status, Latency: took, Output: output}
	if id, perr := strconv.ParseInt(job.Context[queue.CtxAccountID], 10, 64); perr == nil {
		rec.AccountID = id
	}
	err = c.outcome(ctx, job, err)
	if err != nil {
		rec.Error = err.Error()
		if isSnooze(err) {
			rec.Error = callErrorText(err) + " " + snoozeMark
		}
	}
	c.rec.calls(ctx, rec)
	return err
}

// limitedBuffer keeps the first max bytes written to it and counts the
// rest.
type limitedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	max     int
	dropped int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	room := w.max - w.b.Len()
	if room >= len(p) {
		return w.b.Write(p)
	}
	if room > 0 {
		w.b.Write(p[:room])
	}
	w.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (w *limitedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dropped > 0 {
		return w.b.String() + fmt.Sprintf("\n… (%d more bytes)", w.dropped)
	}
	return w.b.String()
}

// runCommand runs a declared command: the job's args as JSON on stdin,
// CONVEYOR_JOB_ID, CONVEYOR_JOB_CLASS and CONVEYOR_JOB_ATTEMPT in its
// environment with procenv.Base and the class's pass_env (and nothing
// else of Conveyor's: not its token), stdout and stderr captured together. Exit 0 is done;
// ExitTransient (75) transient; ExitAuthentication (77) authentication;
// any other status runtime. The class's timeout (the job's context) kills
// it; that counts as transient.
func (c *Catalog) runCommand(ctx context.Context, job *queue.Job, d DeclaredClass) error {
	cmd := exec.CommandContext(ctx, d.Command[0], d.Command[1:]...)
	stdin := []byte(job.Args)
	if len(stdin) == 0 {
		stdin = []byte("null")
	}
	cmd.Stdin = bytes.NewReader(stdin)
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = procenv.Build(os.LookupEnv, [][2]string{{"CONVEYOR_JOB_ID", strconv.FormatUint(job.ID, 10)},
		{"CONVEYOR_JOB_CLASS", job.Class}, {"CONVEYOR_JOB_ATTEMPT", strconv.Itoa(job.Attempt)}}, d.PassEnv)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	endpoint := "command " + d.Command[0]
	output := out.String()
	if err == nil {
		return c.declaredOutcome(ctx, job, endpoint, took, 0, output, nil)
	}
	tail := lastLine(output)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		err = &CallError{Endpoint: endpoint, Kind: fault.Transient, Message: fmt.Sprintf("killed after %s: %v; %s", took.Round(time.Millisecond), ctx.Err(), tail)}
		return c.declaredOutcome(ctx, job, endpoint, took, -1, output, err)
	case errors.As(err, &ee):
		code := ee.ExitCode()
		kind := fault.Runtime
		switch code {
		case ExitTransient:
			kind = fault.Transient
		case ExitAuthentication:
			kind = fault.Authentication
		}
		err = &CallError{Endpoint: endpoint, Status: code, Kind: kind, Message: fmt.Sprintf("exit status %d: %s", code, tail)}
		return c.declaredOutcome(ctx, job, endpoint, took, code, output, err)
	default:
		// It could not start (no such program, not executable): retrying
		// will not help until the configuration changes.
		err = &CallError{Endpoint: endpoint, Kind: fault.Runtime, Permanent: true, Message: err.Error()}
		return c.declaredOutcome(ctx, job, endpoint, took, -1, output, err)
	}
}

// lastLine is the last non-empty line of a command's output, for its error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if l == "" {
		return "no output"
	}
	return excerpt([]byte(l))
}
