package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"conveyor/jobs"
)

// maxRequestBytes bounds a request body.
const maxRequestBytes = 1 << 20

// Handler serves the connector contract over HTTP, as the connector bridge
// expects it: POST / with a jobs.Request as JSON; 200 with the result, or
// the fault's status with {"error"} (and Retry-After on faults that carry
// one). GET /accounts lists the usernames.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		var req jobs.Request
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON request: " + err.Error()})
			return
		}
		out, err := s.Call(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]string{"accounts": s.Accounts()})
	})
	return mux
}

// AIHandler is the local AI stand-in: what the local-AI guardrails check
// (GET /health, and Ollama's GET /api/version and /api/tags) and what
// AnalyzePostJob calls (POST /analyze with a jobs.AnalyzeRequest; the
// answer is a JSON object of labels, a summary and a sentiment). Analyses
// take the sandbox's latency and fail transiently at its fault rate.
func (s *Sandbox) AIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": "conveyor sandbox local AI"})
	})
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": "0.0.0-sandbox"})
	})
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"models": []map[string]string{{"name": "sandbox-vision:latest"}}})
	})
	mux.HandleFunc("POST /analyze", func(w http.ResponseWriter, r *http.Request) {
		var req jobs.AnalyzeRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil || req.PostID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"post_id\",\"caption\",…}"})
			return
		}
		attempt := r.Header.Get("X-Conveyor-Attempt")
		if err := s.wait(r.Context(), "analyze", req.PostID, attempt); err != nil {
			return
		}
		if err := s.fault("sandbox analyze", false, "analyze", req.PostID, attempt); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s.analysis(req))
	})
	return mux
}

// analysis is the stand-in's deterministic analysis of a post.
func (s *Sandbox) analysis(req jobs.AnalyzeRequest) map[string]any {
	x := s.h("analysis", req.PostID)
	labels := []string{}
	for _, t := range things {
		if strings.Contains(strings.ToLower(req.Caption), t) {
			labels = append(labels, t)
		}
	}
	if len(labels) == 0 {
		labels = append(labels, things[x%uint64(len(things))])
	}
	sentiments := []string{"positive", "neutral", "negative"}
	return map[string]any{
		"labels":     labels,
		"summary":    fmt.Sprintf("%s posted about %s", req.Author, strings.Join(labels, " and ")),
		"sentiment":  sentiments[x%3],
		"confidence": float64(60+x%40) / 100,
		"model":      "sandbox-vision",
	}
}

// writeError answers a call's error with its status.
func writeError(w http.ResponseWriter, err error) {
	var ce *jobs.CallError
	if !errors.As(err, &ce) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	if ce.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(ce.RetryAfter.Seconds())))
	}
	status := ce.Status
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": ce.Message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
