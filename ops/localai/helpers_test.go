package localai

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
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

	"conveyor/internal/testlog"
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

// waitLimit bounds every wait on a channel or a condition in these tests.
// It is a deadlock guard, not a timing assertion: the waits normally end in
// milliseconds.
const waitLimit = 20 * time.Second

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

// fixture is one supervisor test's world: a data directory, a healthy Ollama
// stand-in and a port for the microservice.
type fixture struct {
	t      *testing.T
	dir    string
	port   int
	cfg    Config
	ollama *healthServer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), port: freePort(t), ollama: newHealthServer(t, 200, nil)}
	f.cfg = Config{
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
	s := NewSupervisor(f.cfg, f.dir, testlog.New(f.t), opts...)
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
