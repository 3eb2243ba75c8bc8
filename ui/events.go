package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// Server-sent events: GET /api/v1/events streams the broadcaster's topics as
// event names ("jobs_changed", "job_failures_changed", "issues_changed",
// "dashboard_metrics_changed", "profiles_table_changed", "schedule_changed"),
// each with a small JSON payload ({"count": N, "at": "…"}). Events say what
// changed, never the data itself: the client refetches what it shows.
// Nothing is replayed on reconnect; a client refetches everything on "open".
//
// The stream is written here rather than with r3labs/sse: the broadcaster
// already gives each subscriber its own coalesced channel, and r3labs keeps an
// unbounded replay log and lets one stalled client block the stream for all
// (libraries.md measured both). Here a client that stops reading is cut off by
// a per-write deadline and affects no one else.

// Defaults of the event stream.
const (
	eventWriteTimeout = 10 * time.Second
	eventHeartbeat    = 15 * time.Second
)

type sseEvent struct {
	Count int64     `json:"count"`
	At    time.Time `json:"at"`
}

// CloseStreams ends every open event stream, and any opened later: call
// it when the HTTP server shuts down (http.Server.RegisterOnShutdown), since
// Shutdown waits for requests to end and a stream never does by itself.
func (s *Server) CloseStreams() { s.closeStreams() }

// events serves GET /api/v1/events.
func (s *Server) events(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if s.cfg.Events == nil {
		s.writeError(w, r, &fieldError{kind: errUnavailable, Msg: "live events are not enabled on this server"})
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	ch, cancel := s.cfg.Events.Subscribe()
	defer cancel()
	write := func(format string, a ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		if _, err := fmt.Fprintf(w, format, a...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !write(": connected\nretry: 2000\n\n") {
		return
	}
	beat := time.NewTicker(eventHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsDone:
			return
		case <-beat.C:
			if !write(": ping\n\n") {
				return
			}
		case n, ok := <-ch:
			if !ok {
				return
			}
			payload, _ := json.Marshal(sseEvent{Count: int64(n.Count), At: n.At.UTC()})
			for _, t := range n.Topics {
				if !write("event: %s\ndata: %s\n\n", t, payload) {
					return
				}
			}
		}
	}
}
