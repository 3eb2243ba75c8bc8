package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a stand-in local AI microservice
// (see TestHelperProcess).
const helperEnv = "CONVEYOR_OPS_HELPER"

// TestHelperProcess is not a test: started with helperEnv=serve, the test
// binary serves /health on -addr until SIGTERM (ignored with -ignore-term),
// after writing its pid to -pidfile. Flags follow "--".
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "serve" {
		t.Skip("helper process for the supervisor tests")
	}
	args := os.Args[slices.Index(os.Args, "--")+1:]
	fs := flag.NewFlagSet("helper", flag.ExitOnError)
	addr := fs.String("addr", "", "listen address")
	pidfile := fs.String("pidfile", "", "write the pid here once listening")
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM")
	fs.Parse(args)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			os.Exit(0)
		}()
	}
	if *pidfile != "" {
		tmp := *pidfile + ".tmp"
		os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o600)
		os.Rename(tmp, *pidfile)
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	os.Exit(0)
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a free loopback port below the kernel's ephemeral range,
// so no other socket is handed it while the helper starts.
func freePort(t *testing.T) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if portsUsed[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatal("no free port")
	return 0
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// helperCmd is the shell text that runs the helper service; prefix goes
// before the program ("exec ", "setsid ").
func helperCmd(t *testing.T, prefix string, flags ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(flags))
	for i, f := range flags {
		quoted[i] = shellQuote(f)
	}
	return fmt.Sprintf("export %s=serve; %s%s -test.run='^TestHelperProcess$' -- %s", helperEnv, prefix, shellQuote(exe), strings.Join(quoted, " "))
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fixture is one supervisor test's world: a data directory, a healthy Ollama
// stand-in and a port for the microservice.
type fixture struct {
	t      *testing.T
	dir    string
	port   int
	cfg    LocalAIConfig
	ollama *healthServer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), port: freePort(t), ollama: newHealthServer(t, 200, nil)}
	f.cfg = LocalAIConfig{
		URL:          fmt.Sprintf("http://127.0.0.1:%d", f.port),
		OllamaURL:    f.ollama.URL,
		StartTimeout: 30 * time.Second,
	}
	return f
}

func (f *fixture) addr() string { return fmt.Sprintf("127.0.0.1:%d", f.port) }

// supervisor builds a Supervisor for f.cfg and stops what it owns at the end.
func (f *fixture) supervisor(opts ...SupervisorOption) *Supervisor {
	f.t.Helper()
	opts = append([]SupervisorOption{WithHealthPoll(10 * time.Millisecond), WithStopGrace(5 * time.Second)}, opts...)
	s := NewSupervisor(f.cfg, f.dir, testLogger(f.t), opts...)
	f.t.Cleanup(func() {
		ctx := context.WithoutCancel(f.t.Context())
		if err := s.Stop(ctx); err != nil && !errors.Is(err, ErrNotOwned) {
			f.t.Errorf("cleanup Stop: %v", err)
		}
		s.childMu.Lock()
		ch := s.child
		s.childMu.Unlock()
		s.waitChild(ctx, ch)
	})
	return s
}

// startOthers starts the helper service the way someone other than Conveyor
// would, and ends it at the end of the test.
func (f *fixture) startOthers() *exec.Cmd {
	f.t.Helper()
	exe, _ := os.Executable()
	pidfile := filepath.Join(f.t.TempDir(), "others.pid")
	cmd := exec.Command(exe, "-test.run=^TestHelperProcess$", "--", "-addr", f.addr(), "-pidfile", pidfile)
	cmd.Env = append(os.Environ(), helperEnv+"=serve")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitFile(f.t, pidfile)
	return cmd
}

// waitFile polls for path to exist (a helper writes it once listening).
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	poll(t, "file "+path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	return string(b)
}

// poll checks cond every few milliseconds until it holds; waitLimit is a
// deadlock guard, not a timing assertion.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func alive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.alive()
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestEnsureNothingConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := NewSupervisor(LocalAIConfig{}, dir, testLogger(t))
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatalf("fresh machine: Ensure = %v", err)
	}
	st := s.Status(t.Context())
	if st.Required || st.Healthy || st.Owned || len(st.Results) != 0 || !strings.Contains(st.Note, "LOCAL_AI_URL is not set") {
		t.Errorf("Status = %+v", st)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Ensure wrote to the data directory: %v", entries)
	}
	if err := s.Start(t.Context()); !errors.Is(err, ErrNotRequired) {
		t.Errorf("Start = %v, want ErrNotRequired", err)
	}
	if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Stop = %v, want ErrNotOwned", err)
	}

	// The microservice switched off: nothing is checked, even at a dead URL.
	off := false
	s = NewSupervisor(LocalAIConfig{URL: "http://127.0.0.1:1", UseMicroservice: &off}, dir, testLogger(t))
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatalf("USE_LOCAL_AI_MICROSERVICE=false: Ensure = %v", err)
	}
	if st := s.Status(t.Context()); !strings.Contains(st.Note, "USE_LOCAL_AI_MICROSERVICE=false") {
		t.Errorf("Note = %q", st.Note)
	}
}

func TestEnsureHealthyStartsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	micro := newHealthServer(t, 200, nil)
	marker := filepath.Join(f.dir, "started")
	f.cfg.URL = micro.URL
	f.cfg.StartCommand = "touch " + shellQuote(marker)
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the start command ran although local AI was healthy")
	}
	if st := s.Status(t.Context()); !st.Healthy || st.Owned {
		t.Errorf("Status = %+v", st)
	}
}

func TestEnsureFailsFast(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // nothing listens on f.port
	refused := fmt.Sprintf("local AI microservice at http://127.0.0.1:%d/health: ", f.port)
	sick := newHealthServer(t, 503, nil)
	brokenOllama := newHealthServer(t, 500, nil)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newSlowServer(t, release)

	tests := []struct {
		name     string
		edit     func(*LocalAIConfig)
		ctx      func() context.Context
		cause    error
		contains []string
	}{
		{
			name:  "refused, auto without a start command",
			edit:  func(*LocalAIConfig) {},
			cause: ErrNoStartCommand,
			contains: []string{refused, "connection refused", "LOCAL_AI_START_COMMAND is not set",
				"START_LOCAL_AI=auto or true", "USE_LOCAL_AI_MICROSERVICE=false"},
		},
		{
			name:     "refused, START_LOCAL_AI=false",
			edit:     func(c *LocalAIConfig) { c.Start = StartNever; c.StartCommand = "exit 1" },
			cause:    ErrStartDisabled,
			contains: []string{refused, "connection refused", "START_LOCAL_AI=false", "keeps the AI lanes closed"},
		},
		{
			name:     "microservice answers 503",
			edit:     func(c *LocalAIConfig) { c.URL = sick.URL },
			cause:    ErrNoStartCommand,
			contains: []string{"local AI microservice at " + sick.URL + "/health: 503 Service Unavailable: model store broken (try again)"},
		},
		{
			name:     "Ollama broken",
			edit:     func(c *LocalAIConfig) { c.URL = newHealthServer(t, 200, nil).URL; c.OllamaURL = brokenOllama.URL },
			cause:    ErrNoStartCommand,
			contains: []string{"Ollama at " + brokenOllama.URL + "/api/tags: 500 Internal Server Error"},
		},
		{
			name: "slow microservice",
			edit: func(c *LocalAIConfig) { c.URL = slow.URL; c.Start = StartNever },
			ctx: func() context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			cause:    ErrStartDisabled,
			contains: []string{"local AI microservice at " + slow.URL + "/health: ", "deadline exceeded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.cfg
			tt.edit(&cfg)
			s := NewSupervisor(cfg, t.TempDir(), testLogger(t))
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			err := s.Ensure(ctx)
			var se *StartError
			if !errors.As(err, &se) || !errors.Is(err, tt.cause) {
				t.Fatalf("Ensure = %v, want a *StartError wrapping %v", err, tt.cause)
			}
			t.Log(err)
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("message lacks %q:\n%s", c, err)
				}
			}
			if strings.Contains(err.Error(), "Ollama") != strings.Contains(tt.name, "Ollama") {
				t.Errorf("message mentions a healthy service, or misses a sick one:\n%s", err)
			}
		})
	}
}

func newHTTPServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newSlowServer(t *testing.T, release chan struct{}) *healthServer {
	hs := &healthServer{}
	hs.Server = newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	return hs
}

func TestStartForegroundThenStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.StartCommand = helperCmd(t, "exec ", "-addr", f.addr())
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := s.Status(t.Context())
	if !st.Healthy || !st.Owned || st.Mode != ModeForeground || st.PID <= 0 || st.PGID != st.PID || st.Since.IsZero() {
		t.Fatalf("Status = %+v", st)
	}
	fi, err := os.Stat(filepath.Join(f.dir, OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ownership record mode %v, want 0600", fi.Mode().Perm())
	}
	if !alive(st.PID) {
		t.Fatal("service not running")
	}

	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if alive(st.PID) {
		t.Error("service still running after Stop")
	}
	if _, err := os.Stat(filepath.Join(f.dir, OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after Stop: %v", err)
	}
	if AllHealthy(s.Check(t.Context())) {
		t.Error("still healthy after Stop")
	}
	if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
		t.Errorf("second Stop = %v, want ErrNotOwned", err)
	}
}

func TestStartBackgroundStopsWithStopCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pidfile := filepath.Join(f.dir, "svc.pid")
	f.cfg.StartCommand = helperCmd(t, "", "-addr", f.addr(), "-pidfile", pidfile) + " >/dev/null 2>&1 &"
	f.cfg.StopCommand = "kill \"$(cat " + shellQuote(pidfile) + ")\""
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc := readPid(t, pidfile)
	st := s.Status(t.Context())
	if !st.Healthy || !st.Owned || st.Mode != ModeBackground {
		t.Fatalf("Status = %+v", st)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if alive(svc) {
		t.Error("service still running after Stop")
	}
	if st := s.Status(t.Context()); st.Owned || st.Healthy {
		t.Errorf("after Stop: %+v", st)
	}
}

// TestStartBackgroundOutsideGroup: the start command's services leave its
// process group (like a daemon or a container); ownership then rests on the
// Conveyor process that ran it.
func TestStartBackgroundOutsideGroup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pidfile := filepath.Join(f.dir, "svc.pid")
	f.cfg.StartCommand = helperCmd(t, "setsid ", "-addr", f.addr(), "-pidfile", pidfile) + " >/dev/null 2>&1 &"
	f.cfg.StopCommand = "kill \"$(cat " + shellQuote(pidfile) + ")\""
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	svc := readPid(t, pidfile)
	t.Cleanup(func() { syscall.Kill(svc, syscall.SIGKILL) }) // only if the test failed before Stop
	rec, err := readRecord(filepath.Join(f.dir, OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	if p, why := s.prove(rec); p != proofOwner {
		t.Fatalf("proof = %v (%s), want the owner process", p, why)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	poll(t, "the service to exit", func() bool { return !alive(svc) })
}

func TestStartCommandFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.StartCommand = "echo 'model weights missing' >&2; exit 3"
	s := f.supervisor()
	err := s.Ensure(t.Context())
	var se *StartError
	if !errors.As(err, &se) || !errors.Is(err, ErrStartCommandFailed) {
		t.Fatalf("Ensure = %v, want ErrStartCommandFailed", err)
	}
	for _, want := range []string{"connection refused", "exit status 3", "model weights missing", LogFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%s", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after a failed start: %v", err)
	}
}

func TestStartTimeoutStopsWhatItStarted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pidfile := filepath.Join(f.dir, "sleep.pid")
	f.cfg.StartCommand = "echo $$ > " + shellQuote(pidfile) + "; exec sleep 600"
	f.cfg.StartTimeout = 300 * time.Millisecond
	s := f.supervisor()
	err := s.Ensure(t.Context())
	if !errors.Is(err, ErrStartTimeout) {
		t.Fatalf("Ensure = %v, want ErrStartTimeout", err)
	}
	if !strings.Contains(err.Error(), "did not pass within 300ms (LOCAL_AI_START_TIMEOUT)") {
		t.Errorf("message:\n%s", err)
	}
	if pid := readPid(t, pidfile); alive(pid) {
		t.Error("the hung start command was left running")
	}
	if _, err := os.Stat(filepath.Join(f.dir, OwnerFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record left after a failed start: %v", err)
	}
}

func TestStartCancelled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pidfile := filepath.Join(f.dir, "sleep.pid")
	f.cfg.StartCommand = "echo $$ > " + shellQuote(pidfile) + "; exec sleep 600"
	s := f.supervisor()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Ensure(ctx) }()
	pid := readPid(t, pidfile)
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "start-up interrupted") {
		t.Fatalf("Ensure = %v, want interrupted", err)
	}
	if alive(pid) {
		t.Error("the start command was left running")
	}
}

func TestStopLeavesOthersServicesAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.StartCommand = helperCmd(t, "exec ", "-addr", f.addr())
	others := f.startOthers()
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(t.Context()); !st.Healthy || st.Owned {
		t.Fatalf("Status = %+v", st)
	}
	if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Stop = %v, want ErrNotOwned", err)
	}
	if err := s.Restart(t.Context()); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Restart = %v, want ErrNotOwned", err)
	}
	if !alive(others.Process.Pid) || !AllHealthy(s.Check(t.Context())) {
		t.Error("someone else's service was stopped")
	}
}

func TestStaleRecordsAreIgnored(t *testing.T) {
	t.Parallel()
	// A process that has exited: its pid is gone.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// Someone else's process, alive.
	other := exec.Command("sleep", "600")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		other.Process.Kill()
		other.Wait()
	})
	ost, err := readProcStat(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := readProcStat(os.Getpid())
	base := ownerRecord{Version: recordVersion, BootID: bootID(), Command: "start-ai", Mode: ModeForeground, StartedAt: time.Now().UTC()}

	tests := []struct {
		name string
		rec  ownerRecord
		raw  string
		why  string
	}{
		{name: "pid gone", rec: with(base, func(r *ownerRecord) { r.PID, r.PGID, r.StartTicks = gone.Process.Pid, gone.Process.Pid, 1 }), why: "is gone"},
		{name: "pid reused", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks = other.Process.Pid, other.Process.Pid, ost.startTicks-1
		}), why: "start time differs"},
		{name: "earlier boot", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.BootID = other.Process.Pid, other.Process.Pid, ost.startTicks, "another-boot"
		}), why: "booted"},
		{name: "background, owner gone", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.Mode = gone.Process.Pid, gone.Process.Pid, 1, ModeBackground
			r.OwnerPID, r.OwnerStartTicks = gone.Process.Pid, 1
		}), why: "Conveyor process that started it"},
		{name: "background, owner pid reused", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.Mode = gone.Process.Pid, gone.Process.Pid, 1, ModeBackground
			r.OwnerPID, r.OwnerStartTicks = os.Getpid(), self.startTicks+1
		}), why: "pid was reused"},
		{name: "corrupt", raw: "{not json"},
		{name: "wrong version", raw: `{"version": 99, "pid": 1, "pgid": 1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.cfg.StopCommand = "touch " + shellQuote(filepath.Join(f.dir, "stop-ran"))
			s := f.supervisor()
			path := filepath.Join(f.dir, OwnerFile)
			if tt.raw != "" {
				os.WriteFile(path, []byte(tt.raw), 0o600)
			} else if err := s.writeRecord(tt.rec); err != nil {
				t.Fatal(err)
			}
			st := s.Status(t.Context())
			if st.Owned || !strings.Contains(st.Note, tt.why) {
				t.Errorf("Status owned=%v note=%q, want a note containing %q", st.Owned, st.Note, tt.why)
			}
			if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
				t.Errorf("Stop = %v, want ErrNotOwned", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Error("stale record not removed")
			}
			if _, err := os.Stat(filepath.Join(f.dir, "stop-ran")); err == nil {
				t.Error("the stop command ran for a stale record")
			}
			if !alive(other.Process.Pid) {
				t.Fatal("someone else's process was signalled")
			}
		})
	}
}

func with(r ownerRecord, edit func(*ownerRecord)) ownerRecord {
	edit(&r)
	return r
}

// TestSecondProcessStops: `conveyor ai stop` (another Supervisor on the same
// data directory) stops what serve started.
func TestSecondProcessStops(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.StartCommand = helperCmd(t, "exec ", "-addr", f.addr())
	serve := f.supervisor()
	if err := serve.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	serve.childMu.Lock()
	ch := serve.child
	serve.childMu.Unlock()

	cli := NewSupervisor(f.cfg, f.dir, testLogger(t), WithStopGrace(5*time.Second))
	st := cli.Status(t.Context())
	if !st.Owned || st.Mode != ModeForeground {
		t.Fatalf("CLI Status = %+v", st)
	}
	if err := cli.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	serve.waitChild(t.Context(), ch) // serve reaps its child
	if alive(st.PID) {
		t.Error("service still running")
	}
	if st := serve.Status(t.Context()); st.Owned {
		t.Errorf("serve still sees ownership: %+v", st)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// No exec: the shell stays the group leader and the service, which
	// ignores SIGTERM, is its child in the same group.
	f.cfg.StartCommand = helperCmd(t, "", "-addr", f.addr(), "-ignore-term")
	s := f.supervisor(WithStopGrace(200 * time.Millisecond))
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec, err := readRecord(filepath.Join(f.dir, OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(groupMembers(rec)); n < 1 {
		t.Fatalf("group has %d live processes", n)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if left := groupMembers(rec); len(left) != 0 {
		t.Errorf("processes left in the group: %+v", left)
	}
}

// TestStarterExitingLaterCountsAsBackground: the start command waits until
// the services are up and only then exits 0; from then on the services count
// as started in the background and Stop uses the stop command.
func TestStarterExitingLaterCountsAsBackground(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pidfile := filepath.Join(f.dir, "svc.pid")
	fifo := filepath.Join(f.dir, "go-on")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f.cfg.StartCommand = helperCmd(t, "", "-addr", f.addr(), "-pidfile", pidfile) + " >/dev/null 2>&1 & read line < " + shellQuote(fifo)
	f.cfg.StopCommand = "kill \"$(cat " + shellQuote(pidfile) + ")\""
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(t.Context()); st.Mode != ModeForeground {
		t.Fatalf("while the starter runs: %+v", st)
	}
	s.childMu.Lock()
	ch := s.child
	s.childMu.Unlock()
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitChild(t.Context(), ch)
	st := s.Status(t.Context())
	if !st.Owned || st.Mode != ModeBackground {
		t.Fatalf("after the starter exited 0: %+v", st)
	}
	svc := readPid(t, pidfile)
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if alive(svc) {
		t.Error("service still running after Stop")
	}
}

// TestSlowAndFlappingHealthWhileStarting: the start command returns at once
// and the service answers 503 a few times (slow to load) or alternates
// (flapping) before it is up; Ensure waits it out, and the services count as
// started in the background.
func TestSlowAndFlappingHealthWhileStarting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		answer func(n int32) int
	}{
		{"slow", func(n int32) int { return map[bool]int{true: 503, false: 200}[n <= 5] }},
		{"flapping", func(n int32) int { return map[bool]int{true: 503, false: 200}[n%2 == 1 || n < 4] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var hits atomicCounter
			micro := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.answer(hits.add()))
			}))
			marker := filepath.Join(f.dir, "stopped")
			f.cfg.URL = micro.URL
			f.cfg.StartCommand = "true"
			f.cfg.StopCommand = "touch " + shellQuote(marker)
			s := f.supervisor()
			if err := s.Ensure(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := hits.load(); n < 4 {
				t.Errorf("healthy after %d checks, before the service was up", n)
			}
			// Health may pass before "true" has exited; the reaper then
			// rewrites the record when it exits 0.
			poll(t, "the record to say background", func() bool {
				rec, err := readRecord(filepath.Join(f.dir, OwnerFile))
				return err == nil && rec.Mode == ModeBackground
			})
			if err := s.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Error("the stop command did not run")
			}
		})
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int32
}

func (c *atomicCounter) add() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

func (c *atomicCounter) load() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestWatchReportsFlips(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	micro := newHealthServer(t, 200, nil)
	f.cfg.URL = micro.URL
	s := f.supervisor()
	type event struct {
		healthy bool
		n       int
	}
	events := make(chan event, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, 5*time.Millisecond, func(healthy bool, results []HealthResult) {
			events <- event{healthy, len(results)}
		})
	}()
	next := func() event {
		select {
		case e := <-events:
			return e
		case <-time.After(waitLimit):
			t.Fatal("no callback")
		}
		return event{}
	}
	if e := next(); !e.healthy || e.n != 2 {
		t.Fatalf("first callback %+v", e)
	}
	micro.status.Store(503)
	if e := next(); e.healthy {
		t.Fatalf("after going down: %+v", e)
	}
	micro.status.Store(200)
	if e := next(); !e.healthy {
		t.Fatalf("after coming back: %+v", e)
	}
	cancel()
	<-done
	select {
	case e := <-events:
		t.Errorf("callback without a flip: %+v", e)
	default:
	}
}

func TestWatchNotRequired(t *testing.T) {
	t.Parallel()
	s := NewSupervisor(LocalAIConfig{}, t.TempDir(), testLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, time.Millisecond, func(healthy bool, results []HealthResult) {
			calls++
			if healthy || results != nil {
				t.Errorf("callback(%v, %v)", healthy, results)
			}
		})
	}()
	cancel()
	<-done
	if calls != 1 {
		t.Errorf("%d callbacks, want 1", calls)
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	self, err := readProcStat(os.Getpid())
	if err != nil || self.pid != os.Getpid() || !self.alive() || self.startTicks == 0 || self.pgrp <= 0 {
		t.Fatalf("own stat = %+v, %v", self, err)
	}
	line := "4242 (we (ird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	st, err := parseProcStat([]byte(line))
	if err != nil || st.pid != 4242 || st.state != 'S' || st.pgrp != 4240 || st.startTicks != 987654 {
		t.Errorf("parse = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "4242", "4242 (x)", "x (y) S 1 2", "4242 (x) S 1 notanumber 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("4242 (we (ird) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000"))
	f.Add([]byte("1 () Z 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseProcStat(data)
		if err == nil && st.pid <= 0 {
			t.Fatalf("accepted pid %d", st.pid)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"pid":10,"pgid":10,"start_ticks":5,"owner_pid":2,"owner_start_ticks":1,"command":"x","mode":"foreground","started_at":"2026-02-21T12:00:00Z"}`))
	f.Add([]byte(`{"version":1,"pid":-1}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec ownerRecord
		if err := decodeRecord(data, &rec); err == nil {
			if rec.PID <= 0 || rec.PGID <= 0 || rec.Version != recordVersion {
				t.Fatalf("accepted %+v", rec)
			}
		}
	})
}
