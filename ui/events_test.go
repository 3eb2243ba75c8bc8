package ui

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"

	"conveyor/ops/events"
)

func TestEventsStreamTopics(t *testing.T) {
	t.Parallel()
	bus := events.NewBus(events.Options{Manual: true})
	defer bus.Close()
	r := newRig(t, rigOpts{cfg: func(c *Config) { c.Events = bus }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.ts.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := r.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != ": connected\n" {
		t.Fatalf("first line %q", line)
	}
	bus.Publish(events.TopicFailures)
	bus.Publish(events.TopicFailures)
	bus.Flush()
	var got []string
	for len(got) < 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "event: ") || strings.HasPrefix(line, "data: ") {
			got = append(got, strings.TrimSpace(line))
		}
	}
	if got[0] != "event: job_failures_changed" || !strings.HasPrefix(got[1], `data: {"count":2,"at":`) {
		t.Fatalf("event %q", got)
	}
}

func TestEventsWithoutBroadcasterAre503(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	wantError(t, r.call(http.MethodGet, "/api/v1/events", ""), http.StatusServiceUnavailable, "")
}
