package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/ops/localai"
	"conveyor/queue"
)

// fakeAIEnv makes the test binary act as the local AI services (the
// microservice and Ollama on one address) for a start command; see
// TestFakeAIService.
const fakeAIEnv = "CONVEYOR_TEST_FAKE_AI"

// TestFakeAIService is not a test: started with fakeAIEnv=1, the test binary
// serves /health, /api/version and /api/tags on -addr until SIGTERM, after
// writing its pid to -pidfile. Flags follow "--".
func TestFakeAIService(t *testing.T) {
	if os.Getenv(fakeAIEnv) != "1" {
		t.Skip("the fake local AI service of the local AI tests")
	}
	args := os.Args[slices.Index(os.Args, "--")+1:]
	fs := flag.NewFlagSet("fake-ai", flag.ExitOnError)
	addr := fs.String("addr", "", "listen address")
	pidfile := fs.String("pidfile", "", "write the pid here once listening")
	fs.Parse(args)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake AI:", err)
		os.Exit(3)
	}
	go func() {
		<-term
		os.Exit(0)
	}()
	if *pidfile != "" {
		os.WriteFile(*pidfile+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o600)
		os.Rename(*pidfile+".tmp", *pidfile)
	}
	fmt.Println("fake AI serving on", *addr)
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"status":"ok"}`)
	}))
	os.Exit(0)
}

// fakeAI is the fake service's address and pid file for one test.
type fakeAI struct {
	addr    string
	pidfile string
}

// newFakeAI picks an address and a pid file for a fake service. Whatever
// runs as that service when the test ends is killed: a test that failed
// half-way (its server killed) leaves no service behind.
func newFakeAI(t *testing.T) fakeAI {
	t.Helper()
	f := fakeAI{addr: "127.0.0.1:" + strconv.Itoa(freeAIPort(t)), pidfile: filepath.Join(t.TempDir(), "fake-ai.pid")}
	t.Cleanup(func() {
		b, err := os.ReadFile(f.pidfile)
		if err != nil {
			return
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if pid > 0 && alive(pid) && bytes.Contains(cmdline, []byte(f.pidfile)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return f
}

func (f fakeAI) url() string { return "http://" + f.addr }

// command is the shell text of a start command that runs the fake service
// in the foreground. The server's own marker is unset, or the re-executed
// test binary would act as conveyor.
func (f fakeAI) command(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("unset %s; export %s=1; exec %s -test.run='^TestFakeAIService$' -- -addr %s -pidfile %s",
		beMainEnv, fakeAIEnv, shQuote(self), f.addr, shQuote(f.pidfile))
}

// startOthers runs the fake service the way someone other than Conveyor
// would, and ends it at the end of the test.
func (f fakeAI) startOthers(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", f.command(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	f.pid(t)
	return cmd
}

// pid waits for the fake service to write its pid file.
func (f fakeAI) pid(t *testing.T) int {
	t.Helper()
	ctx := deadline(t)
	for {
		if b, err := os.ReadFile(f.pidfile); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the fake AI service never wrote %s", f.pidfile)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var (
	aiPortMu   sync.Mutex
	aiPortUsed = map[int]bool{}
)

// freeAIPort returns a free loopback port below the kernel's ephemeral
// range, so that no other socket is handed it before the service binds it.
func freeAIPort(t *testing.T) int {
	t.Helper()
	aiPortMu.Lock()
	defer aiPortMu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if aiPortUsed[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		aiPortUsed[p] = true
		return p
	}
	t.Fatal("no free port")
	return 0
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// stubAI is a loopback stand-in for the microservice or Ollama whose answer
// the test sets.
type stubAI struct {
	*httptest.Server
	status atomic.Int32
}

func newStubAI(t *testing.T, status int) *stubAI {
	t.Helper()
	s := &stubAI{}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(s.status.Load()))
		fmt.Fprintln(w, "model warming up")
	}))
	t.Cleanup(s.Close)
	return s
}

// aiEnv is the environment of a server under test: the test process's,
// without any local AI or Conveyor setting it may carry, plus extra.
func aiEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "LOCAL_AI_") || strings.HasPrefix(name, "CONVEYOR_") || name == localai.EnvOllamaURL ||
			name == localai.EnvStart || name == localai.EnvUseMicroservice {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken), extra...)
}

// envFunc turns KEY=value pairs into a getenv for in-process commands.
func envFunc(kv ...string) func(string) string {
	m := map[string]string{}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// startAIServer is startServer with the environment of aiEnv(extra...).
func startAIServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	s, err := launchAIServer(t, dataDir, extra...)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.stderr.String())
	}
	return s
}

// launchAIServer starts `conveyor serve` with the local-AI environment and
// waits for its "serving" line; the error says when it exited first.
func launchAIServer(t *testing.T, dataDir string, extra ...string) (*server, error) {
	t.Helper()
	return launchServer(t, dataDir, aiEnv(extra...))
}

type readyBody struct {
	Ready  bool `json:"ready"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

// readyz returns /readyz's status and its local_ai check.
func (s *server) readyz(t *testing.T) (int, bool, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(deadline(t), http.MethodGet, "http://"+s.addr+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body readyBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, c := range body.Checks {
		if c.Name == "local_ai" {
			return resp.StatusCode, c.OK, c.Detail
		}
	}
	t.Fatalf("/readyz has no local_ai check: %+v", body)
	return 0, false, ""
}

// enqueue enqueues one job over the API and returns its id.
func (s *server) enqueue(t *testing.T, class, q string, args any) uint64 {
	t.Helper()
	body := map[string]any{"class": class}
	if q != "" {
		body["queue"] = q
	}
	if args != nil {
		body["args"] = args
	}
	var out struct {
		ID uint64 `json:"id"`
	}
	if code, err := s.api(deadline(t), http.MethodPost, "/api/v1/jobs", body, &out); err != nil || code != http.StatusCreated {
		t.Fatalf("enqueue %s: %d %v", class, code, err)
	}
	return out.ID
}

// jobState returns a job's state as the API shows it.
func (s *server) jobState(t *testing.T, id uint64) string {
	t.Helper()
	var j struct {
		State string `json:"state"`
	}
	if code, err := s.api(deadline(t), http.MethodGet, fmt.Sprintf("/api/v1/jobs/%d", id), nil, &j); err != nil || code != 200 {
		t.Fatalf("job %d: %d %v", id, code, err)
	}
	return j.State
}

// waitJob polls until the job is in state; the pause between questions is
// not a guess at how long the work takes: the bound is the test's deadline.
func (s *server) waitJob(t *testing.T, id uint64, state string) {
	t.Helper()
	ctx := deadline(t)
	for {
		got := s.jobState(t, id)
		if got == state {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %d is %s, never %s\n%s", id, got, state, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runCmd runs a conveyor command in this process.
func runCmd(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(deadline(t), args, getenv, &out, &errb)
	t.Logf("conveyor %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	return out.String(), err
}

// healthJSON runs `conveyor health --json` against s.
func healthJSON(t *testing.T, s *server, dataDir string, env ...string) (healthReport, error) {
	t.Helper()
	out, err := runCmd(t, envFunc(append(env, "CONVEYOR_TOKEN="+testToken)...),
		"health", "--json", "--data", dataDir, "--server", "http://"+s.addr)
	var rep healthReport
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("health --json: %v\n%s", jerr, out)
	}
	if rep.Ready != (rep.Supervisor.OK && rep.Web.OK && rep.LocalAI.OK) || rep.Ready != (err == nil) {
		t.Fatalf("health: ready=%v with parts %v %v %v and error %v", rep.Ready, rep.Supervisor.OK, rep.Web.OK, rep.LocalAI.OK, err)
	}
	return rep, err
}

// ourParts reports whether the parts of `conveyor health` that local AI
// decides are ready: the supervisor, local AI, and the server's local_ai
// check (the server's other checks belong to other features).
func ourParts(rep healthReport) bool {
	for _, c := range rep.Web.Checks {
		if c.Name == "local_ai" {
			return rep.Supervisor.OK && rep.LocalAI.OK && c.OK
		}
	}
	return false
}

// TestLocalAIFreshMachine: with nothing configured, serve starts, holds
// the AI lanes closed and says why in /readyz and the log; `conveyor
// health` is ready.
func TestLocalAIFreshMachine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startAIServer(t, dir)
	code, ok, detail := srv.readyz(t)
	if !ok || !strings.Contains(detail, "LOCAL_AI_URL is not set") || !strings.Contains(detail, "AI lanes") {
		t.Fatalf("/readyz %d local_ai ok=%v %q", code, ok, detail)
	}
	if !strings.Contains(srv.stderr.String(), "AI lanes held closed") {
		t.Errorf("the log does not say the AI lanes are held:\n%s", srv.stderr.String())
	}
	held := srv.enqueue(t, "SleepJob", "ai", map[string]int{"ms": 1})
	srv.waitJob(t, srv.enqueue(t, "NoopJob", "", nil), "done")
	if st := srv.jobState(t, held); st != "ready" {
		t.Fatalf("AI job is %s on a machine without local AI", st)
	}
	rep, _ := healthJSON(t, srv, dir)
	if !ourParts(rep) || !rep.Supervisor.Serving || rep.Supervisor.Owned || rep.LocalAI.Required {
		t.Fatalf("health: %+v", rep)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, srv.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, localai.OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ownership record on a fresh machine: %v", err)
	}
}

// TestLocalAIFailsFast: when local AI is required, not healthy, and cannot
// be started, serve exits 1 before any worker starts, with a message that
// says which check failed, what it got and how to fix it.
func TestLocalAIFailsFast(t *testing.T) {
	t.Parallel()
	ollama := newStubAI(t, 200)
	closed := "http://" + newFakeAI(t).addr // nothing listens there
	sleeper := filepath.Join(t.TempDir(), "sleeper.pid")
	for _, tc := range []struct {
		name  string
		env   []string
		want  []string
		after func(t *testing.T)
	}{
		{name: "no start command", want: []string{
			"local AI start-up check failed", "local AI microservice at " + closed + "/health", "connection refused",
			"LOCAL_AI_START_COMMAND is not set", "USE_LOCAL_AI_MICROSERVICE=false"}},
		{name: "start command fails", env: []string{"LOCAL_AI_START_COMMAND=echo model missing >&2; exit 3"}, want: []string{
			"local AI microservice at " + closed, `the start command "echo model missing >&2; exit 3" failed: exit status 3`,
			"its output ends with: model missing", "fix LOCAL_AI_START_COMMAND"}},
		{name: "never healthy", env: []string{"LOCAL_AI_START_TIMEOUT=1", "LOCAL_AI_START_COMMAND=echo $$ > " + shQuote(sleeper) + "; exec sleep 600"}, want: []string{
			"local AI microservice at " + closed, "did not pass within 1s (LOCAL_AI_START_TIMEOUT)", "raise LOCAL_AI_START_TIMEOUT"},
			after: func(t *testing.T) {
				b, err := os.ReadFile(sleeper)
				if err != nil {
					t.Fatalf("the start command did not run: %v", err)
				}
				if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); alive(pid) {
					t.Errorf("the start command that never got healthy (pid %d) is still running", pid)
				}
			}},
		{name: "start forced without a command", env: []string{"START_LOCAL_AI=true"}, want: []string{
			`LOCAL_AI_START_COMMAND="": required when START_LOCAL_AI=true`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := append([]string{"LOCAL_AI_URL=" + closed, "OLLAMA_URL=" + ollama.URL}, tc.env...)
			srv, err := launchAIServer(t, t.TempDir(), env...)
			if err == nil {
				t.Fatalf("serve started:\n%s", srv.stderr.String())
			}
			exit := <-srv.exited
			var ee *exec.ExitError
			if !errors.As(exit, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1", exit)
			}
			out := srv.stderr.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("message lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "Ollama at") {
				t.Errorf("the message blames Ollama, which is healthy:\n%s", out)
			}
			if tc.after != nil {
				tc.after(t)
			}
		})
	}
}

// TestLocalAIStartThenHealthyAndStop: serve starts the services with the
// start command, waits for health, serves with the AI lanes open, and on
// SIGTERM stops what it started.
func TestLocalAIStartThenHealthyAndStop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ai := newFakeAI(t)
	env := []string{"LOCAL_AI_URL=" + ai.url(), "OLLAMA_URL=" + ai.url(), "LOCAL_AI_START_COMMAND=" + ai.command(t)}
	srv := startAIServer(t, dir, env...)
	pid := ai.pid(t)
	if !alive(pid) {
		t.Fatal("the fake service is not running")
	}
	if !strings.Contains(srv.stderr.String(), `msg="local AI started"`) {
		t.Errorf("no start in the log:\n%s", srv.stderr.String())
	}
	code, ok, detail := srv.readyz(t)
	if !ok || !strings.HasPrefix(detail, "healthy: local AI microservice 200 OK, Ollama 200 OK") {
		t.Fatalf("/readyz %d local_ai ok=%v %q", code, ok, detail)
	}
	srv.waitJob(t, srv.enqueue(t, "SleepJob", "ai_ocr_queue", map[string]int{"ms": 1}), "done")

	rep, _ := healthJSON(t, srv, dir, env...)
	if !ourParts(rep) || !rep.Supervisor.Owned || rep.Supervisor.PID != pid || rep.Supervisor.Mode != localai.ModeForeground ||
		rep.Supervisor.OwnerPID != srv.cmd.Process.Pid || !rep.LocalAI.Healthy || len(rep.LocalAI.Checks) != 2 {
		t.Fatalf("health: %+v", rep)
	}
	text, _ := runCmd(t, envFunc(append(env, "CONVEYOR_TOKEN="+testToken)...), "health", "--data", dir, "--server", "http://"+srv.addr)
	for _, want := range []string{fmt.Sprintf("local AI started by Conveyor: pid %d (foreground)", pid), "✓ local_ai: healthy",
		"✓ local AI microservice at " + ai.url() + "/health: 200 OK", "✓ Ollama at " + ai.url() + "/api/version: 200 OK"} {
		if !strings.Contains(text, want) {
			t.Errorf("health text lacks %q:\n%s", want, text)
		}
	}

	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, srv.stderr.String())
	}
	if alive(pid) {
		t.Error("serve left the local AI service it started running")
	}
	if _, err := os.Stat(filepath.Join(dir, localai.OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ownership record left after stop: %v", err)
	}
}

// TestLocalAILeavesOthersServicesAlone: services someone else started are
// used, never stopped, and a stale ownership record is ignored; `conveyor
// ai stop` refuses too.
func TestLocalAILeavesOthersServicesAlone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ai := newFakeAI(t)
	ai.startOthers(t)
	pid := ai.pid(t)

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf(`{"version":1,"pid":%d,"pgid":%d,"start_ticks":1,"owner_pid":%[1]d,"command":"old start","mode":"foreground","started_at":"2026-01-01T00:00:00Z"}`,
		gone.Process.Pid, gone.Process.Pid)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, localai.OwnerFile), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	// A start command is configured, but the services are healthy: nothing
	// is started (a second copy could not bind the address anyway).
	other := newFakeAI(t)
	env := []string{"LOCAL_AI_URL=" + ai.url(), "OLLAMA_URL=" + ai.url(), "LOCAL_AI_START_COMMAND=" + other.command(t)}
	srv := startAIServer(t, dir, env...)
	if _, err := os.Stat(other.pidfile); err == nil {
		t.Fatal("serve started a second copy of healthy services")
	}
	rep, _ := healthJSON(t, srv, dir, env...)
	if !ourParts(rep) || rep.Supervisor.Owned || !strings.Contains(rep.Supervisor.Note, "stale ownership record ignored") {
		t.Fatalf("health: %+v", rep)
	}
	getenv := envFunc(env...)
	if _, err := runCmd(t, getenv, "ai", "stop", "--data", dir); !errors.Is(err, localai.ErrNotOwned) {
		t.Errorf("ai stop of someone else's services: %v, want ErrNotOwned", err)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, srv.stderr.String())
	}
	if !alive(pid) {
		t.Fatal("serve stopped services it did not start")
	}
	if _, err := os.Stat(filepath.Join(dir, localai.OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale ownership record kept: %v", err)
	}
}

// TestLocalAIHoldsLanesUntilHealthy: with START_LOCAL_AI=false and the
// microservice failing, serve starts with the AI lanes held closed and says
// so in /readyz; an AI job waits in ready while other jobs run, and runs
// once the check job sees the service healthy.
func TestLocalAIHoldsLanesUntilHealthy(t *testing.T) {
	t.Parallel()
	micro, ollama := newStubAI(t, 503), newStubAI(t, 200)
	srv := startAIServer(t, t.TempDir(), "LOCAL_AI_URL="+micro.URL, "OLLAMA_URL="+ollama.URL, "START_LOCAL_AI=false",
		"LOCAL_AI_WATCH_INTERVAL=1h") // the check job, not the watch, sees the recovery
	if !strings.Contains(srv.stderr.String(), "AI lanes held closed until it is") {
		t.Errorf("the log does not say the AI lanes are held:\n%s", srv.stderr.String())
	}
	code, ok, detail := srv.readyz(t)
	if code != http.StatusServiceUnavailable || ok || !strings.Contains(detail, "local AI microservice at "+micro.URL+"/health: 503 Service Unavailable") ||
		!strings.Contains(detail, "AI lanes held closed") {
		t.Fatalf("/readyz %d local_ai ok=%v %q", code, ok, detail)
	}
	held := []uint64{
		srv.enqueue(t, "SleepJob", "ai_face_queue", map[string]int{"ms": 1}),
		srv.enqueue(t, "SleepJob", "frame_generation", map[string]int{"ms": 1}),
	}
	srv.waitJob(t, srv.enqueue(t, localai.HealthJob, "", nil), "done")
	srv.waitJob(t, srv.enqueue(t, "NoopJob", "", nil), "done")
	for _, id := range held {
		if st := srv.jobState(t, id); st != "ready" {
			t.Fatalf("AI job %d is %s while local AI is down", id, st)
		}
	}

	micro.status.Store(200)
	srv.waitJob(t, srv.enqueue(t, localai.HealthJob, "", nil), "done")
	for _, id := range held {
		srv.waitJob(t, id, "done")
	}
	if _, ok, detail := srv.readyz(t); !ok {
		t.Fatalf("/readyz local_ai after recovery: %q", detail)
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, srv.stderr.String())
	}
}

// TestLocalAIWatchFollowsFlaps: between runs of the check job, serve's
// health watch closes the AI lanes when the microservice starts failing and
// opens them when it recovers; /readyz follows.
func TestLocalAIWatchFollowsFlaps(t *testing.T) {
	t.Parallel()
	micro, ollama := newStubAI(t, 200), newStubAI(t, 200)
	srv := startAIServer(t, t.TempDir(), "LOCAL_AI_URL="+micro.URL, "OLLAMA_URL="+ollama.URL, "START_LOCAL_AI=false",
		"LOCAL_AI_WATCH_INTERVAL=20ms")
	waitReady := func(want bool) {
		t.Helper()
		ctx := deadline(t)
		for {
			code, ok, detail := srv.readyz(t)
			if ok == want && (want || code == http.StatusServiceUnavailable) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("/readyz never became ok=%v: %d %q", want, code, detail)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	for range 2 {
		waitReady(true)
		micro.status.Store(502)
		waitReady(false)
		held := srv.enqueue(t, "SleepJob", "ai_metadata_queue", map[string]int{"ms": 1})
		srv.waitJob(t, srv.enqueue(t, "NoopJob", "", nil), "done")
		if st := srv.jobState(t, held); st != "ready" {
			t.Fatalf("AI job is %s while the microservice fails", st)
		}
		micro.status.Store(200)
		srv.waitJob(t, held, "done")
	}
	if err, _ := srv.terminate(); err != nil {
		t.Fatalf("serve exited with %v\n%s", err, srv.stderr.String())
	}
}

// TestLocalAIOutageIssueInProcess builds the app in this process to read
// the database: an outage opens one AI-outage issue, checks during it add
// occurrences to the same issue, and it is resolved when health returns.
func TestLocalAIOutageIssueInProcess(t *testing.T) {
	t.Parallel()
	micro, ollama := newStubAI(t, 500), newStubAI(t, 200)
	getenv := envFunc("CONVEYOR_TOKEN="+testToken, "LOCAL_AI_URL="+micro.URL, "OLLAMA_URL="+ollama.URL,
		"START_LOCAL_AI=false", "LOCAL_AI_WATCH_INTERVAL=1h")
	st, err := serveSettings([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx := deadline(t)
	a, err := newApp(ctx, st, log, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(ctx); err != nil {
		a.stop(context.WithoutCancel(ctx))
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.stop(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	db := a.storage.db
	issues := func() []*data.Issue {
		t.Helper()
		is, _, err := db.FindIssues(ctx, data.IssueFilter{Source: data.SourceAIOutage})
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	check := func() {
		t.Helper()
		res, err := a.store.Enqueue(ctx, queue.NewJob{Class: localai.HealthJob, Queue: localai.HealthQueue})
		if err != nil {
			t.Fatal(err)
		}
		waitStoreJob(t, a.store, res.ID, queue.StateDone)
	}

	is := issues()
	if len(is) != 1 || is[0].Status != data.IssueOpen || is[0].Class != localai.ServiceMicroservice || is[0].Fingerprint != localai.OutageFingerprint(localai.ServiceMicroservice) {
		t.Fatalf("after the start-up check: %+v", is)
	}
	check()
	check()
	if again := issues(); len(again) != 1 || again[0].ID != is[0].ID || again[0].Occurrences < 3 || again[0].Status != data.IssueOpen {
		t.Fatalf("during the outage: %+v", again)
	}
	latest, err := db.LatestHealth(ctx)
	if err != nil || len(latest) != 2 || latest[0].OK || latest[0].Status != "500 Internal Server Error" || !latest[1].OK {
		t.Fatalf("recorded checks %+v (%v)", latest, err)
	}
	if a.localAI.health.Healthy() {
		t.Fatal("healthy during the outage")
	}

	micro.status.Store(200)
	check()
	is = issues()
	if len(is) != 1 || is[0].Status != data.IssueResolved || is[0].ResolvedBy != data.ResolvedByAuto {
		t.Fatalf("after recovery: %+v", is)
	}
	if !a.localAI.health.Healthy() {
		t.Fatal("not healthy after recovery")
	}
}

// waitStoreJob waits, on the store's change notifications, until job id is
// in state st; the test's deadline bounds it.
func waitStoreJob(t *testing.T, s *queue.Store, id uint64, st queue.State) {
	t.Helper()
	sub := s.Subscribe()
	defer sub.Close()
	ctx := deadline(t)
	for {
		j, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == st {
			return
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			t.Fatalf("job %d (%s) never became %s; it is %s", id, j.Class, st, j.State)
		}
	}
}

// TestAICommands drives `conveyor ai status|start|stop|restart` with a
// real start command.
func TestAICommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ai := newFakeAI(t)
	getenv := envFunc("LOCAL_AI_URL="+ai.url(), "OLLAMA_URL="+ai.url(), "LOCAL_AI_START_COMMAND="+ai.command(t))
	t.Cleanup(func() {
		run(context.Background(), []string{"ai", "stop", "--data", dir}, getenv, io.Discard, io.Discard)
	})

	if _, err := runCmd(t, getenv, "ai", "status", "--data", dir); !errors.Is(err, errNotReady) {
		t.Fatalf("status while down: %v, want errNotReady", err)
	}
	if _, err := runCmd(t, getenv, "ai", "start", "--data", dir); err != nil {
		t.Fatal(err)
	}
	first := ai.pid(t)
	out, err := runCmd(t, getenv, "ai", "status", "--json", "--data", dir)
	var st localai.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || !st.Healthy || !st.Owned || st.PID != first || st.Mode != localai.ModeForeground {
		t.Fatalf("status after start: %v %+v", err, st)
	}

	os.Remove(ai.pidfile)
	if _, err := runCmd(t, getenv, "ai", "restart", "--data", dir); err != nil {
		t.Fatal(err)
	}
	second := ai.pid(t)
	if second == first || alive(first) || !alive(second) {
		t.Fatalf("restart: first pid %d alive=%v, second %d alive=%v", first, alive(first), second, alive(second))
	}
	if _, err := runCmd(t, getenv, "ai", "stop", "--data", dir); err != nil {
		t.Fatal(err)
	}
	if alive(second) {
		t.Fatal("still running after ai stop")
	}
	if _, err := runCmd(t, getenv, "ai", "stop", "--data", dir); !errors.Is(err, localai.ErrNotOwned) {
		t.Errorf("second stop: %v, want ErrNotOwned", err)
	}

	var usage *usageError
	if _, err := runCmd(t, getenv, "ai"); !errors.As(err, &usage) {
		t.Errorf("ai without an action: %v", err)
	}
	if _, err := runCmd(t, getenv, "ai", "reboot"); !errors.As(err, &usage) {
		t.Errorf("ai reboot: %v", err)
	}
	if _, err := runCmd(t, envFunc(), "ai", "start", "--data", dir); !errors.Is(err, localai.ErrNotRequired) {
		t.Errorf("ai start with nothing configured: %v, want ErrNotRequired", err)
	}
	if out, err := runCmd(t, envFunc(), "ai", "status", "--data", dir); err != nil || !strings.Contains(out, "LOCAL_AI_URL is not set") {
		t.Errorf("ai status with nothing configured: %v %q", err, out)
	}
}

// TestHealthNotReady: `conveyor health` exits non-zero, and says why, when
// no server answers and local AI is required but down.
func TestHealthNotReady(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	down := newFakeAI(t) // nothing listens there
	web := newFakeAI(t)
	getenv := envFunc("CONVEYOR_TOKEN="+testToken, "LOCAL_AI_URL="+down.url(), "OLLAMA_URL="+down.url())
	out, err := runCmd(t, getenv, "health", "--data", dir, "--server", web.url())
	if !errors.Is(err, errNotReady) || !strings.Contains(err.Error(), "supervisor, web, local AI") {
		t.Fatalf("health: %v", err)
	}
	for _, want := range []string{"conveyor health: NOT READY", "no conveyor serve has used", "is conveyor serve running?",
		"local AI microservice at " + down.url() + "/health", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestLocalAISettings(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, text string) string {
		path := filepath.Join(t.TempDir(), "conveyor.yml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	file := "local_ai:\n  url: http://127.0.0.1:5000\n  start: false\n  start_timeout: 90\n  use_microservice: yes\n  watch_interval: 2m\n  start_command: bin/local_ai_services start\n"
	for _, tc := range []struct {
		name, file string
		env        []string
		check      func(localAISettings) bool
		err        string
	}{
		{name: "defaults", check: func(s localAISettings) bool {
			c := s.Config
			return !c.Required() && c.HealthPath == "/health" && c.OllamaURL == localai.DefaultOllamaURL && c.Start == localai.StartAuto &&
				c.StartTimeout == 60*time.Second && c.Microservice() && s.WatchInterval == localai.DefaultWatchInterval
		}},
		{name: "file", file: file, check: func(s localAISettings) bool {
			c := s.Config
			return c.Required() && c.URL == "http://127.0.0.1:5000" && c.Start == localai.StartNever && c.StartTimeout == 90*time.Second &&
				c.StartCommand == "bin/local_ai_services start" && s.WatchInterval == 2*time.Minute
		}},
		{name: "environment over file", file: file, env: []string{"LOCAL_AI_URL=http://10.0.0.2:5000", "START_LOCAL_AI=auto",
			"LOCAL_AI_START_TIMEOUT=2m", "USE_LOCAL_AI_MICROSERVICE=false", "LOCAL_AI_WATCH_INTERVAL=5s"}, check: func(s localAISettings) bool {
			c := s.Config
			return !c.Required() && c.URL == "http://10.0.0.2:5000" && c.Start == localai.StartAuto && c.StartTimeout == 2*time.Minute &&
				s.WatchInterval == 5*time.Second
		}},
		{name: "bad file value names the key", file: "local_ai:\n  start: sometimes\n", err: `config: local_ai.start "sometimes": want auto, true or false`},
		{name: "bad env value names the variable", env: []string{"OLLAMA_URL=ftp://x"}, err: `OLLAMA_URL="ftp://x"`},
		{name: "bad watch interval", file: "local_ai:\n  watch_interval: 0s\n", err: "config: local_ai.watch_interval: must be positive"},
		{name: "unknown key", file: "local_ai:\n  ulr: http://x\n", err: "field ulr not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--data", t.TempDir()}
			if tc.file != "" {
				args = append(args, "--config", write(t, tc.file))
			}
			st, err := serveSettings(args, envFunc(tc.env...), io.Discard)
			switch {
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && !tc.check(st.LocalAI):
				t.Fatalf("settings %+v", st.LocalAI)
			}
		})
	}
}

// FuzzLocalAISettings feeds configuration files and environment values to
// the local AI settings: no panic, and whatever is accepted is valid.
func FuzzLocalAISettings(f *testing.F) {
	f.Add("local_ai:\n  url: http://127.0.0.1:5000\n  start: auto\n  start_timeout: 60\n", "", "")
	f.Add("local_ai:\n  start: true\n  start_command: run\n  watch_interval: 1d\n", "90s", "off")
	f.Add("local_ai:\n  url: ftp://x\n", "0", "maybe")
	f.Add("local_ai: [1, 2]\n", "-5s", "TRUE")
	f.Fuzz(func(t *testing.T, file, timeout, start string) {
		var fc fileConfig
		if decodeConfig([]byte(file), &fc) != nil {
			return
		}
		getenv := envFunc("LOCAL_AI_START_TIMEOUT="+timeout, "START_LOCAL_AI="+start)
		var s localAISettings
		if err := s.resolve(fc.localAIFile, getenv, t.TempDir()); err != nil {
			return
		}
		if err := s.Config.Validate(); err != nil {
			t.Fatalf("accepted settings fail Validate: %v (%+v)", err, s.Config)
		}
		if s.WatchInterval <= 0 || s.Config.StartTimeout <= 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}
