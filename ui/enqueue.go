package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"conveyor/lanes"
	"conveyor/queue"
)

// maxInSeconds bounds in_seconds (100 years), well inside time.Duration.
const maxInSeconds = 100 * 365 * 24 * 3600

// run_at must fall in [minRunAt, maxRunAt): the store keeps times as Unix
// nanoseconds, which end in 2262.
var (
	minRunAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxRunAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// enqueueRequest is the body of POST /api/v1/jobs and one element of a batch.
type enqueueRequest struct {
	Class string `json:"class"`
	// Queue defaults to the class's queue.
	Queue string          `json:"queue"`
	Args  json.RawMessage `json:"args"`
	// RunAt is RFC 3339; a string so that a bad time is a 422 naming run_at.
	RunAt *string `json:"run_at"`
	// InSeconds delays the job from now; fractions allowed.
	InSeconds   *float64          `json:"in_seconds"`
	UniqueKey   string            `json:"unique_key"`
	MaxAttempts *int              `json:"max_attempts"`
	Context     map[string]string `json:"context"`
}

// enqueuedJSON answers an enqueue. Duplicate is true when the unique key was
// held: nothing was created and ID is the holder's.
type enqueuedJSON struct {
	ID        uint64 `json:"id"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (e enqueuedJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, e.ID, 10)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, e.State)
	if e.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// batchRequest is the body of POST /api/v1/jobs/batch. Its jobs are decoded
// one by one so that an error names its index.
type batchRequest struct {
	Jobs []json.RawMessage `json:"jobs"`
}

// batchJSON answers a batch: one id per job, in order; Duplicates lists the
// indexes whose unique key was held (their id is the holder's).
type batchJSON struct {
	IDs        []uint64 `json:"ids"`
	Duplicates []int    `json:"duplicates,omitempty"`
}

// decodeEnqueue reads one enqueue request: in one pass when it has the
// plain shape (decodeEnqueueFast), else with decodeJSON. The request may
// share body's memory.
func decodeEnqueue(body []byte, prefix string) (enqueueRequest, error) {
	if req, ok := decodeEnqueueFast(body); ok {
		return req, nil
	}
	var req enqueueRequest
	if err := decodeJSON(body, &req, prefix); err != nil {
		return enqueueRequest{}, err
	}
	return req, nil
}

// buildJob reads the request's times and hands the rest to the registry's
// NewJob, the one place a job is made from (class, args, options): it
// checks the class, its args, the queue and max attempts, and fills the
// class's defaults. The store checks the rest (args size, names, unique
// key, context) before writing anything. Fields in errors are unprefixed.
func buildJob(req enqueueRequest, reg *lanes.Registry, topo lanes.Topology, now time.Time) (queue.NewJob, error) {
	jr := lanes.JobRequest{Class: req.Class, Queue: req.Queue, Args: req.Args, UniqueKey: req.UniqueKey, Context: req.Context}
	if req.MaxAttempts != nil {
		if *req.MaxAttempts == 0 {
			return queue.NewJob{}, invalid("max_attempts", "must be 1..%d (got 0)", queue.MaxAttemptsLimit)
		}
		jr.MaxAttempts = *req.MaxAttempts
	}
	nj, err := reg.NewJob(topo, jr)
	if err != nil {
		return queue.NewJob{}, err
	}
	switch {
	case req.RunAt != nil && req.InSeconds != nil:
		return queue.NewJob{}, invalid("run_at", "give run_at or in_seconds, not both")
	case req.RunAt != nil:
		t, err := time.Parse(time.RFC3339Nano, *req.RunAt)
		if err != nil {
			return queue.NewJob{}, invalid("run_at", "want an RFC 3339 time such as 2026-05-01T12:00:00Z (got %q)", *req.RunAt)
		}
		if t.Before(minRunAt) || !t.Before(maxRunAt) {
			return queue.NewJob{}, invalid("run_at", "must be from 1970 to before 2200 (got %q)", *req.RunAt)
		}
		nj.RunAt = t
	case req.InSeconds != nil:
		sec := *req.InSeconds
		if math.IsNaN(sec) || sec < 0 || sec > maxInSeconds {
			return queue.NewJob{}, invalid("in_seconds", "must be 0..%d seconds (got %v)", maxInSeconds, sec)
		}
		if sec > 0 {
			nj.RunAt = now.Add(time.Duration(sec * float64(time.Second)))
		}
	}
	return nj, nil
}

// enqueue serves POST /api/v1/jobs.
func (s *Server) enqueue(r *http.Request, _ httprouter.Params) (int, any, error) {
	body, err := readAllBody(r.Body, "")
	if err != nil {
		return 0, nil, err
	}
	req, err := decodeEnqueue(body, "")
	if err != nil {
		return 0, nil, err
	}
	nj, err := buildJob(req, s.reg, s.topo, s.now())
	if err != nil {
		return 0, nil, err
	}
	res, err := s.store.Enqueue(r.Context(), nj)
	if err != nil {
		return 0, nil, err
	}
	out := enqueuedJSON{ID: res.ID, State: res.State.String(), Duplicate: res.Duplicate}
	if res.Duplicate {
		return http.StatusOK, out, nil
	}
	return http.StatusCreated, out, nil
}

// enqueueBatch serves POST /api/v1/jobs/batch: every job is decoded and
// checked before the store's all-or-nothing EnqueueMany is called.
func (s *Server) enqueueBatch(r *http.Request, _ httprouter.Params) (int, any, error) {
	var req batchRequest
	if err := decodeBody(r.Body, &req, ""); err != nil {
		return 0, nil, err
	}
	switch n := len(req.Jobs); {
	case n == 0:
		return 0, nil, invalid("jobs", "give at least one job")
	case n > MaxBatchJobs:
		return 0, nil, invalid("jobs", "at most %d jobs per batch (got %d)", MaxBatchJobs, n)
	}
	now := s.now()
	jobs := make([]queue.NewJob, len(req.Jobs))
	for i, raw := range req.Jobs {
		prefix := fmt.Sprintf("jobs[%d]", i)
		one, err := decodeEnqueue(raw, prefix)
		if err != nil {
			return 0, nil, err
		}
		if jobs[i], err = buildJob(one, s.reg, s.topo, now); err != nil {
			return 0, nil, prefixed(err, prefix)
		}
	}
	res, err := s.store.EnqueueMany(r.Context(), jobs)
	if err != nil {
		var ve *queue.ValidationError
		if errors.As(err, &ve) && ve.Field != "jobs" {
			return 0, nil, prefixed(err, fmt.Sprintf("jobs[%d]", ve.Index))
		}
		return 0, nil, err
	}
	out := batchJSON{IDs: make([]uint64, len(res))}
	created := 0
	for i, r := range res {
		out.IDs[i] = r.ID
		if r.Duplicate {
			out.Duplicates = append(out.Duplicates, i)
		} else {
			created++
		}
	}
	if created == 0 {
		return http.StatusOK, out, nil
	}
	return http.StatusCreated, out, nil
}
