package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"
	"unicode"
	"unicode/utf8"
)

// Enqueue adds one job and returns once it is on disk (fsynced). Concurrent
// enqueues share one transaction and one fsync. If ctx ends first the error is
// ctx's and the outcome is unknown: the job may still be committed.
func (s *Store) Enqueue(ctx context.Context, nj NewJob) (Result, error) {
	req := &enqueueReq{jobs: []NewJob{nj}}
	if err := s.normalize(&req.jobs[0]); err != nil {
		return Result{}, err
	}
	rs, err := s.enqueue(ctx, req)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// EnqueueMany adds jobs all or nothing and returns a result per job, in order,
// once they are on disk. A malformed job fails the whole call with a
// *ValidationError naming it; nothing is written.
func (s *Store) EnqueueMany(ctx context.Context, jobs []NewJob) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	if len(jobs) > maxEnqueueBatch {
		return nil, &ValidationError{Field: "jobs", Reason: fmt.Sprintf("at most %d jobs per batch (got %d)", maxEnqueueBatch, len(jobs))}
	}
	norm := make([]NewJob, len(jobs))
	for i, nj := range jobs {
		if err := s.normalize(&nj); err != nil {
			err.Index = i
			return nil, err
		}
		norm[i] = nj
	}
	return s.enqueue(ctx, &enqueueReq{jobs: norm})
}

// enqueue hands req's normalized jobs to the writer and waits for their
// commit.
func (s *Store) enqueue(ctx context.Context, req *enqueueReq) ([]Result, error) {
	req.done = make(chan struct{})
	if err := s.submit(func(p *pending) { p.enq = append(p.enq, req) }); err != nil {
		return nil, err
	}
	select {
	case <-req.done:
		return req.results, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// normalize validates a job and fills defaults. The job it leaves shares no
// memory with the caller's (args and context are copied): the writer reads it
// after the call may have returned.
func (s *Store) normalize(nj *NewJob) *ValidationError {
	bad := func(field, format string, a ...any) *ValidationError {
		return &ValidationError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	if err := validName("class", nj.Class, maxClassNameLen); err != nil {
		return bad("class", "%s", err)
	}
	if err := validQueueName(nj.Queue); err != nil {
		return bad("queue", "%s", err)
	}
	args := bytes.TrimSpace(nj.Args)
	switch {
	case len(args) > s.opts.MaxArgsBytes:
		return bad("args", "%d bytes is over the limit of %d", len(args), s.opts.MaxArgsBytes)
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		nj.Args = nil
	case !json.Valid(args):
		return bad("args", "not valid JSON")
	default:
		// A copy: the writer encodes the args later, and a caller whose ctx
		// ends first gets its call back before that.
		nj.Args = bytes.Clone(args)
	}
	switch {
	case nj.MaxAttempts < 0:
		return bad("max_attempts", "must be positive (got %d)", nj.MaxAttempts)
	case nj.MaxAttempts == 0:
		nj.MaxAttempts = s.opts.DefaultMaxAttempts
	case nj.MaxAttempts > MaxAttemptsLimit:
		return bad("max_attempts", "at most %d (got %d)", MaxAttemptsLimit, nj.MaxAttempts)
	}
	// Times are stored as Unix nanoseconds, which end in 2262.
	if !nj.RunAt.IsZero() && (nj.RunAt.Year() < 1970 || nj.RunAt.Year() >= 2200) {
		return bad("run_at", "year %d is out of range 1970..2199", nj.RunAt.Year())
	}
	if len(nj.UniqueKey) > maxUniqueKeyLen || !utf8.ValidString(nj.UniqueKey) {
		return bad("unique_key", "must be valid UTF-8 of at most %d bytes", maxUniqueKeyLen)
	}
	if nj.UniqueFor < 0 || nj.UniqueFor > 10*365*24*time.Hour {
		return bad("unique_for", "out of range (%s)", nj.UniqueFor)
	}
	if nj.UniqueFor > 0 && nj.UniqueKey == "" {
		return bad("unique_for", "needs a unique_key")
	}
	if len(nj.Context) > maxContextEntries {
		return bad("context", "at most %d entries (got %d)", maxContextEntries, len(nj.Context))
	}
	for k, v := range nj.Context {
		if err := validName("context key", k, 64); err != nil {
			return bad("context", "%s", err)
		}
		if len(v) > maxContextValueLen || !utf8.ValidString(v) {
			return bad("context", "value of %q must be valid UTF-8 of at most %d bytes", k, maxContextValueLen)
		}
	}
	if len(nj.Context) == 0 {
		nj.Context = nil
	} else {
		nj.Context = maps.Clone(nj.Context)
	}
	return nil
}

// validName checks a printable, non-empty, bounded name.
func validName(what, s string, maxLen int) error {
	if s == "" {
		return fmt.Errorf("%s is required", what)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%s is longer than %d bytes", what, maxLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%s %q contains a space or an unprintable character", what, s)
		}
	}
	return nil
}

// validQueueName accepts letters, digits and _ . : - (Sidekiq's queue names).
func validQueueName(name string) error {
	if name == "" {
		return fmt.Errorf("queue name is required")
	}
	if len(name) > maxQueueNameLen {
		return fmt.Errorf("queue name %q is longer than %d bytes", name, maxQueueNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-') {
			return fmt.Errorf("queue name %q may hold only letters, digits and _ . : -", name)
		}
	}
	return nil
}
