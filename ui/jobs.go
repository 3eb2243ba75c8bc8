package ui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"conveyor/ops/failures"
	"conveyor/queue"
)

// Page sizes of GET /api/v1/jobs.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// listJSON answers GET /api/v1/jobs. Next is the cursor of the next page (null
// on the last); Total counts the jobs in the state (and queue) from the store's
// counters, null when a class filter makes it unknown.
type listJSON struct {
	Jobs  []jobJSON `json:"jobs"`
	Next  *string   `json:"next"`
	Total *int64    `json:"total"`
}

// actionJSON answers retry and discard.
type actionJSON struct {
	ID        uint64 `json:"id"`
	State     string `json:"state,omitempty"`
	Discarded bool   `json:"discarded,omitempty"`
}

func stateNames() string {
	names := make([]string, len(queue.States))
	for i, st := range queue.States {
		names[i] = st.String()
	}
	return strings.Join(names, ", ")
}

// listJobs serves GET /api/v1/jobs?state=&queue=&class=&cursor=&size=.
// Lists are cursor-paginated: page is accepted only as 1 (the first page).
func (s *Server) listJobs(r *http.Request, _ httprouter.Params) (int, any, error) {
	q := r.URL.Query()
	f := queue.ListFilter{Queue: q.Get("queue"), Class: q.Get("class"), After: q.Get("cursor"), Limit: DefaultPageSize}
	switch name := q.Get("state"); name {
	case "":
		return 0, nil, invalid("state", "is required: one of %s", stateNames())
	default:
		st, err := queue.ParseState(name)
		if err != nil {
			return 0, nil, invalid("state", "unknown state %q: want one of %s", name, stateNames())
		}
		f.State = st
	}
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return 0, nil, invalid("size", "must be a whole number 1..%d (got %q)", MaxPageSize, v)
		}
		f.Limit = n
	}
	if v := q.Get("page"); v != "" && v != "1" {
		return 0, nil, invalid("page", "lists are cursor-paginated: pass the previous page's next as cursor (page may only be 1)")
	}
	page, err := s.store.List(f)
	if err != nil {
		return 0, nil, err
	}
	now := s.now()
	out := listJSON{Jobs: make([]jobJSON, 0, len(page.Jobs))}
	for _, j := range page.Jobs {
		out.Jobs = append(out.Jobs, s.listJob(j, now))
	}
	if page.Next != "" {
		out.Next = &page.Next
	}
	if f.Class == "" {
		var total int64
		if f.Queue != "" {
			qi, _ := s.store.Queue(f.Queue)
			total = qi.Counts[f.State]
		} else {
			total = s.store.Counts()[f.State]
		}
		out.Total = &total
	}
	return http.StatusOK, out, nil
}

// jobID reads the :id parameter.
func jobID(ps httprouter.Params) (uint64, error) {
	v := ps.ByName("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, malformed("id", "want a job id (a whole number), got %q", v)
	}
	return id, nil
}

// getJob serves GET /api/v1/jobs/{id}.
func (s *Server) getJob(r *http.Request, ps httprouter.Params) (int, any, error) {
	id, err := jobID(ps)
	if err != nil {
		return 0, nil, err
	}
	j, err := s.store.Get(id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.jobOut(j, s.now()), nil
}

// retryJob serves POST /api/v1/jobs/{id}/retry: a scheduled, retrying or
// dead job becomes ready now, unless the failure pipeline's rules refuse
// it (409 with the refusal's reason, as POST /api/v1/failures/{id}/retry).
func (s *Server) retryJob(r *http.Request, ps httprouter.Params) (int, any, error) {
	id, err := jobID(ps)
	if err != nil {
		return 0, nil, err
	}
	j, err := s.store.Get(id)
	if err != nil {
		return 0, nil, err
	}
	err = s.retryJobs(r.Context(), []*queue.Job{j})[0]
	var re *failures.RefusedError
	switch {
	case errors.As(err, &re):
		return http.StatusConflict, refusedJSON{Error: "retry refused: " + re.Detail, Field: "id", Reason: string(re.Reason)}, nil
	case errors.Is(err, queue.ErrWrongState):
		msg := "only scheduled, retrying and dead jobs can be retried"
		if j, gerr := s.store.Get(id); gerr == nil {
			msg = "job is " + j.State.String() + ": " + msg
		}
		return 0, nil, &fieldError{kind: queue.ErrWrongState, Field: "id", Msg: msg}
	case err != nil:
		return 0, nil, err
	}
	return http.StatusOK, actionJSON{ID: id, State: queue.StateReady.String()}, nil
}

// discardJob serves POST /api/v1/jobs/{id}/discard: a job that is not running
// is deleted.
func (s *Server) discardJob(r *http.Request, ps httprouter.Params) (int, any, error) {
	id, err := jobID(ps)
	if err != nil {
		return 0, nil, err
	}
	if err := s.store.Discard(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, actionJSON{ID: id, Discarded: true}, nil
}

// jobOut is jobView with the lane looked up and the args and context
// redacted.
func (s *Server) jobOut(j *queue.Job, now time.Time) jobJSON {
	lane, _ := s.topo.LaneOf(j.Queue)
	return s.redactJob(jobView(j, lane, now))
}

// listJob is listView with the lane looked up and the args and context
// redacted.
func (s *Server) listJob(j *queue.Job, now time.Time) jobJSON {
	lane, _ := s.topo.LaneOf(j.Queue)
	return s.redactJob(listView(j, lane, now))
}

func (s *Server) redactJob(v jobJSON) jobJSON {
	v.Args = s.redact.json(v.Args)
	v.Context = s.redact.strings(v.Context)
	return v
}
