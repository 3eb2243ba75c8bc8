package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/lanes"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// Bulk actions on the jobs screen's filtered set: POST /api/v1/jobs/bulk
// retries or discards the jobs of one state (and queue, and class) in
// chunks, each request doing at most a bounded number of jobs and answering
// where to go on, so that the page stays responsive and shows progress on
// a set of 100,000 jobs. Each chunk of 1,000 jobs costs one read of their
// failures, one SQLite transaction (the retry claims and refusals) and one
// queue commit (ops/failures.Retrier.RetryJobs).

// Bulk limits.
const (
	// DefaultBulkLimit is how many jobs one bulk request looks at, unless
	// it asks for fewer.
	DefaultBulkLimit = 2000
	// MaxBulkLimit bounds what a request may ask for.
	MaxBulkLimit = queue.MaxBulk
)

// bulkRequest is POST /api/v1/jobs/bulk's body. Cursor is the previous
// answer's next ("" to start); Limit bounds the jobs looked at.
type bulkRequest struct {
	Action string `json:"action"`
	State  string `json:"state"`
	Queue  string `json:"queue"`
	Class  string `json:"class"`
	Cursor string `json:"cursor"`
	Limit  int    `json:"limit"`
}

// bulkJSON answers a bulk request: how many jobs were looked at, how many
// the action was done to, refused (by reason) or failed otherwise (by
// error); Next is the cursor to go on with and More whether there may be
// more.
type bulkJSON struct {
	Action   string         `json:"action"`
	Examined int            `json:"examined"`
	Done     int            `json:"done"`
	Refused  int            `json:"refused"`
	Reasons  map[string]int `json:"reasons"`
	Skipped  int            `json:"skipped"`
	Next     *string        `json:"next"`
	More     bool           `json:"more"`
}

// bulkJobs serves POST /api/v1/jobs/bulk.
func (s *Server) bulkJobs(r *http.Request, _ httprouter.Params) (int, any, error) {
	var req bulkRequest
	if err := decodeBody(r.Body, &req, ""); err != nil {
		return 0, nil, err
	}
	if req.Action != "retry" && req.Action != "discard" {
		return 0, nil, invalid("action", "want retry or discard (got %q)", req.Action)
	}
	st, err := queue.ParseState(req.State)
	if err != nil {
		return 0, nil, invalid("state", "unknown state %q: want one of %s", req.State, stateNames())
	}
	switch {
	case req.Action == "retry" && st != queue.StateDead && st != queue.StateRetry && st != queue.StateScheduled:
		return 0, nil, invalid("state", "only scheduled, retrying and dead jobs can be retried (got %s)", st)
	case req.Action == "discard" && st == queue.StateRunning:
		return 0, nil, invalid("state", "running jobs cannot be discarded: wait for their attempts to end")
	}
	limit := DefaultBulkLimit
	if req.Limit != 0 {
		if req.Limit < 1 || req.Limit > MaxBulkLimit {
			return 0, nil, invalid("limit", "must be 1..%d (got %d)", MaxBulkLimit, req.Limit)
		}
		limit = req.Limit
	}
	out := bulkJSON{Action: req.Action, Reasons: map[string]int{}}
	cursor := req.Cursor
	for out.Examined < limit {
		page, err := s.store.List(queue.ListFilter{State: st, Queue: req.Queue, Class: req.Class, After: cursor,
			Limit: min(1000, limit-out.Examined)})
		if err != nil {
			return 0, nil, err
		}
		out.Examined += len(page.Jobs)
		var errs []error
		if req.Action == "retry" {
			errs = s.retryJobs(r.Context(), page.Jobs)
		} else {
			errs, err = s.discardJobs(r.Context(), page.Jobs)
			if err != nil {
				return 0, nil, err
			}
		}
		for _, e := range errs {
			var re *failures.RefusedError
			switch {
			case e == nil:
				out.Done++
			case errors.As(e, &re):
				out.Refused++
				out.Reasons[string(re.Reason)]++
			case errors.Is(e, queue.ErrNotFound), errors.Is(e, queue.ErrRunning), errors.Is(e, queue.ErrWrongState):
				out.Skipped++ // moved on meanwhile
			default:
				return 0, nil, e
			}
		}
		cursor = page.Next
		if cursor == "" {
			break
		}
		if err := r.Context().Err(); err != nil {
			break
		}
	}
	if cursor != "" {
		out.Next, out.More = &cursor, true
	}
	if out.Done > 0 {
		s.log.Info("bulk action", "action", req.Action, "state", st.String(), "queue", req.Queue, "class", req.Class,
			"done", out.Done, "refused", out.Refused)
	}
	return http.StatusOK, out, nil
}

// retryJobs retries jobs by hand under the failure pipeline's rules
// (ops.Retrier.RetryJobs). A server without the failure pipeline still
// refuses the jobs their lane killed as not retryable.
func (s *Server) retryJobs(ctx context.Context, jobs []*queue.Job) []error {
	if s.cfg.Retrier != nil {
		return s.cfg.Retrier.RetryJobs(ctx, jobs)
	}
	errs := make([]error, len(jobs))
	var ids []uint64
	var at []int
	for i, j := range jobs {
		if lanes.KilledNotRetryable(j) {
			errs[i] = &failures.RefusedError{JobID: j.ID, Reason: failures.RefusedNotRetryable,
				Detail: fmt.Sprintf("job %d was killed as not retryable (discarded, or an authentication failure): enqueue it again by hand if it should run", j.ID)}
			continue
		}
		ids, at = append(ids, j.ID), append(at, i)
	}
	for start := 0; start < len(ids); start += queue.MaxBulk {
		end := min(len(ids), start+queue.MaxBulk)
		out, err := s.store.RetryNowMany(ctx, ids[start:end])
		for k := range ids[start:end] {
			if err != nil {
				errs[at[start+k]] = err
			} else {
				errs[at[start+k]] = out[k]
			}
		}
	}
	return errs
}

// discardJobs deletes jobs (not running ones) in one queue commit per
// chunk.
func (s *Server) discardJobs(ctx context.Context, jobs []*queue.Job) ([]error, error) {
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	var errs []error
	for start := 0; start < len(ids); start += queue.MaxBulk {
		out, err := s.store.DiscardMany(ctx, ids[start:min(len(ids), start+queue.MaxBulk)])
		if err != nil {
			return nil, err
		}
		errs = append(errs, out...)
	}
	return errs, nil
}

// countJSON answers GET /api/v1/jobs/count: how many jobs match a state,
// queue and class. Exact is false when the count stopped at its bound.
type countJSON struct {
	Count int64 `json:"count"`
	Exact bool  `json:"exact"`
}

// maxClassCount bounds the jobs a class-filtered count looks at.
const maxClassCount = 1_000_000

// countJobs serves GET /api/v1/jobs/count?state=&queue=&class=: the number a
// bulk action will look at, for its confirmation. Without a class it comes
// from the store's counters; with one, the state's jobs are walked.
func (s *Server) countJobs(r *http.Request, _ httprouter.Params) (int, any, error) {
	q := r.URL.Query()
	st, err := queue.ParseState(q.Get("state"))
	if err != nil {
		return 0, nil, invalid("state", "unknown state %q: want one of %s", q.Get("state"), stateNames())
	}
	queueName, class := q.Get("queue"), q.Get("class")
	if class == "" {
		if queueName != "" {
			qi, _ := s.store.Queue(queueName)
			return http.StatusOK, countJSON{Count: qi.Counts[st], Exact: true}, nil
		}
		return http.StatusOK, countJSON{Count: s.store.Counts()[st], Exact: true}, nil
	}
	var n int64
	cursor := ""
	for {
		page, err := s.store.List(queue.ListFilter{State: st, Queue: queueName, Class: class, After: cursor, Limit: 1000})
		if err != nil {
			return 0, nil, err
		}
		n += int64(len(page.Jobs))
		if page.Next == "" {
			return http.StatusOK, countJSON{Count: n, Exact: true}, nil
		}
		if n >= maxClassCount || r.Context().Err() != nil {
			return http.StatusOK, countJSON{Count: n}, nil
		}
		cursor = page.Next
	}
}
