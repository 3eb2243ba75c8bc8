package localai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"conveyor/internal/testlog"
)

func TestEnsureNothingConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := NewSupervisor(Config{}, dir, testlog.New(t))
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
	s = NewSupervisor(Config{URL: "http://127.0.0.1:1", UseMicroservice: &off}, dir, testlog.New(t))
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
		edit     func(*Config)
		ctx      func() context.Context
		cause    error
		contains []string
	}{
		{
			name:  "refused, auto without a start command",
			edit:  func(*Config) {},
			cause: ErrNoStartCommand,
			contains: []string{refused, "connection refused", "LOCAL_AI_START_COMMAND is not set",
				"START_LOCAL_AI=auto or true", "USE_LOCAL_AI_MICROSERVICE=false"},
		},
		{
			name:     "refused, START_LOCAL_AI=false",
			edit:     func(c *Config) { c.Start = StartNever; c.StartCommand = "exit 1" },
			cause:    ErrStartDisabled,
			contains: []string{refused, "connection refused", "START_LOCAL_AI=false", "keeps the AI lanes closed"},
		},
		{
			name:     "microservice answers 503",
			edit:     func(c *Config) { c.URL = sick.URL },
			cause:    ErrNoStartCommand,
			contains: []string{"local AI microservice at " + sick.URL + "/health: 503 Service Unavailable: model store broken (try again)"},
		},
		{
			name:     "Ollama broken",
			edit:     func(c *Config) { c.URL = newHealthServer(t, 200, nil).URL; c.OllamaURL = brokenOllama.URL },
			cause:    ErrNoStartCommand,
			contains: []string{"Ollama at " + brokenOllama.URL + "/api/tags: 500 Internal Server Error"},
		},
		{
			name: "slow microservice",
			edit: func(c *Config) { c.URL = slow.URL; c.Start = StartNever },
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
			s := NewSupervisor(cfg, t.TempDir(), testlog.New(t))
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

	cli := NewSupervisor(f.cfg, f.dir, testlog.New(t), WithStopGrace(5*time.Second))
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
