package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// frames collects what top writes and signals each write.
type frames struct {
	mu    sync.Mutex
	all   []string
	wrote chan struct{}
}

func (f *frames) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.all = append(f.all, string(p))
	f.mu.Unlock()
	select {
	case f.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// waitFrame waits for a frame that matches re.
func (f *frames) waitFrame(t *testing.T, what string, re *regexp.Regexp) string {
	t.Helper()
	_, fr := f.waitFrameAt(t, 0, what, re)
	return fr
}

// waitFrameFrom waits for a frame from the from-th on that matches re, and
// returns its index.
func (f *frames) waitFrameFrom(t *testing.T, from int, what string, re *regexp.Regexp) int {
	t.Helper()
	at, _ := f.waitFrameAt(t, from, what, re)
	return at
}

// waitFrameAt waits for a frame from the from-th on that matches re, and
// returns its index and text.
func (f *frames) waitFrameAt(t *testing.T, from int, what string, re *regexp.Regexp) (int, string) {
	t.Helper()
	ctx := deadline(t)
	for {
		f.mu.Lock()
		for i := from; i < len(f.all); i++ {
			if fr := f.all[i]; re.MatchString(fr) {
				f.mu.Unlock()
				return i, fr
			}
		}
		n := len(f.all)
		f.mu.Unlock()
		select {
		case <-f.wrote:
		case <-ctx.Done():
			f.mu.Lock()
			last := ""
			if len(f.all) > 0 {
				last = f.all[len(f.all)-1]
			}
			f.mu.Unlock()
			t.Fatalf("no frame with %s in %d frames; the last:\n%s", what, n, last)
			return 0, ""
		}
	}
}

// TestTopRedrawsOnEvents runs conveyor top against the real server: it
// draws the dashboard, redraws when a job is enqueued (an event, not a
// timer), and stops at once when the token is refused.
func TestTopRedrawsOnEvents(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	if st := l.api("POST", "/api/v1/queues/sync/pause", nil, nil); st != http.StatusOK {
		t.Fatalf("pause: %d", st)
	}
	out := &frames{wrote: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(deadline(t))
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"top", "--server", l.base, "--plain"}, envFunc("CONVEYOR_TOKEN="+testToken), out, out)
	}()
	out.waitFrame(t, "the live dashboard", regexp.MustCompile(`(?m)— live\n[\s\S]*^sync \(paused\)\s+default\s+0 `))
	for range 2 {
		l.enqueue(map[string]any{"class": "NoopJob", "queue": "sync"})
	}
	fr := out.waitFrame(t, "the two ready jobs", regexp.MustCompile(`(?m)^sync \(paused\)\s+default\s+2 `))
	for _, want := range []string{"QUEUE", "LANE", "OPEN ISSUES", "processed/min", "ready 2"} {
		if !strings.Contains(fr, want) {
			t.Errorf("the frame lacks %q:\n%s", want, fr)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("top after Ctrl-C: %v", err)
	}

	// A wrong token fails at once, not after minutes of retries.
	start := time.Now()
	err := run(deadline(t), []string{"top", "--server", l.base}, envFunc("CONVEYOR_TOKEN=wrong-token-0123456789"), out, out)
	if err == nil || !strings.Contains(err.Error(), "refused the token") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("top with a wrong token: %v", err)
	}
	t.Logf("refused after %s", time.Since(start))
}

// TestTopSurvivesServerRestart stops the real server under a running
// conveyor top — once with SIGTERM (the server ends the event stream
// cleanly) and once with SIGKILL (the connection breaks) — and starts it
// again on the same port: each time the frame says the server is lost and
// why, and top comes back live and redraws on the new server's events.
func TestTopSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir)
	base := "http://" + srv.addr
	out := &frames{wrote: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(deadline(t))
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"top", "--server", base, "--plain"}, envFunc("CONVEYOR_TOKEN="+testToken), out, out)
	}()
	from := out.waitFrameFrom(t, 0, "the live dashboard", regexp.MustCompile(`— live\n`))
	lost := regexp.MustCompile(`— server lost, reconnecting in [0-9.]+m?s: [^\n]+`)
	for _, stop := range []struct {
		name string
		do   func()
	}{
		{"SIGTERM", func() {
			if err, _ := srv.terminate(); err != nil {
				t.Fatalf("server exit: %v", err)
			}
		}},
		{"SIGKILL", func() { srv.kill() }},
	} {
		stop.do()
		at, fr := out.waitFrameAt(t, from, "the lost server after "+stop.name, lost)
		t.Logf("after %s: %s", stop.name, lost.FindString(fr))
		if !strings.Contains(fr, "QUEUE") {
			t.Errorf("the lost frame after %s does not keep the last figures:\n%s", stop.name, fr)
		}
		srv = startServer(t, dir, "--listen", srv.addr)
		from = out.waitFrameFrom(t, at+1, "the dashboard live again after "+stop.name, regexp.MustCompile(`— live\n`))
		// Live on the new server: its events redraw the frame.
		if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/sync/pause", nil, nil); err != nil || code != http.StatusOK {
			t.Fatalf("pause: %d %v", code, err)
		}
		from = out.waitFrameFrom(t, from, "sync paused, after "+stop.name, regexp.MustCompile(`(?m)— live\n[\s\S]*^sync \(paused\)`))
		if code, err := srv.api(ctx, http.MethodPost, "/api/v1/queues/sync/resume", nil, nil); err != nil || code != http.StatusOK {
			t.Fatalf("resume: %d %v", code, err)
		}
		from = out.waitFrameFrom(t, from+1, "sync resumed, after "+stop.name, regexp.MustCompile(`(?m)— live\n[\s\S]*^sync  `))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("top after Ctrl-C: %v", err)
	}
}

func TestTopOnce(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	out := &frames{wrote: make(chan struct{}, 1)}
	if err := run(deadline(t), []string{"top", "--once", "--server", l.base}, envFunc("CONVEYOR_TOKEN="+testToken), out, out); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out.all, ""); !strings.Contains(got, "QUEUE") || strings.Contains(got, "\x1b[2J") {
		t.Errorf("top --once:\n%q", got)
	}
	if s := sparkline([]int64{0, 1, 2, 7}, 3); s != "▂▃█ max 7/min" {
		t.Errorf("sparkline: %q", s)
	}
}

func TestPasswdPrintsAVerifiableHash(t *testing.T) {
	t.Parallel()
	var out, errOut strings.Builder
	if err := cmdPasswd(context.Background(), nil, strings.NewReader("correct horse battery\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if !strings.HasPrefix(hash, "$argon2id$v=19$") {
		t.Fatalf("hash %q", hash)
	}
	// The hash works as the configuration's password.
	st, err := serveSettings([]string{"--data", t.TempDir()}, envFunc("CONVEYOR_PASSWORD_HASH="+hash), io.Discard)
	if err != nil || st.Dashboard.PasswordHash != hash {
		t.Fatalf("settings: %v %q", err, st.Dashboard.PasswordHash)
	}
	if err := cmdPasswd(context.Background(), nil, strings.NewReader("short\n"), &out, &errOut); err == nil {
		t.Error("a short password was hashed")
	}
}

// TestStopWithOpenEventStream: a browser tab left open on a page holds an
// event stream; stopping the server ends it instead of waiting out the
// HTTP shutdown's deadline and failing.
func TestStopWithOpenEventStream(t *testing.T) {
	t.Parallel()
	getenv := envFunc("CONVEYOR_TOKEN=" + testToken)
	st, err := serveSettings([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--replica", "off"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithoutCancel(t.Context())
	a, err := newApp(ctx, st, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(ctx); err != nil {
		a.stop(ctx)
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+a.addr()+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, resp.Body); close(ended) }()
	if err := a.stop(ctx); err != nil {
		t.Fatalf("stop with an open event stream: %v", err)
	}
	<-ended
}
