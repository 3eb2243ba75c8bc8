package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IssueSource is what raised an issue.
type IssueSource string

// Issue sources.
const (
	SourceJobFailure  IssueSource = "job_failure"
	SourceQueueHealth IssueSource = "queue_health"
	SourceAIOutage    IssueSource = "ai_outage"
	SourceScheduler   IssueSource = "scheduler"
)

// Valid reports whether s is a known source.
func (s IssueSource) Valid() bool {
	switch s {
	case SourceJobFailure, SourceQueueHealth, SourceAIOutage, SourceScheduler:
		return true
	}
	return false
}

// IssueStatus is open or resolved.
type IssueStatus string

// Issue statuses.
const (
	IssueOpen     IssueStatus = "open"
	IssueResolved IssueStatus = "resolved"
)

// ResolvedBy says who resolved an issue.
type ResolvedBy string

// Resolvers.
const (
	ResolvedByOperator ResolvedBy = "operator" // someone pressed "resolve"
	ResolvedByAuto     ResolvedBy = "auto"     // the condition cleared (queue healthy again, AI back)
)

// Valid reports whether r is a known resolver.
func (r ResolvedBy) Valid() bool { return r == ResolvedByOperator || r == ResolvedByAuto }

// Issue groups occurrences of one problem by fingerprint (the seed's
// AppIssue).
type Issue struct {
	ID            int64
	Fingerprint   string
	Source        IssueSource
	Kind          string // free-form sub-kind, e.g. a failure kind or "latency"
	Title         string
	Class         string
	Queue         string
	Occurrences   int64
	FirstSeen     time.Time
	LastSeen      time.Time
	LastContext   json.RawMessage // JSON from the latest occurrence
	Status        IssueStatus
	ResolvedAt    time.Time  // zero while open
	ResolvedBy    ResolvedBy // "" while open
	ReopenedCount int
}

// IssueEvent is one or more occurrences of a problem, as reported by the
// failure pipeline or a health check.
type IssueEvent struct {
	Fingerprint string // required; one issue per fingerprint
	Source      IssueSource
	Kind        string
	Title       string // required; the latest title wins
	Class       string
	Queue       string
	Context     json.RawMessage // optional JSON; replaces last_context when At is the newest
	At          time.Time       // when it happened; zero means now
	Count       int             // occurrences this event stands for; 0 means 1
	// First is the earliest of the occurrences the event stands for (when
	// Count > 1); zero, or after At, means At.
	First time.Time
}

// UpsertResult says what UpsertIssue did.
type UpsertResult int

// Upsert results.
const (
	IssueCreated  UpsertResult = iota + 1 // a new issue
	IssueUpdated                          // an open issue got more occurrences
	IssueReopened                         // a resolved issue came back (a regression)
)

// String is created, updated or reopened.
func (r UpsertResult) String() string {
	switch r {
	case IssueCreated:
		return "created"
	case IssueUpdated:
		return "updated"
	case IssueReopened:
		return "reopened"
	}
	return fmt.Sprintf("UpsertResult(%d)", int(r))
}

const issueColumns = `id, fingerprint, source, kind, title, class, queue, occurrences, first_seen, last_seen,
	last_context, status, resolved_at, resolved_by, reopened_count`

func scanIssue(s scanner) (*Issue, error) {
	var (
		is             Issue
		source, status string
		first, last    int64
		ctxText, by    sql.NullString
		resolved       sql.NullInt64
	)
	err := s.Scan(&is.ID, &is.Fingerprint, &source, &is.Kind, &is.Title, &is.Class, &is.Queue, &is.Occurrences,
		&first, &last, &ctxText, &status, &resolved, &by, &is.ReopenedCount)
	if err != nil {
		return nil, err
	}
	is.Source, is.Status, is.ResolvedBy = IssueSource(source), IssueStatus(status), ResolvedBy(by.String)
	is.FirstSeen, is.LastSeen = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC()
	is.ResolvedAt = fromMS(resolved)
	if ctxText.Valid {
		is.LastContext = json.RawMessage(ctxText.String)
	}
	return &is, nil
}

// UpsertIssue records ev against the issue with its fingerprint: it creates
// the issue, or adds ev.Count occurrences to it (last_seen moves forward
// only, and last_context follows the newest occurrence), reopening it when
// it was resolved (reopened_count+1). It returns the issue as stored.
func (db *DB) UpsertIssue(ctx context.Context, ev IssueEvent) (*Issue, UpsertResult, error) {
	switch {
	case strings.TrimSpace(ev.Fingerprint) == "":
		return nil, 0, &FieldError{Field: "IssueEvent.Fingerprint", Reason: "must not be empty"}
	case !ev.Source.Valid():
		return nil, 0, &FieldError{Field: "IssueEvent.Source", Reason: fmt.Sprintf("%q is not job_failure, queue_health, ai_outage or scheduler", ev.Source)}
	case strings.TrimSpace(ev.Title) == "":
		return nil, 0, &FieldError{Field: "IssueEvent.Title", Reason: "must not be empty"}
	case len(ev.Context) > 0 && !json.Valid(ev.Context):
		return nil, 0, &FieldError{Field: "IssueEvent.Context", Reason: "is not valid JSON"}
	case ev.Count < 0:
		return nil, 0, &FieldError{Field: "IssueEvent.Count", Reason: "must not be negative"}
	}
	at := ev.At
	if at.IsZero() {
		at = db.nowUTC()
	}
	atMS := at.UnixMilli()
	firstMS := atMS
	if !ev.First.IsZero() && ev.First.Before(at) {
		firstMS = ev.First.UnixMilli()
	}
	count := max(ev.Count, 1)
	var ctxArg any
	if len(ev.Context) > 0 {
		ctxArg = string(ev.Context)
	}

	var (
		out    *Issue
		result UpsertResult
	)
	err := db.write(ctx, func(tx *sql.Tx) error {
		var (
			id     int64
			status string
		)
		err := tx.QueryRowContext(ctx, `SELECT id, status FROM issues WHERE fingerprint = ?`, ev.Fingerprint).Scan(&id, &status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			result = IssueCreated
			err = tx.QueryRowContext(ctx, `INSERT INTO issues
				(fingerprint, source, kind, title, class, queue, occurrences, first_seen, last_seen, last_context, status)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open') RETURNING id`,
				ev.Fingerprint, string(ev.Source), ev.Kind, ev.Title, ev.Class, ev.Queue, count, firstMS, atMS, ctxArg).Scan(&id)
			if err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			result = IssueUpdated
			if status == string(IssueResolved) {
				result = IssueReopened
			}
			_, err = tx.ExecContext(ctx, `UPDATE issues SET
				occurrences    = occurrences + ?,
				title          = CASE WHEN ? >= last_seen THEN ? ELSE title END,
				kind           = CASE WHEN ? >= last_seen AND ? != '' THEN ? ELSE kind END,
				last_context   = CASE WHEN ? >= last_seen AND ? IS NOT NULL THEN ? ELSE last_context END,
				first_seen     = min(first_seen, ?),
				last_seen      = max(last_seen, ?),
				status         = 'open',
				resolved_at    = NULL,
				resolved_by    = NULL,
				reopened_count = reopened_count + ?
				WHERE id = ?`,
				count, atMS, ev.Title, atMS, ev.Kind, ev.Kind, atMS, ctxArg, ctxArg, firstMS, atMS,
				boolInt(result == IssueReopened), id)
			if err != nil {
				return err
			}
		}
		out, err = scanIssue(tx.QueryRowContext(ctx, `SELECT `+issueColumns+` FROM issues WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("data: upsert issue %q: %w", ev.Fingerprint, err)
	}
	return out, result, nil
}

// IssueByID returns one issue, or ErrNotFound.
func (db *DB) IssueByID(ctx context.Context, id int64) (*Issue, error) {
	is, err := scanIssue(db.r.QueryRowContext(ctx, `SELECT `+issueColumns+` FROM issues WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "issue", id)
	}
	return is, nil
}

// ResolveIssue marks issue id resolved by by. Resolving a resolved issue
// changes nothing. It returns ErrNotFound when there is no such issue.
func (db *DB) ResolveIssue(ctx context.Context, id int64, by ResolvedBy) error {
	if !by.Valid() {
		return &FieldError{Field: "by", Reason: fmt.Sprintf("%q is not operator or auto", by)}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE issues SET status = 'resolved', resolved_at = ?, resolved_by = ?
			WHERE id = ? AND status = 'open'`, db.nowUTC().UnixMilli(), string(by), id)
		if err != nil {
			return fmt.Errorf("data: resolve issue %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM issues WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err, "issue", id)
		}
		return nil
	})
}

// ResolveIssueByFingerprint resolves the open issue with that fingerprint,
// if any, and reports whether there was one (health checks call it on every
// healthy probe).
func (db *DB) ResolveIssueByFingerprint(ctx context.Context, fingerprint string, by ResolvedBy) (bool, error) {
	if !by.Valid() {
		return false, &FieldError{Field: "by", Reason: fmt.Sprintf("%q is not operator or auto", by)}
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE issues SET status = 'resolved', resolved_at = ?, resolved_by = ?
			WHERE fingerprint = ? AND status = 'open'`, db.nowUTC().UnixMilli(), string(by), fingerprint)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("data: resolve issue %q: %w", fingerprint, err)
	}
	return n > 0, nil
}

// IssueFilter selects issues; the zero value lists all of them, newest
// last_seen first.
type IssueFilter struct {
	Status IssueStatus // "" for any
	Source IssueSource // "" for any
	Offset int
	Limit  int // default 50, at most 1000
}

// FindIssues returns a page of issues, most recently seen first, and the
// total matching.
func (db *DB) FindIssues(ctx context.Context, f IssueFilter) ([]*Issue, int, error) {
	var where []string
	var args []any
	if f.Status != "" {
		if f.Status != IssueOpen && f.Status != IssueResolved {
			return nil, 0, &FilterError{Param: "status", Reason: fmt.Sprintf("%q is not open or resolved", f.Status)}
		}
		where = append(where, "status = ?")
		args = append(args, string(f.Status))
	}
	if f.Source != "" {
		if !f.Source.Valid() {
			return nil, 0, &FilterError{Param: "source", Reason: fmt.Sprintf("%q is not a source", f.Source)}
		}
		where = append(where, "source = ?")
		args = append(args, string(f.Source))
	}
	limit, offset, err := page(f.Limit, f.Offset)
	if err != nil {
		return nil, 0, err
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	var (
		out   []*Issue
		total int
	)
	err = db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+issueColumns+` FROM issues`+w+
			` ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			is, err := scanIssue(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, is)
		}
		if err := errRows(rows, "find issues"); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM issues`+w, args...).Scan(&total)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("data: find issues: %w", err)
	}
	return out, total, nil
}

// page validates and defaults a limit and offset pair.
func page(limit, offset int) (int, int, error) {
	switch {
	case limit < 0 || limit > 1000:
		return 0, 0, &FilterError{Param: "limit", Reason: "must be between 1 and 1000"}
	case offset < 0:
		return 0, 0, &FilterError{Param: "offset", Reason: "must not be negative"}
	case limit == 0:
		limit = 50
	}
	return limit, offset, nil
}
