package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"conveyor/internal/lossyfs"
)

// The end-to-end tests run the real conveyor as a subprocess: the test binary
// re-executes itself with beMainEnv set, and TestMain then runs main() instead
// of the tests. Under -race the server is race-checked too.
const beMainEnv = "CONVEYOR_TEST_BE_MAIN"

func TestMain(m *testing.M) {
	lossyfs.ServeIfAsked() // the power-loss tests' filesystem server (internal/lossyfs)
	if os.Getenv(beMainEnv) == "1" {
		extraClasses = registerPoisonPills
		if err := limitMemory(); err != nil {
			fmt.Fprintln(os.Stderr, "test server: memory limit:", err)
			os.Exit(1)
		}
		runMain(withFailpoints(context.Background(), failpointsFromEnv()))
		os.Exit(0)
	}
	code := m.Run()
	closeBrowser()
	os.Exit(code)
}

const testToken = "test-token-0123456789abcdef"

// server is one run of `conveyor serve` in a subprocess.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	stderr *lockedBuffer
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var servingRe = regexp.MustCompile(`msg="conveyor is serving" addr=http://([0-9.:]+)`)

// startServer starts `conveyor serve` on a free loopback port and waits for
// its "serving" log line.
func startServer(t *testing.T, dataDir string, extraArgs ...string) *server {
	t.Helper()
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken)
	s, err := launchServer(t, dataDir, env, extraArgs...)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.stderr.String())
	}
	return s
}

// launchServer starts `conveyor serve --data dataDir` on a free loopback
// port with env and args, and waits for its "serving" log line. When the
// process exits first, the error says so and its exit stays readable on
// s.exited (a server may be meant to die: told to crash, or to fail fast).
func launchServer(t *testing.T, dataDir string, env []string, args ...string) (*server, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"serve", "--data", dataDir, "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	pr, pw := io.Pipe()
	s := &server{t: t, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	// The buffer first: when the scanner below sees a line, the buffer
	// already holds it (and everything the same write carried before it).
	cmd.Stderr = io.MultiWriter(s.stderr, pw)
	cmd.Stdout = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		s.exited <- err
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.exited
		}
	})
	select {
	case s.addr = <-found:
		return s, nil
	case err := <-s.exited:
		s.exited <- err // for the caller
		return s, fmt.Errorf("server exited before serving: %v", err)
	case <-deadline(t).Done():
		cmd.Process.Kill()
		t.Fatalf("server never served:\n%s", s.stderr.String())
	}
	return s, nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// terminate sends SIGTERM and returns the exit error and how long exiting took.
func (s *server) terminate() (error, time.Duration) {
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err, time.Since(start)
	case <-deadline(s.t).Done():
		s.cmd.Process.Kill()
		s.t.Fatalf("server did not exit on SIGTERM:\n%s", s.stderr.String())
	}
	return nil, 0
}

// deadline is a context that ends a little before the test's deadline.
func deadline(t *testing.T) context.Context {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// call sends a request with the test token (body, when not nil, as JSON) and
// returns the answer's status and body.
func (s *server) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.addr+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// api calls the server's API with the test token.
func (s *server) api(ctx context.Context, method, path string, body any, out any) (int, error) {
	code, b, err := s.call(ctx, method, path, body)
	if err != nil {
		return code, err
	}
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return code, fmt.Errorf("decode %s: %w", b, err)
		}
	}
	return code, nil
}

type queueJSON struct {
	Name   string           `json:"name"`
	Counts map[string]int64 `json:"counts"`
}

// unfinished returns how many jobs are not done or dead yet.
func (s *server) unfinished(ctx context.Context) (int64, error) {
	var qs []queueJSON
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/queues", nil, &qs); err != nil || code != 200 {
		return 0, fmt.Errorf("queues: %d %v", code, err)
	}
	var n int64
	for _, q := range qs {
		for st, c := range q.Counts {
			if st != "done" && st != "dead" {
				n += c
			}
		}
	}
	return n, nil
}

func (s *server) deadCount(ctx context.Context) (int64, error) {
	var qs []queueJSON
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/queues", nil, &qs); err != nil || code != 200 {
		return 0, fmt.Errorf("queues: %d %v", code, err)
	}
	var n int64
	for _, q := range qs {
		n += q.Counts["dead"]
	}
	return n, nil
}

// waitDrained polls until every job is done or dead. The poll interval is a
// pause between questions, not a guess at how long the work takes: the bound is
// the test's deadline.
func (s *server) waitDrained(t *testing.T) {
	t.Helper()
	ctx := deadline(t)
	for {
		n, err := s.unfinished(ctx)
		if err == nil && n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jobs never drained (%d unfinished, %v)\n%s", n, err, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return err
	}
	return f.Sync()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestEveryCommandAnswersHelp runs each command's --help in-process: usage,
// exit status 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"enqueue", "--help"}, {"bench", "--help"},
		{"restore", "--help"}, {"schedule", "check", "--help"}, {"health", "--help"}, {"ai", "status", "--help"},
		{"accounts", "--help"}, {"accounts", "list", "--help"},
		{"passwd", "--help"}, {"top", "--help"}} {
		var out, errOut strings.Builder
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if err != nil || !strings.Contains(out.String()+errOut.String(), "usage: conveyor") {
			t.Errorf("%v: err %v, output %q", args, err, out.String()+errOut.String())
		}
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command was accepted")
	}
}
