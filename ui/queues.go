package ui

import (
	"context"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"conveyor/queue"
)

// queueJSON is a queue as the API shows it. Lane is "" for a queue the store
// knows but no lane serves; Size counts ready jobs; LatencyMS is how long the
// next job to run has waited; Counts has every state.
type queueJSON struct {
	Name      string           `json:"name"`
	Lane      string           `json:"lane"`
	Size      int64            `json:"size"`
	LatencyMS int64            `json:"latency_ms"`
	Paused    bool             `json:"paused"`
	Counts    map[string]int64 `json:"counts"`
}

// clearedJSON answers a clear.
type clearedJSON struct {
	Name    string `json:"name"`
	Cleared int    `json:"cleared"`
}

func (s *Server) queueView(qi queue.QueueInfo) queueJSON {
	lane, _ := s.topo.LaneOf(qi.Name)
	v := queueJSON{Name: qi.Name, Lane: lane, Size: qi.Size, LatencyMS: qi.Latency.Milliseconds(),
		Paused: qi.Paused, Counts: make(map[string]int64, len(queue.States))}
	for _, st := range queue.States {
		v.Counts[st.String()] = qi.Counts[st]
	}
	return v
}

// listQueues serves GET /api/v1/queues: every queue of the topology in lane
// order, then the queues the store knows that no lane serves, by name. Counts
// come from the store's in-memory counters.
func (s *Server) listQueues(r *http.Request, _ httprouter.Params) (int, any, error) {
	return http.StatusOK, s.queuesView(), nil
}

// queuesView lists the queues as GET /api/v1/queues shows them.
func (s *Server) queuesView() []queueJSON {
	out := []queueJSON{}
	for _, name := range s.topo.Queues() {
		qi, _ := s.store.Queue(name)
		out = append(out, s.queueView(qi))
	}
	for _, qi := range s.store.Queues() {
		if _, served := s.topo.LaneOf(qi.Name); !served {
			out = append(out, s.queueView(qi))
		}
	}
	return out
}

// knownQueue returns the :name parameter, or a 404 when neither the topology
// nor the store knows the queue (pausing an unknown name would create it).
func (s *Server) knownQueue(ps httprouter.Params) (string, error) {
	name := ps.ByName("name")
	if _, served := s.topo.LaneOf(name); served {
		return name, nil
	}
	if _, ok := s.store.Queue(name); ok {
		return name, nil
	}
	return "", &fieldError{kind: errNoRoute, Field: "name", Msg: "no queue is named " + strconv.Quote(name)}
}

func (s *Server) pauseQueue(r *http.Request, ps httprouter.Params) (int, any, error) {
	return s.setPaused(r.Context(), ps, s.store.Pause)
}

func (s *Server) resumeQueue(r *http.Request, ps httprouter.Params) (int, any, error) {
	return s.setPaused(r.Context(), ps, s.store.Resume)
}

// setPaused serves POST /api/v1/queues/{name}/pause and …/resume and answers
// the queue as it is afterwards.
func (s *Server) setPaused(ctx context.Context, ps httprouter.Params, op func(context.Context, string) error) (int, any, error) {
	name, err := s.knownQueue(ps)
	if err != nil {
		return 0, nil, err
	}
	if err := op(ctx, name); err != nil {
		return 0, nil, err
	}
	qi, _ := s.store.Queue(name)
	return http.StatusOK, s.queueView(qi), nil
}

// clearQueue serves POST /api/v1/queues/{name}/clear: the queue's ready jobs
// are deleted (scheduled, retrying and running ones stay).
func (s *Server) clearQueue(r *http.Request, ps httprouter.Params) (int, any, error) {
	name, err := s.knownQueue(ps)
	if err != nil {
		return 0, nil, err
	}
	n, err := s.store.Clear(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, clearedJSON{Name: name, Cleared: n}, nil
}
