package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSIGTERMWithAnOpenEventStream is issue 11's `curl -N …/api/v1/events`
// left open while the server is told to stop: the stream must end when
// shutdown begins, and the process exit 0 without waiting out the HTTP
// shutdown bound (it used to exit 1 after 10 s: "http shutdown: context
// deadline exceeded").
func TestSIGTERMWithAnOpenEventStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "--schedule", emptySchedule(t))
	req, err := http.NewRequestWithContext(deadline(t), http.MethodGet, "http://"+srv.addr+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != ": connected\n" {
		t.Fatalf("first line %q (%v)", line, err)
	}
	streamEnded := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		streamEnded <- err
	}()

	err, took := srv.terminate()
	log := srv.stderr.String()
	if err != nil {
		t.Fatalf("exit after SIGTERM with a stream open: %v (after %v)\n%s", err, took, log)
	}
	if err := <-streamEnded; err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
	if strings.Contains(log, "http shutdown") || !strings.Contains(log, "msg=stopped") {
		t.Errorf("the shutdown did not finish cleanly:\n%s", log)
	}
	t.Logf("exited %v after SIGTERM with an event stream open", took)
}
