package data

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Caps of the per-job records: a job keeps its newest rows up to these.
const (
	MaxCallsPerJob   = 100
	MaxActionsPerJob = 200
	// maxRecordText bounds an error or a detail.
	maxRecordText = 1024
	// MaxCallOutput bounds the output kept of a call.
	MaxCallOutput = 4096
)

// JobCall is one call a job made to an outside service.
type JobCall struct {
	ID        int64
	JobID     uint64
	AccountID int64  // 0 when none
	Endpoint  string // what was called, e.g. "POST http://…/jobs CaptureHomeFeedJob" or "sandbox CaptureHomeFeedJob"
	Status    int    // HTTP status (or a command's exit status); 0 when there was no answer
	Latency   time.Duration
	Error     string // "" when it succeeded
	// Output is what the call answered or printed, its first
	// MaxCallOutput bytes (a declared command's output, say).
	Output string
	At     time.Time
}

// AccountAction is one action a job took on an account: a reply sent, an
// engagement, a download.
type AccountAction struct {
	ID        int64
	JobID     uint64
	AccountID int64
	Action    string // e.g. story_reply, engagement, download
	Target    string // what it acted on: a story, a post, a profile
	Detail    string
	At        time.Time
}

// clip bounds a text to maxRecordText bytes of valid UTF-8.
func clip(s string) string { return clipTo(s, maxRecordText) }

// clipTo bounds a text to n bytes of valid UTF-8.
func clipTo(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// RecordJobCalls stores calls in one transaction (At zero means now) and
// keeps each job's newest MaxCallsPerJob.
func (db *DB) RecordJobCalls(ctx context.Context, calls []JobCall) error {
	if len(calls) == 0 {
		return nil
	}
	for i, c := range calls {
		if c.JobID == 0 || strings.TrimSpace(c.Endpoint) == "" {
			return &FieldError{Field: fmt.Sprintf("calls[%d]", i), Reason: "JobID and Endpoint must be set"}
		}
	}
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		jobs := map[uint64]bool{}
		for _, c := range calls {
			at := c.At
			if at.IsZero() {
				at = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_calls (job_id, account_id, endpoint, status, latency_ms, error, output, at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, int64(c.JobID), nullID(c.AccountID), clip(c.Endpoint), c.Status,
				c.Latency.Milliseconds(), clip(c.Error), clipTo(c.Output, MaxCallOutput), at.UnixMilli()); err != nil {
				return err
			}
			jobs[c.JobID] = true
		}
		return capPerJob(ctx, tx, "job_calls", jobs, MaxCallsPerJob)
	})
	if err != nil {
		return fmt.Errorf("data: record job calls: %w", err)
	}
	return nil
}

// RecordAccountActions stores actions in one transaction (At zero means
// now) and keeps each job's newest MaxActionsPerJob.
func (db *DB) RecordAccountActions(ctx context.Context, actions []AccountAction) error {
	if len(actions) == 0 {
		return nil
	}
	for i, a := range actions {
		if a.JobID == 0 || a.AccountID == 0 || strings.TrimSpace(a.Action) == "" {
			return &FieldError{Field: fmt.Sprintf("actions[%d]", i), Reason: "JobID, AccountID and Action must be set"}
		}
	}
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		jobs := map[uint64]bool{}
		for _, a := range actions {
			at := a.At
			if at.IsZero() {
				at = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO account_actions (job_id, account_id, action, target, detail, at)
				VALUES (?, ?, ?, ?, ?, ?)`, int64(a.JobID), a.AccountID, clip(a.Action), clip(a.Target), clip(a.Detail),
				at.UnixMilli()); err != nil {
				return err
			}
			jobs[a.JobID] = true
		}
		return capPerJob(ctx, tx, "account_actions", jobs, MaxActionsPerJob)
	})
	if err != nil {
		return fmt.Errorf("data: record account actions: %w", err)
	}
	return nil
}

// capPerJob deletes each job's rows of table beyond its newest keep.
func capPerJob(ctx context.Context, tx *sql.Tx, table string, jobs map[uint64]bool, keep int) error {
	for job := range jobs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE job_id = ?1 AND id < coalesce(
			(SELECT id FROM `+table+` WHERE job_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2), 0)`, int64(job), keep-1); err != nil {
			return err
		}
	}
	return nil
}

// JobCalls returns the calls job made, oldest first.
func (db *DB) JobCalls(ctx context.Context, job uint64) ([]JobCall, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, job_id, account_id, endpoint, status, latency_ms, error, output, at
		FROM job_calls WHERE job_id = ? ORDER BY id`, int64(job))
	if err != nil {
		return nil, fmt.Errorf("data: job calls: %w", err)
	}
	var out []JobCall
	for rows.Next() {
		var (
			c       JobCall
			id      int64
			acct    sql.NullInt64
			lat, at int64
		)
		if err := rows.Scan(&c.ID, &id, &acct, &c.Endpoint, &c.Status, &lat, &c.Error, &c.Output, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: job calls: %w", err)
		}
		c.JobID, c.AccountID = uint64(id), acct.Int64
		c.Latency, c.At = time.Duration(lat)*time.Millisecond, time.UnixMilli(at).UTC()
		out = append(out, c)
	}
	return out, errRows(rows, "job calls")
}

// AccountActions returns the actions job took, oldest first.
func (db *DB) AccountActions(ctx context.Context, job uint64) ([]AccountAction, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, job_id, account_id, action, target, detail, at
		FROM account_actions WHERE job_id = ? ORDER BY id`, int64(job))
	if err != nil {
		return nil, fmt.Errorf("data: account actions: %w", err)
	}
	var out []AccountAction
	for rows.Next() {
		var (
			a      AccountAction
			id, at int64
		)
		if err := rows.Scan(&a.ID, &id, &a.AccountID, &a.Action, &a.Target, &a.Detail, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: account actions: %w", err)
		}
		a.JobID, a.At = uint64(id), time.UnixMilli(at).UTC()
		out = append(out, a)
	}
	return out, errRows(rows, "account actions")
}

// TrimJobRecords deletes the calls and actions recorded before `before`
// and returns how many rows it deleted.
func (db *DB) TrimJobRecords(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"job_calls", "account_actions"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE at < ?`, before.UnixMilli())
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("data: trim job records: %w", err)
	}
	return n, nil
}
