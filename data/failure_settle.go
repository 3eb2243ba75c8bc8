package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// JobOutcome is how a later attempt of a job that already has failures
// ended, or how a job enqueued to retry a failure ended. The failure
// pipeline reports one for every attempt of such a job (and only for
// those); SettleFailures turns it into retry states.
type JobOutcome struct {
	JobID     uint64 // the job whose attempt ended
	Attempt   int    // the attempt that ended (1-based)
	Succeeded bool   // the attempt succeeded; else it failed (and its failure was inserted first)
	RetryOf   int64  // the failure this job was enqueued to retry; 0 when none
}

// SettleFailures applies outcomes, in order, in one transaction, and
// returns how many failures changed. For the failures it touches:
//
//   - A success of job J at attempt n marks the failures of J's earlier
//     attempts: the one whose retry was J itself (status queued, retry job
//     J) becomes succeeded, the others still open (status none) become
//     superseded ("job J succeeded on attempt n"). When J was enqueued to
//     retry failure F (RetryOf), F becomes succeeded with retry job J.
//   - A failure of job J at attempt n supersedes the failures of J's
//     earlier attempts still open or queued ("attempt n of job J failed
//     too"), and the failure F that J retried when it is queued. The new
//     failure (J, attempt n) inherits their retry count, so that the count
//     follows a chain of retries and an automatic retry limit holds across
//     it.
//
// Failures already succeeded, superseded or refused are left alone, so
// applying an outcome twice changes nothing more.
func (db *DB) SettleFailures(ctx context.Context, outcomes []JobOutcome) (int64, error) {
	if len(outcomes) == 0 {
		return 0, nil
	}
	for i, o := range outcomes {
		if o.Attempt < 1 {
			return 0, &FieldError{Field: fmt.Sprintf("outcomes[%d].Attempt", i), Reason: "must be at least 1"}
		}
		if o.RetryOf < 0 {
			return 0, &FieldError{Field: fmt.Sprintf("outcomes[%d].RetryOf", i), Reason: "must not be negative"}
		}
	}
	var changed int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		exec := func(query string, args ...any) error {
			res, err := tx.ExecContext(ctx, query, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			changed += n
			return err
		}
		for _, o := range outcomes {
			job := int64(o.JobID)
			if o.Succeeded {
				if o.RetryOf != 0 {
					if err := exec(`UPDATE failures SET retry_status = 'succeeded', retry_job_id = ?, retry_reason = ''
						WHERE id = ? AND retry_status = 'queued'`, job, o.RetryOf); err != nil {
						return err
					}
				}
				reason := fmt.Sprintf("job %d succeeded on attempt %d", o.JobID, o.Attempt)
				if err := exec(`UPDATE failures SET
						retry_status = CASE WHEN retry_status = 'queued' AND retry_job_id = ?1 THEN 'succeeded' ELSE 'superseded' END,
						retry_reason = CASE WHEN retry_status = 'queued' AND retry_job_id = ?1 THEN '' ELSE ?2 END
					WHERE job_id = ?1 AND attempt < ?3 AND (retry_status = 'none' OR (retry_status = 'queued' AND retry_job_id = ?1))`,
					job, reason, o.Attempt); err != nil {
					return err
				}
				continue
			}
			// The new failure inherits the retry count of what it supersedes.
			var carry int
			if err := tx.QueryRowContext(ctx, `SELECT max(
					(SELECT coalesce(max(retry_attempts), 0) FROM failures
					  WHERE job_id = ?1 AND attempt < ?2 AND retry_status IN ('none', 'queued')),
					(SELECT coalesce(max(retry_attempts), 0) FROM failures WHERE id = ?3 AND retry_status = 'queued'))`,
				job, o.Attempt, o.RetryOf).Scan(&carry); err != nil {
				return err
			}
			if carry > 0 {
				if err := exec(`UPDATE failures SET retry_attempts = ?
					WHERE job_id = ? AND attempt = ? AND retry_status = 'none' AND retry_attempts < ?`,
					carry, job, o.Attempt, carry); err != nil {
					return err
				}
			}
			if err := exec(`UPDATE failures SET retry_status = 'superseded', retry_reason = ?
				WHERE job_id = ? AND attempt < ? AND retry_status IN ('none', 'queued')`,
				fmt.Sprintf("attempt %d of job %d failed too", o.Attempt, o.JobID), job, o.Attempt); err != nil {
				return err
			}
			if o.RetryOf != 0 {
				if err := exec(`UPDATE failures SET retry_status = 'superseded', retry_reason = ?
					WHERE id = ? AND retry_status = 'queued'`,
					fmt.Sprintf("its retry, job %d, failed too", o.JobID), o.RetryOf); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("data: settle %d job outcomes: %w", len(outcomes), err)
	}
	return changed, nil
}

// SetFailureRetryJob records jobID as the job of failure id's latest retry,
// leaving the rest of its retry state as it is (a retry that enqueues a new
// job marks the failure queued first, then names the job once it has an
// id). It returns ErrNotFound when there is no such failure.
func (db *DB) SetFailureRetryJob(ctx context.Context, id int64, jobID uint64) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE failures SET retry_job_id = ? WHERE id = ?`, nullID(int64(jobID)), id)
		if err != nil {
			return fmt.Errorf("data: set retry job of failure %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: failure %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// LaterFailure returns the id of the earliest failure of job jobID with an
// attempt after attempt, or 0 when there is none: a failure of an earlier
// attempt is superseded by it.
func (db *DB) LaterFailure(ctx context.Context, jobID uint64, attempt int) (int64, error) {
	var id int64
	err := db.r.QueryRowContext(ctx, `SELECT id FROM failures WHERE job_id = ? AND attempt > ?
		ORDER BY attempt, id LIMIT 1`, int64(jobID), attempt).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("data: later failure of job %d: %w", jobID, err)
	}
	return id, nil
}

// errRetryStateChanged aborts UpdateFailureRetryIf's transaction.
var errRetryStateChanged = errors.New("data: retry state changed meanwhile")

// UpdateFailureRetryIf replaces the retry state of failure id with rs only
// when its current status is one of from, and reports whether it did. A
// retry uses it to claim a failure (none or refused → queued) so that two
// retries of one failure cannot both proceed, and to undo its claim when the
// retry could not be made. It returns ErrNotFound when there is no such
// failure.
func (db *DB) UpdateFailureRetryIf(ctx context.Context, id int64, from []RetryStatus, rs RetryState) (bool, error) {
	if err := validRetryUpdate(RetryUpdate{ID: id, From: from, State: rs}); err != nil {
		return false, err
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		up, err := prepareRetryIf(ctx, tx)
		if err != nil {
			return err
		}
		defer up.close()
		return up.do(ctx, RetryUpdate{ID: id, From: from, State: rs})
	})
	switch {
	case errors.Is(err, errRetryStateChanged):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("data: update retry of failure %d: %w", id, err)
	}
	return true, nil
}

// RetryUpdate is one conditional change of a failure's retry state: State
// replaces it when its status is one of From.
type RetryUpdate struct {
	ID    int64
	From  []RetryStatus
	State RetryState
}

// UpdateFailuresRetryIf does UpdateFailureRetryIf for each update in one
// transaction, and reports for each whether it was made: false when the
// failure's status was not one of its From, or there is no such failure.
// A bulk retry claims a chunk of failures with it: one commit per chunk
// instead of one per failure.
func (db *DB) UpdateFailuresRetryIf(ctx context.Context, ups []RetryUpdate) ([]bool, error) {
	for _, u := range ups {
		if err := validRetryUpdate(u); err != nil {
			return nil, err
		}
	}
	done := make([]bool, len(ups))
	if len(ups) == 0 {
		return done, nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		clear(done)
		up, err := prepareRetryIf(ctx, tx)
		if err != nil {
			return err
		}
		defer up.close()
		for i, u := range ups {
			err := up.do(ctx, u)
			switch {
			case err == nil:
				done[i] = true
			case errors.Is(err, errRetryStateChanged), errors.Is(err, ErrNotFound):
			default:
				return fmt.Errorf("data: update retry of failure %d: %w", u.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// validRetryUpdate checks an update's statuses and attempts.
func validRetryUpdate(u RetryUpdate) error {
	if !u.State.Status.Valid() {
		return &FieldError{Field: "RetryState.Status", Reason: fmt.Sprintf("%q is not a retry status", u.State.Status)}
	}
	if u.State.Attempts < 0 {
		return &FieldError{Field: "RetryState.Attempts", Reason: "must not be negative"}
	}
	if len(u.From) == 0 {
		return &FieldError{Field: "from", Reason: "must name at least one status"}
	}
	for i, s := range u.From {
		if !s.Valid() {
			return &FieldError{Field: fmt.Sprintf("from[%d]", i), Reason: fmt.Sprintf("%q is not a retry status", s)}
		}
	}
	return nil
}

// retryIf is the conditional retry-state update, prepared once in a
// transaction (preparing the UPDATE, with the triggers on failures, costs
// more than running it).
type retryIf struct{ sel, upd *sql.Stmt }

func prepareRetryIf(ctx context.Context, tx *sql.Tx) (*retryIf, error) {
	sel, err := tx.PrepareContext(ctx, `SELECT retry_status FROM failures WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE failures
		SET retry_status = ?, retry_attempts = ?, last_retried_at = ?, retry_job_id = ?, retry_reason = ?
		WHERE id = ?`)
	if err != nil {
		sel.Close()
		return nil, err
	}
	return &retryIf{sel: sel, upd: upd}, nil
}

func (p *retryIf) close() {
	p.sel.Close()
	p.upd.Close()
}

// do makes one update: errRetryStateChanged when the status is not one of
// u.From, ErrNotFound when there is no such failure.
func (p *retryIf) do(ctx context.Context, u RetryUpdate) error {
	var cur string
	if err := p.sel.QueryRowContext(ctx, u.ID).Scan(&cur); err != nil {
		return notFound(err, "failure", u.ID)
	}
	if !slices.Contains(u.From, RetryStatus(cur)) {
		return errRetryStateChanged
	}
	rs := u.State
	_, err := p.upd.ExecContext(ctx, string(rs.Status), rs.Attempts, ms(rs.LastRetriedAt), nullID(int64(rs.JobID)), rs.Reason, u.ID)
	return err
}
