package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"conveyor/ops/fault"
)

// RetryStatus is where a failure's retry stands.
type RetryStatus string

// Retry statuses.
const (
	RetryNone       RetryStatus = "none"       // not retried
	RetryQueued     RetryStatus = "queued"     // a retry job was enqueued
	RetryRefused    RetryStatus = "refused"    // retry not allowed (authentication, terminal pipeline step, …)
	RetrySucceeded  RetryStatus = "succeeded"  // the retry job completed
	RetrySuperseded RetryStatus = "superseded" // a later failure or retry replaced this one
)

// Valid reports whether s is one of the known statuses.
func (s RetryStatus) Valid() bool {
	switch s {
	case RetryNone, RetryQueued, RetryRefused, RetrySucceeded, RetrySuperseded:
		return true
	}
	return false
}

// RetryState is the retry bookkeeping of a failure.
type RetryState struct {
	Status        RetryStatus
	Attempts      int       // retries tried so far
	LastRetriedAt time.Time // zero when never retried
	JobID         uint64    // the job of the latest retry; 0 when none
	Reason        string    // why refused or superseded; free text
}

// Failure is one failed job attempt (the seed's BackgroundJobFailure).
// Optional references (AccountID, ProfileID, PipelineID) are 0 when absent.
type Failure struct {
	ID           int64
	JobID        uint64 // the queue's job id; stored bit-for-bit as a signed integer
	Class        string
	Queue        string
	Args         json.RawMessage // JSON; the caller caps its size
	ErrorClass   string
	ErrorMessage string
	Backtrace    string
	AccountID    int64
	ProfileID    int64
	PipelineID   int64
	Step         string
	Attempt      int
	Kind         fault.Kind
	Retryable    bool
	OccurredAt   time.Time // zero means "now" on insert
	Fingerprint  string
	Retry        RetryState // Status "" means RetryNone on insert
	// Recovered is true for a row rebuilt from the queue's record of the
	// attempt (InsertRecoveredFailures) rather than captured as it failed.
	Recovered bool
}

// failureColumns lists the columns scanFailure reads, in order.
const failureColumns = `id, job_id, class, queue, kind, retryable, error_class, account_id, profile_id,
	pipeline_id, step, attempt, occurred_at, fingerprint, retry_status, retry_attempts, last_retried_at,
	retry_job_id, retry_reason, recovered, error_message, args, backtrace`

// failureInsertColumns are the columns InsertFailures writes (id included).
const failureInsertColumns = `id, job_id, class, queue, kind, retryable, error_class, account_id, profile_id,
	pipeline_id, step, attempt, occurred_at, fingerprint, retry_status, retry_attempts, last_retried_at,
	retry_job_id, retry_reason, recovered, error_message, args, backtrace`

const failureInsertArity = 23

// insertChunk is the number of rows per multi-row INSERT statement.
const insertChunk = 64

// validate checks f before insert and fills the defaults it can.
func (f *Failure) validate(i int, now time.Time) error {
	at := func(field, reason string) error {
		return &FieldError{Field: fmt.Sprintf("failures[%d].%s", i, field), Reason: reason}
	}
	switch {
	case f == nil:
		return at("", "nil failure")
	case strings.TrimSpace(f.Class) == "":
		return at("Class", "must not be empty")
	case strings.TrimSpace(f.Queue) == "":
		return at("Queue", "must not be empty")
	case !f.Kind.Valid():
		return at("Kind", fmt.Sprintf("%q is not authentication, transient or runtime", f.Kind))
	case f.Retry.Status != "" && !f.Retry.Status.Valid():
		return at("Retry.Status", fmt.Sprintf("%q is not a retry status", f.Retry.Status))
	case len(f.Args) > 0 && !json.Valid(f.Args):
		return at("Args", "is not valid JSON")
	case f.Attempt < 0 || f.Retry.Attempts < 0:
		return at("Attempt", "must not be negative")
	}
	if f.OccurredAt.IsZero() {
		f.OccurredAt = now
	}
	if f.OccurredAt.Before(time.Unix(0, 0)) {
		return at("OccurredAt", "must not be before 1970")
	}
	f.OccurredAt = f.OccurredAt.UTC().Truncate(time.Millisecond)
	if f.Retry.Status == "" {
		f.Retry.Status = RetryNone
	}
	if !f.Retry.LastRetriedAt.IsZero() {
		f.Retry.LastRetriedAt = f.Retry.LastRetriedAt.UTC().Truncate(time.Millisecond)
	}
	return nil
}

func (f *Failure) insertArgs(dst []any) []any {
	var args any
	if len(f.Args) > 0 {
		args = string(f.Args)
	}
	return append(dst, f.ID, int64(f.JobID), f.Class, f.Queue, string(f.Kind), boolInt(f.Retryable), f.ErrorClass,
		nullID(f.AccountID), nullID(f.ProfileID), nullID(f.PipelineID), f.Step, f.Attempt,
		f.OccurredAt.UnixMilli(), f.Fingerprint, string(f.Retry.Status), f.Retry.Attempts,
		ms(f.Retry.LastRetriedAt), nullID(int64(f.Retry.JobID)), f.Retry.Reason, boolInt(f.Recovered), f.ErrorMessage, args, f.Backtrace)
}

// InsertFailures inserts the batch in one transaction and sets each
// failure's ID (ascending in slice order). OccurredAt defaults to now and
// Retry.Status to RetryNone. Nothing is written when any failure is invalid
// (a *FieldError naming its index).
func (db *DB) InsertFailures(ctx context.Context, fs []*Failure) error {
	if len(fs) == 0 {
		return nil
	}
	now := db.nowUTC()
	for i, f := range fs {
		if err := f.validate(i, now); err != nil {
			return err
		}
	}
	err := db.write(ctx, func(tx *sql.Tx) error { return insertFailures(ctx, tx, fs) })
	if err != nil {
		for _, f := range fs {
			f.ID = 0
		}
		return fmt.Errorf("data: insert %d failures: %w", len(fs), err)
	}
	return nil
}

// insertFailures inserts validated failures in tx, setting their IDs, and
// rolls them up.
func insertFailures(ctx context.Context, tx *sql.Tx, fs []*Failure) error {
	// The writer is the only connection that writes and holds the write
	// lock for the whole transaction, so max(id)+1.. is free.
	var maxID int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM failures`).Scan(&maxID); err != nil {
		return err
	}
	for i, f := range fs {
		f.ID = maxID + int64(i) + 1
	}
	var chunkStmt *sql.Stmt
	args := make([]any, 0, insertChunk*failureInsertArity)
	rest := fs
	for len(rest) >= insertChunk {
		if chunkStmt == nil {
			var err error
			chunkStmt, err = tx.PrepareContext(ctx, insertFailuresSQL(insertChunk))
			if err != nil {
				return err
			}
			defer chunkStmt.Close()
		}
		args = args[:0]
		for _, f := range rest[:insertChunk] {
			args = f.insertArgs(args)
		}
		if _, err := chunkStmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		rest = rest[insertChunk:]
		// A batch is thousands of rows of CPU work: let the goroutines
		// waiting for this P (the lanes, the queue's writer) run between
		// chunks rather than wait for a preemption.
		runtime.Gosched()
	}
	if len(rest) > 0 {
		args = args[:0]
		for _, f := range rest {
			args = f.insertArgs(args)
		}
		if _, err := tx.ExecContext(ctx, insertFailuresSQL(len(rest)), args...); err != nil {
			return err
		}
	}
	return rollUp(ctx, tx, fs)
}

// rollKey is a failure's roll-up group.
type rollKey struct {
	hour                                        int64
	kind, queue, class, errorClass, retryStatus string
	retryable                                   int
}

// rollUp adds inserted failures to failure_counts and failure_hours with one
// upsert per group (the update and delete triggers keep them exact after).
func rollUp(ctx context.Context, tx *sql.Tx, fs []*Failure) error {
	hours := map[rollKey]int{}
	for _, f := range fs {
		ms := f.OccurredAt.UnixMilli()
		hours[rollKey{ms / hourMS * hourMS, string(f.Kind), f.Queue, f.Class, f.ErrorClass, string(f.Retry.Status), boolInt(f.Retryable)}]++
	}
	totals := map[rollKey]int{}
	for k, n := range hours {
		k.hour = 0
		totals[k] += n
	}
	hourStmt, err := tx.PrepareContext(ctx, `INSERT INTO failure_hours (hour, kind, queue, class, error_class, retry_status, retryable, n)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n`)
	if err != nil {
		return err
	}
	defer hourStmt.Close()
	for k, n := range hours {
		if _, err := hourStmt.ExecContext(ctx, k.hour, k.kind, k.queue, k.class, k.errorClass, k.retryStatus, k.retryable, n); err != nil {
			return err
		}
	}
	countStmt, err := tx.PrepareContext(ctx, `INSERT INTO failure_counts (kind, queue, class, error_class, retry_status, retryable, n)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n`)
	if err != nil {
		return err
	}
	defer countStmt.Close()
	for k, n := range totals {
		if _, err := countStmt.ExecContext(ctx, k.kind, k.queue, k.class, k.errorClass, k.retryStatus, k.retryable, n); err != nil {
			return err
		}
	}
	return nil
}

func insertFailuresSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO failures (")
	b.WriteString(failureInsertColumns)
	b.WriteString(") VALUES ")
	row := "(" + strings.Repeat("?,", failureInsertArity-1) + "?)"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanFailure(s scanner) (*Failure, error) {
	var (
		f                                   Failure
		jobID                               int64
		kind, status                        string
		retryable, recovered                int
		account, profile, pipeline, retryJb sql.NullInt64
		occurred                            int64
		lastRetried                         sql.NullInt64
		args                                sql.NullString
	)
	err := s.Scan(&f.ID, &jobID, &f.Class, &f.Queue, &kind, &retryable, &f.ErrorClass, &account, &profile,
		&pipeline, &f.Step, &f.Attempt, &occurred, &f.Fingerprint, &status, &f.Retry.Attempts, &lastRetried,
		&retryJb, &f.Retry.Reason, &recovered, &f.ErrorMessage, &args, &f.Backtrace)
	if err != nil {
		return nil, err
	}
	f.JobID = uint64(jobID)
	f.Kind = fault.Kind(kind)
	f.Retryable = retryable != 0
	f.Recovered = recovered != 0
	f.AccountID, f.ProfileID, f.PipelineID = account.Int64, profile.Int64, pipeline.Int64
	f.OccurredAt = time.UnixMilli(occurred).UTC()
	f.Retry.Status = RetryStatus(status)
	f.Retry.LastRetriedAt = fromMS(lastRetried)
	f.Retry.JobID = uint64(retryJb.Int64)
	if args.Valid {
		f.Args = json.RawMessage(args.String)
	}
	return &f, nil
}

// FailureByID returns one failure, or ErrNotFound.
func (db *DB) FailureByID(ctx context.Context, id int64) (*Failure, error) {
	f, err := scanFailure(db.r.QueryRowContext(ctx, `SELECT `+failureColumns+` FROM failures WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "failure", id)
	}
	return f, nil
}

// UpdateFailureRetry replaces the retry state of failure id. It returns
// ErrNotFound when there is no such failure.
func (db *DB) UpdateFailureRetry(ctx context.Context, id int64, rs RetryState) error {
	if !rs.Status.Valid() {
		return &FieldError{Field: "RetryState.Status", Reason: fmt.Sprintf("%q is not a retry status", rs.Status)}
	}
	if rs.Attempts < 0 {
		return &FieldError{Field: "RetryState.Attempts", Reason: "must not be negative"}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE failures
			SET retry_status = ?, retry_attempts = ?, last_retried_at = ?, retry_job_id = ?, retry_reason = ?
			WHERE id = ?`,
			string(rs.Status), rs.Attempts, ms(rs.LastRetriedAt), nullID(int64(rs.JobID)), rs.Reason, id)
		if err != nil {
			return fmt.Errorf("data: update retry of failure %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: failure %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// PruneFailures deletes up to limit failures that occurred before the given
// time, oldest first, and returns how many it deleted. Call it in a loop
// until it returns less than limit; each call is one short transaction.
func (db *DB) PruneFailures(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, &FieldError{Field: "limit", Reason: "must be positive"}
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM failures WHERE id IN (
			SELECT id FROM failures WHERE occurred_at < ? ORDER BY occurred_at LIMIT ?)`,
			before.UnixMilli(), limit)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		// Drop the roll-up rows the deletes emptied.
		if _, err := tx.ExecContext(ctx, `DELETE FROM failure_hours WHERE n = 0 AND hour < ?`, ceilHour(before.UnixMilli())); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM failure_counts WHERE n = 0`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("data: prune failures: %w", err)
	}
	return n, nil
}

// errRows wraps a row-iteration error.
func errRows(rows *sql.Rows, what string) error {
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("data: %s: %w", what, err)
	}
	return nil
}
