package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"conveyor/data"
	"conveyor/ops/events"
)

// issueContextMessageBytes caps the error message copied into an issue's
// last context.
const issueContextMessageBytes = 1 << 10

// issueTitleBytes caps an issue's title.
const issueTitleBytes = 200

// TrackerOptions configure a Tracker.
type TrackerOptions struct {
	// DB holds the issues. Required.
	DB *data.DB
	// Bus receives TopicIssues whenever an issue is created, gets an
	// occurrence, reopens or resolves, and TopicFailures for every batch of
	// recorded failures. Optional.
	Bus *events.Bus
	// Logger receives the errors of RecordFailures, which has no caller to
	// return them to (default: discard).
	Logger *slog.Logger
}

// Tracker is the issue tracker (the seed's Ops::IssueTracker): it keeps one
// issue per fingerprint for job failures, queue-health degradations, AI
// outages and scheduler problems, counting occurrences, keeping the first
// and last time seen and the context of the latest occurrence.
//
// Job failures arrive through RecordFailures, which the failure writer
// calls after each committed batch (data.FailureWriterOptions.OnFlush).
// Health checks report through Raise and Clear:
//
//	p := failures.Problem{Source: data.SourceQueueHealth, Subject: "sync", Kind: "latency",
//		Title: "queue sync: the oldest ready job has waited 6m", Queue: "sync",
//		Detail: map[string]any{"latency_ms": 372000}}
//	tr.Raise(ctx, p)                 // on every failed check: one issue per subject
//	tr.Clear(ctx, p.Fingerprint())   // on a passing check: resolves it (by "auto")
//
// An issue resolves when its condition clears (Clear) or when an operator
// resolves it (Resolve); any later occurrence reopens it, counting the
// regression (data.Issue.ReopenedCount). Tracker is safe for concurrent
// use.
type Tracker struct {
	db     *data.DB
	bus    *events.Bus
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
}

// NewTracker validates opts. Close it when done.
func NewTracker(opts TrackerOptions) (*Tracker, error) {
	if opts.DB == nil {
		return nil, errors.New("failures: TrackerOptions.DB is required")
	}
	t := &Tracker{db: opts.DB, bus: opts.Bus, log: opts.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	// RecordFailures runs on the writer's goroutine, which has no context of
	// its own to pass: the tracker is the root of one, ended by Close.
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Close ends RecordFailures' context: a call in flight gives up. Call it
// after the failure writer is closed.
func (t *Tracker) Close() { t.cancel() }

// RecordFailures upserts one issue per fingerprint among fs, counting every
// failure as an occurrence, with the newest failure's title and context,
// then publishes TopicFailures and TopicIssues. It is the failure writer's
// OnFlush: fs are committed failures. Errors are logged.
func (t *Tracker) RecordFailures(fs []*data.Failure) {
	if len(fs) == 0 {
		return
	}
	for _, ev := range failureIssues(fs) {
		if _, _, err := t.db.UpsertIssue(t.ctx, ev); err != nil {
			t.log.Error("issue not recorded", "fingerprint", ev.Fingerprint, "class", ev.Class, "error", err)
		}
	}
	t.publish(events.TopicFailures)
	t.publish(events.TopicIssues)
}

// failureIssues groups failures by fingerprint into issue events, in order
// of first appearance.
func failureIssues(fs []*data.Failure) []data.IssueEvent {
	var out []data.IssueEvent
	newest := map[string]*data.Failure{}
	oldest := map[string]time.Time{}
	index := map[string]int{}
	for _, f := range fs {
		if f == nil {
			continue
		}
		fp := f.Fingerprint
		if fp == "" {
			fp = Fingerprint(SourceJobFailure, string(f.Kind), f.Class, f.ErrorClass+": "+f.ErrorMessage)
		}
		i, ok := index[fp]
		if !ok {
			i = len(out)
			index[fp] = i
			out = append(out, data.IssueEvent{Fingerprint: fp, Source: data.SourceJobFailure})
		}
		out[i].Count++
		if n := newest[fp]; n == nil || !f.OccurredAt.Before(n.OccurredAt) {
			newest[fp] = f
		}
		if o, ok := oldest[fp]; !ok || f.OccurredAt.Before(o) {
			oldest[fp] = f.OccurredAt
		}
	}
	for i := range out {
		f := newest[out[i].Fingerprint]
		out[i].Kind = string(f.Kind)
		out[i].Title = failureTitle(f)
		out[i].Class, out[i].Queue = f.Class, f.Queue
		out[i].At, out[i].First = f.OccurredAt, oldest[out[i].Fingerprint]
		out[i].Context = failureContext(f)
	}
	return out
}

// failureTitle is "<error class> in <class>: <first line of the message>".
func failureTitle(f *data.Failure) string {
	msg := firstLine(f.ErrorMessage, issueTitleBytes)
	title := f.Class
	if f.ErrorClass != "" {
		title = f.ErrorClass + " in " + f.Class
	}
	if msg != "" {
		title += ": " + msg
	}
	return capText(title, issueTitleBytes)
}

// failureContext is a job-failure issue's last context: where the newest
// occurrence happened.
func failureContext(f *data.Failure) json.RawMessage {
	c := struct {
		FailureID  int64  `json:"failure_id"`
		JobID      uint64 `json:"job_id"`
		Queue      string `json:"queue"`
		Attempt    int    `json:"attempt"`
		ErrorClass string `json:"error_class"`
		Message    string `json:"message"`
		AccountID  int64  `json:"account_id,omitempty"`
		ProfileID  int64  `json:"profile_id,omitempty"`
		PipelineID int64  `json:"pipeline_id,omitempty"`
		Step       string `json:"step,omitempty"`
		Retryable  bool   `json:"retryable"`
	}{f.ID, f.JobID, f.Queue, f.Attempt, f.ErrorClass, capText(f.ErrorMessage, issueContextMessageBytes),
		f.AccountID, f.ProfileID, f.PipelineID, f.Step, f.Retryable}
	b, _ := json.Marshal(c)
	return b
}

// Problem is one observation of a health condition: a degraded queue, an
// AI service outage, a scheduler problem.
type Problem struct {
	// Source is what found it: data.SourceQueueHealth, data.SourceAIOutage
	// or data.SourceScheduler. Required.
	Source data.IssueSource
	// Subject is what is unhealthy: a queue name, a service name, a
	// schedule entry. With Source it makes the fingerprint, so there is one
	// issue per subject however its symptoms change. Required.
	Subject string
	// Kind is the symptom ("latency", "size", "down", …); the latest wins.
	Kind string
	// Title is the issue's headline; the latest wins. Required.
	Title string
	// Class and Queue, when the problem is about one.
	Class, Queue string
	// Detail becomes the issue's last context (JSON-encoded). Optional.
	Detail any
	// At is when it was observed (zero: now).
	At time.Time
}

// Fingerprint is the problem's issue fingerprint: ProblemFingerprint of its
// source and subject.
func (p Problem) Fingerprint() string { return ProblemFingerprint(p.Source, p.Subject) }

// ProblemFingerprint is the fingerprint of the issue about subject from
// source: a health check that knows only the subject can Clear its issue.
func ProblemFingerprint(source data.IssueSource, subject string) string {
	return Fingerprint(string(source), "", subject, "")
}

// Raise records one occurrence of p: it opens the issue of p's source and
// subject, adds an occurrence to it, or reopens it when it was resolved. It
// returns the issue as stored and what happened, and publishes TopicIssues.
func (t *Tracker) Raise(ctx context.Context, p Problem) (*data.Issue, data.UpsertResult, error) {
	switch {
	case !p.Source.Valid():
		return nil, 0, fmt.Errorf("failures: raise: Problem.Source %q is not a known issue source", p.Source)
	case strings.TrimSpace(p.Subject) == "":
		return nil, 0, errors.New("failures: raise: Problem.Subject is required")
	case strings.TrimSpace(p.Title) == "":
		return nil, 0, errors.New("failures: raise: Problem.Title is required")
	}
	ev := data.IssueEvent{Fingerprint: p.Fingerprint(), Source: p.Source, Kind: p.Kind, Title: capText(p.Title, issueTitleBytes),
		Class: p.Class, Queue: p.Queue, At: p.At}
	if p.Detail != nil {
		b, err := json.Marshal(p.Detail)
		if err != nil {
			return nil, 0, fmt.Errorf("failures: raise: Problem.Detail: %w", err)
		}
		ev.Context = b
	}
	is, res, err := t.db.UpsertIssue(ctx, ev)
	if err != nil {
		return nil, 0, err
	}
	t.publish(events.TopicIssues)
	return is, res, nil
}

// Clear resolves the open issue with that fingerprint, as resolved by
// "auto" (its condition cleared), and reports whether one was open. A
// health check calls it on every passing check.
func (t *Tracker) Clear(ctx context.Context, fingerprint string) (bool, error) {
	ok, err := t.db.ResolveIssueByFingerprint(ctx, fingerprint, data.ResolvedByAuto)
	if ok {
		t.publish(events.TopicIssues)
	}
	return ok, err
}

// Resolve marks issue id resolved by an operator. It returns
// data.ErrNotFound when there is no such issue.
func (t *Tracker) Resolve(ctx context.Context, id int64) error {
	if err := t.db.ResolveIssue(ctx, id, data.ResolvedByOperator); err != nil {
		return err
	}
	t.publish(events.TopicIssues)
	return nil
}

func (t *Tracker) publish(topic events.Topic) {
	if t.bus != nil {
		t.bus.Publish(topic)
	}
}
