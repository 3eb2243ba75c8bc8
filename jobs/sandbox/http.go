package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

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
