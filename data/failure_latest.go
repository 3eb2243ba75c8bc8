package data

import (
	"context"
	"fmt"
	"strings"
)

// maxLatestJobs bounds the ids one LatestFailures or FailuresByIDs call
// takes (SQLite's bound-parameter limit is 32,766).
const maxLatestJobs = 10_000

// LatestFailures returns, for each of jobIDs that has failures, the failure
// of its latest attempt (the highest attempt, then the highest id), keyed by
// job id. Retrying jobs from the jobs screen uses it to apply the failure
// pipeline's rules to each job's last failure. At most 10,000 ids a call.
func (db *DB) LatestFailures(ctx context.Context, jobIDs []uint64) (map[uint64]*Failure, error) {
	out := map[uint64]*Failure{}
	if len(jobIDs) == 0 {
		return out, nil
	}
	if len(jobIDs) > maxLatestJobs {
		return nil, &FieldError{Field: "jobIDs", Reason: fmt.Sprintf("at most %d a call (got %d)", maxLatestJobs, len(jobIDs))}
	}
	args := make([]any, len(jobIDs))
	for i, id := range jobIDs {
		args[i] = int64(id)
	}
	q := `SELECT ` + failureColumns + ` FROM failures WHERE id IN (
		SELECT (SELECT g.id FROM failures g WHERE g.job_id = j.job_id ORDER BY g.attempt DESC, g.id DESC LIMIT 1)
		FROM (SELECT DISTINCT job_id FROM failures WHERE job_id IN (?` + strings.Repeat(",?", len(jobIDs)-1) + `)) j)`
	err := db.eachFailure(ctx, q, args, func(f *Failure) { out[f.JobID] = f })
	if err != nil {
		return nil, fmt.Errorf("data: latest failures: %w", err)
	}
	return out, nil
}

// eachFailure runs query, which selects failureColumns, and calls fn with
// each failure it reads.
func (db *DB) eachFailure(ctx context.Context, query string, args []any, fn func(*Failure)) error {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		f, err := scanFailure(rows)
		if err != nil {
			return err
		}
		fn(f)
	}
	return rows.Err()
}

// IssueByFingerprint returns the issue of a fingerprint, or ErrNotFound.
// A job's page shows the issue its failures were grouped into.
func (db *DB) IssueByFingerprint(ctx context.Context, fingerprint string) (*Issue, error) {
	is, err := scanIssue(db.r.QueryRowContext(ctx, `SELECT `+issueColumns+` FROM issues WHERE fingerprint = ?`, fingerprint))
	if err != nil {
		return nil, notFound(err, "issue with fingerprint", fingerprint)
	}
	return is, nil
}

// FailuresByIDs returns the failures of ids that exist, keyed by id: a
// retry of all matching failures reads each chunk with it in one query. At
// most 10,000 ids a call.
func (db *DB) FailuresByIDs(ctx context.Context, ids []int64) (map[int64]*Failure, error) {
	out := make(map[int64]*Failure, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if len(ids) > maxLatestJobs {
		return nil, &FieldError{Field: "ids", Reason: fmt.Sprintf("at most %d a call (got %d)", maxLatestJobs, len(ids))}
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := `SELECT ` + failureColumns + ` FROM failures WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
	if err := db.eachFailure(ctx, q, args, func(f *Failure) { out[f.ID] = f }); err != nil {
		return nil, fmt.Errorf("data: failures by id: %w", err)
	}
	return out, nil
}
