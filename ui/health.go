package ui

import (
	"context"
	"errors"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/queue"
)

// Check is one readiness check of /readyz. Detail says what was seen, in a
// few words.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// readyJSON answers /readyz: Ready is true when every check is OK.
type readyJSON struct {
	Ready  bool    `json:"ready"`
	Checks []Check `json:"checks"`
}

// healthz serves GET /healthz: the process answers. It needs no
// authentication and carries no data.
func (s *Server) healthz(r *http.Request, _ httprouter.Params) (int, any, error) {
	return http.StatusOK, map[string]string{"status": "ok"}, nil
}

// readyz serves GET /readyz: 200 when every check passes, 503 otherwise. The
// built-in checks are "web" (this answer) and "queue" (the store's writer
// answers), then Config.Ready's.
func (s *Server) readyz(r *http.Request, _ httprouter.Params) (int, any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	out := readyJSON{Ready: true, Checks: []Check{{Name: "web", OK: true, Detail: "answering"}, s.queueCheck(ctx)}}
	if s.cfg.Ready != nil {
		out.Checks = append(out.Checks, s.cfg.Ready(ctx)...)
	}
	for _, c := range out.Checks {
		out.Ready = out.Ready && c.OK
	}
	if !out.Ready {
		return http.StatusServiceUnavailable, out, nil
	}
	return http.StatusOK, out, nil
}

// queueCheck reports what keeps the store from working (a full disk, a
// failed write, counters found inconsistent), then asks its writer for a
// round trip (no transaction when there is nothing to write).
func (s *Server) queueCheck(ctx context.Context) Check {
	if err := s.store.Err(); err != nil {
		return Check{Name: "queue", Detail: err.Error()}
	}
	err := s.store.Flush(ctx)
	switch {
	case err == nil:
		return Check{Name: "queue", OK: true, Detail: "store open"}
	case errors.Is(err, queue.ErrClosed):
		return Check{Name: "queue", Detail: "store closed"}
	case errors.Is(err, context.DeadlineExceeded):
		return Check{Name: "queue", Detail: "store writer did not answer in " + s.cfg.ReadyTimeout.String()}
	}
	s.log.Error("readiness: queue check", "err", err)
	return Check{Name: "queue", Detail: "store error (logged on the server)"}
}
