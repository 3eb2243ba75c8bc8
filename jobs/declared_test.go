package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"conveyor/jobs"
	"conveyor/lanes"
	"conveyor/ops/fault"
)

func TestParseDeclared(t *testing.T) {
	t.Parallel()
	var cfgs []jobs.DeclaredConfig
	src := `
- name: ShellJob
  queue: maintenance
  max_attempts: 3
  timeout: 90s
  command: /bin/sh -c "exit 0"
- name: HookJob
  args: none
  http: {url: "http://127.0.0.1:9/hook", token: t0k}
- name: ListJob
  command: [/usr/bin/env, printenv]
`
	if err := yaml.Unmarshal([]byte(src), &cfgs); err != nil {
		t.Fatal(err)
	}
	ds, err := jobs.ParseDeclared(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	if d := ds[0]; d.Queue != "maintenance" || d.MaxAttempts != 3 || d.Timeout != 90*time.Second || !d.FreeForm || d.Command[0] != "/bin/sh" {
		t.Errorf("ShellJob %+v", d)
	}
	if d := ds[1]; d.Queue != "default" || d.Timeout != jobs.DefaultDeclaredTimeout || d.FreeForm || d.HTTP.Token != "t0k" {
		t.Errorf("HookJob %+v", d)
	}
	if d := ds[2]; len(d.Command) != 2 || d.Command[1] != "printenv" {
		t.Errorf("ListJob %+v", d)
	}
	for _, c := range []struct {
		cfg  jobs.DeclaredConfig
		want string
	}{
		{jobs.DeclaredConfig{Name: "", Command: jobs.Argv{"x"}}, "name"},
		{jobs.DeclaredConfig{Name: "Bad Name", Command: jobs.Argv{"x"}}, "name"},
		{jobs.DeclaredConfig{Name: "A"}, "give http"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{"x"}, HTTP: &jobs.HTTPRun{URL: "http://x"}}, "give http"},
		{jobs.DeclaredConfig{Name: "A", HTTP: &jobs.HTTPRun{URL: "ftp://x"}}, "http.url"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{"x"}, Timeout: "forever"}, "timeout"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{"x"}, Timeout: "25h"}, "timeout"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{"x"}, MaxAttempts: 1001}, "max_attempts"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{"x"}, Args: "typed"}, "args"},
		{jobs.DeclaredConfig{Name: "A", Command: jobs.Argv{" "}}, "command"},
	} {
		if _, err := jobs.ParseDeclared([]jobs.DeclaredConfig{c.cfg}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %s", c.cfg, err, c.want)
		}
	}
	if _, err := jobs.ParseDeclared([]jobs.DeclaredConfig{{Name: "A", Command: jobs.Argv{"x"}}, {Name: "A", Command: jobs.Argv{"y"}}}); err == nil {
		t.Error("a class declared twice was accepted")
	}
}

// script writes a shell script and returns its path.
func script(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDeclaredCommand: a declared command gets the args on stdin and the
// job in its environment; its exit status maps to the failure kinds, its
// output is recorded, and the class's timeout kills it.
func TestDeclaredCommand(t *testing.T) {
	t.Parallel()
	run := script(t, `read args
echo "job $CONVEYOR_JOB_ID ($CONVEYOR_JOB_CLASS, attempt $CONVEYOR_JOB_ATTEMPT) got $args"
case "$args" in
  *transient*) echo "busy" >&2; exit 75 ;;
  *auth*) echo "denied" >&2; exit 77 ;;
  *broken*) echo "bug" >&2; exit 3 ;;
  *slow*) exec sleep 30 ;;
esac
exit 0
`)
	ds, err := jobs.ParseDeclared([]jobs.DeclaredConfig{
		{Name: "ShellJob", Queue: "maintenance", Command: jobs.Argv{"/bin/sh", run}},
		{Name: "MissingJob", Command: jobs.Argv{filepath.Join(t.TempDir(), "nope")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := jobs.NewRig(t, t.TempDir(), func(o *jobs.Options) {})
	if err := r.Cat.RegisterDeclared(ds); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		args   string
		kind   fault.Kind
		output string
	}{
		{`{"n":1}`, "", `got {"n":1}`},
		{`{"mode":"transient"}`, fault.Transient, "busy"},
		{`{"mode":"auth"}`, fault.Authentication, "denied"},
		{`{"mode":"broken"}`, fault.Runtime, "bug"},
	} {
		j := r.Enqueue(lanes.JobRequest{Class: "ShellJob", Args: json.RawMessage(c.args)})
		err := r.Perform(j)
		var ce *jobs.CallError
		switch {
		case c.kind == "" && err != nil:
			t.Fatalf("%s: %v", c.args, err)
		case c.kind != "" && (!errors.As(err, &ce) || ce.Kind != c.kind || !strings.Contains(err.Error(), c.output)):
			t.Fatalf("%s: %v, want a %s failure naming %q", c.args, err, c.kind, c.output)
		}
		calls, _ := r.DB.JobCalls(ctx, j.ID)
		if len(calls) != 1 || !strings.Contains(calls[0].Output, c.output) || !strings.Contains(calls[0].Output, "ShellJob, attempt 1") {
			t.Fatalf("%s: recorded %+v", c.args, calls)
		}
	}
	// The class's timeout (the job's context, as the lane gives it) kills
	// the command: transient.
	j := r.Enqueue(lanes.JobRequest{Class: "ShellJob", Args: json.RawMessage(`{"mode":"slow"}`)})
	cls, _ := r.Reg.Lookup("ShellJob")
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = cls.Handler.Perform(tctx, j)
	cancel()
	var ce *jobs.CallError
	if !errors.As(err, &ce) || ce.Kind != fault.Transient || !strings.Contains(err.Error(), "killed after") {
		t.Fatalf("a command past its timeout: %v", err)
	}
	// A program that cannot start will not start on a retry either.
	err = r.Perform(r.Enqueue(lanes.JobRequest{Class: "MissingJob"}))
	if !isKilled(err) {
		t.Fatalf("a missing program: %v, want a discard", err)
	}
}

// TestDeclaredCommandEnvironment: a declared command gets the harmless
// base variables, the ones its pass_env names and its job's, never the
// rest of Conveyor's environment (its API token, cloud credentials).
func TestDeclaredCommandEnvironment(t *testing.T) {
	t.Setenv("CONVEYOR_TOKEN", "secret-token")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
	t.Setenv("REPORT_BUCKET", "reports")
	t.Setenv("LANG", "C.UTF-8")
	ds, err := jobs.ParseDeclared([]jobs.DeclaredConfig{
		{Name: "EnvJob", Queue: "maintenance", Command: jobs.Argv{"/usr/bin/env"}, PassEnv: jobs.Argv{"REPORT_BUCKET"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := jobs.NewRig(t, t.TempDir(), func(o *jobs.Options) {})
	if err := r.Cat.RegisterDeclared(ds); err != nil {
		t.Fatal(err)
	}
	j := r.Enqueue(lanes.JobRequest{Class: "EnvJob"})
	if err := r.Perform(j); err != nil {
		t.Fatal(err)
	}
	calls, err := r.DB.JobCalls(context.Background(), j.ID)
	if err != nil || len(calls) != 1 {
		t.Fatalf("calls %+v %v", calls, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(calls[0].Output), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{"REPORT_BUCKET": "reports", "LANG": "C.UTF-8", "PATH": os.Getenv("PATH"),
		"CONVEYOR_JOB_ID": strconv.FormatUint(j.ID, 10), "CONVEYOR_JOB_CLASS": "EnvJob", "CONVEYOR_JOB_ATTEMPT": strconv.Itoa(j.Attempt)}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q in the command's environment, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"CONVEYOR_TOKEN", "AWS_SECRET_ACCESS_KEY"} {
		if _, ok := env[k]; ok {
			t.Errorf("the command got %s", k)
		}
	}
	for _, c := range []struct {
		cfg  jobs.DeclaredConfig
		want string
	}{
		{jobs.DeclaredConfig{Name: "BadEnvJob", Command: jobs.Argv{"/bin/true"}, PassEnv: jobs.Argv{"NOT-A-NAME"}}, `job class BadEnvJob: pass_env: "NOT-A-NAME" is not a variable name`},
		{jobs.DeclaredConfig{Name: "HookJob", HTTP: &jobs.HTTPRun{URL: "http://127.0.0.1:9/x"}, PassEnv: jobs.Argv{"HOME"}}, "job class HookJob: pass_env: only a command gets an environment"},
	} {
		if _, err := jobs.ParseDeclared([]jobs.DeclaredConfig{c.cfg}); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestDeclaredHTTP: a declared HTTP class posts the connector contract and
// maps the answer like the bridge; its answer is recorded.
func TestDeclaredHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req jobs.Request
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		switch {
		case r.Header.Get("Authorization") != "Bearer hook-token":
			w.WriteHeader(401)
		case strings.Contains(string(req.Args), "busy"):
			w.Header().Set("Retry-After", "9")
			w.WriteHeader(503)
		default:
			w.Write([]byte(`{"resized":true,"class":"` + req.Class + `"}`))
		}
	}))
	defer srv.Close()
	ds, err := jobs.ParseDeclared([]jobs.DeclaredConfig{
		{Name: "HookJob", HTTP: &jobs.HTTPRun{URL: srv.URL, Token: "hook-token"}},
		{Name: "NoTokenJob", HTTP: &jobs.HTTPRun{URL: srv.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := jobs.NewRig(t, t.TempDir())
	if err := r.Cat.RegisterDeclared(ds); err != nil {
		t.Fatal(err)
	}
	j := r.Enqueue(lanes.JobRequest{Class: "HookJob", Args: json.RawMessage(`{"w":10}`)})
	if err := r.Perform(j); err != nil {
		t.Fatal(err)
	}
	calls, _ := r.DB.JobCalls(context.Background(), j.ID)
	if len(calls) != 1 || calls[0].Status != 200 || calls[0].Output != `{"resized":true,"class":"HookJob"}` {
		t.Fatalf("recorded %+v", calls)
	}
	if err := r.Perform(r.Enqueue(lanes.JobRequest{Class: "HookJob", Args: json.RawMessage(`{"busy":1}`)})); !isSnooze(err) {
		t.Fatalf("503 with Retry-After: %v, want a snooze", err)
	}
	var ce *jobs.CallError
	if err := r.Perform(r.Enqueue(lanes.JobRequest{Class: "NoTokenJob"})); !errors.As(err, &ce) || ce.Kind != fault.Authentication {
		t.Fatalf("401: %v", err)
	}
}
