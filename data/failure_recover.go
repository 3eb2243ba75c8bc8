package data

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// This file serves the failure pipeline's reconciliation (see
// failures.Reconciler): the queue keeps every failed attempt's error in the
// job's record, and a failure row lost on the way (a crash before the
// writer committed it, a full writer, a failed write) or never captured (a
// crash strike) is rebuilt from it. An attempt has its row when a failure
// of the same job, attempt and class exists; rebuilding never makes a
// second one.

// attemptKey names one attempt of one job and the job's class.
type attemptKey struct {
	job     int64
	attempt int
	class   string
}

func keyOf(f *Failure) attemptKey { return attemptKey{int64(f.JobID), f.Attempt, f.Class} }

// querier is *sql.Tx or *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// recordedAttempts returns which of the attempts of fs have a failure row.
func recordedAttempts(ctx context.Context, q querier, fs []*Failure) (map[attemptKey]bool, error) {
	jobs := map[int64]bool{}
	for _, f := range fs {
		jobs[int64(f.JobID)] = true
	}
	have := map[attemptKey]bool{}
	ids := make([]any, 0, len(jobs))
	for id := range jobs {
		ids = append(ids, id)
	}
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		rows, err := q.QueryContext(ctx, `SELECT job_id, attempt, class FROM failures WHERE job_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", n), ",")+`)`, ids[:n]...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k attemptKey
			if err := rows.Scan(&k.job, &k.attempt, &k.class); err != nil {
				rows.Close()
				return nil, err
			}
			have[k] = true
		}
		if err := errRows(rows, "recorded attempts"); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return have, nil
}

// MissingFailures returns the failures of fs whose attempt (job, attempt and
// class) has no row, in the order of fs. It only reads: use it to find what
// to rebuild, then InsertRecoveredFailures, which checks again.
func (db *DB) MissingFailures(ctx context.Context, fs []*Failure) ([]*Failure, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	have, err := recordedAttempts(ctx, db.r, fs)
	if err != nil {
		return nil, fmt.Errorf("data: missing failures: %w", err)
	}
	var out []*Failure
	for _, f := range fs {
		if f != nil && !have[keyOf(f)] {
			out = append(out, f)
		}
	}
	return out, nil
}

// InsertRecoveredFailures inserts, marked Recovered, those failures of fs
// whose attempt has no row yet (nor an earlier one of fs), in one
// transaction that checks and inserts, and returns them with their IDs set.
// Inserting the same failures again inserts nothing. Validation is as for
// InsertFailures: nothing is written when one is invalid.
func (db *DB) InsertRecoveredFailures(ctx context.Context, fs []*Failure) ([]*Failure, error) {
	if len(fs) == 0 {
		return nil, nil
	}
	now := db.nowUTC()
	for i, f := range fs {
		if err := f.validate(i, now); err != nil {
			return nil, err
		}
	}
	var inserted []*Failure
	err := db.write(ctx, func(tx *sql.Tx) error {
		have, err := recordedAttempts(ctx, tx, fs)
		if err != nil {
			return err
		}
		inserted = inserted[:0]
		for _, f := range fs {
			if k := keyOf(f); !have[k] {
				have[k] = true
				f.Recovered = true
				inserted = append(inserted, f)
			}
		}
		if len(inserted) == 0 {
			return nil
		}
		return insertFailures(ctx, tx, inserted)
	})
	if err != nil {
		for _, f := range fs {
			f.ID = 0
		}
		return nil, fmt.Errorf("data: insert %d recovered failures: %w", len(fs), err)
	}
	return inserted, nil
}
