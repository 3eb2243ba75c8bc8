package data

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Status is the state of a pipeline or one of its steps.
type Status string

// Statuses. Succeeded, failed, cancelled and skipped are terminal.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusSkipped   Status = "skipped"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled, StatusSkipped:
		return true
	}
	return false
}

// Terminal reports whether s is final: succeeded, failed, cancelled or
// skipped.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusSkipped:
		return true
	}
	return false
}

// Pipeline is a multi-step run (an account's processing) with its steps.
type Pipeline struct {
	ID         int64
	Kind       string
	AccountID  int64 // 0 when not about one account
	Status     Status
	StartedAt  time.Time
	FinishedAt time.Time // zero until terminal
	Steps      []*PipelineStep
}

// PipelineStep is one named step of a pipeline.
type PipelineStep struct {
	ID         int64
	PipelineID int64
	Name       string
	Status     Status
	Attempts   int    // times the step entered running
	JobID      uint64 // the job running (or that ran) it; 0 when none
	UpdatedAt  time.Time
}

// CreatePipeline inserts p with one pending step per name in steps, and
// sets the IDs. Status defaults to running and StartedAt to now.
func (db *DB) CreatePipeline(ctx context.Context, p *Pipeline, steps ...string) error {
	if strings.TrimSpace(p.Kind) == "" {
		return &FieldError{Field: "Pipeline.Kind", Reason: "must not be empty"}
	}
	if p.Status == "" {
		p.Status = StatusRunning
	}
	if !p.Status.Valid() {
		return &FieldError{Field: "Pipeline.Status", Reason: fmt.Sprintf("%q is not a status", p.Status)}
	}
	seen := map[string]bool{}
	for i, s := range steps {
		if strings.TrimSpace(s) == "" || seen[s] {
			return &FieldError{Field: fmt.Sprintf("steps[%d]", i), Reason: "step names must be non-empty and unique"}
		}
		seen[s] = true
	}
	now := db.nowUTC()
	if p.StartedAt.IsZero() {
		p.StartedAt = now
	}
	p.StartedAt = p.StartedAt.UTC().Truncate(time.Millisecond)
	if p.Status.Terminal() && p.FinishedAt.IsZero() {
		p.FinishedAt = now
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO pipelines (kind, account_id, status, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, p.Kind, nullID(p.AccountID), string(p.Status),
			p.StartedAt.UnixMilli(), ms(p.FinishedAt)).Scan(&p.ID)
		if err != nil {
			return err
		}
		p.Steps = p.Steps[:0]
		for _, name := range steps {
			st := &PipelineStep{PipelineID: p.ID, Name: name, Status: StatusPending, UpdatedAt: now}
			err := tx.QueryRowContext(ctx, `INSERT INTO pipeline_steps (pipeline_id, name, status, updated_at)
				VALUES (?, ?, 'pending', ?) RETURNING id`, p.ID, name, now.UnixMilli()).Scan(&st.ID)
			if err != nil {
				return err
			}
			p.Steps = append(p.Steps, st)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data: create pipeline %q: %w", p.Kind, err)
	}
	return nil
}

// PipelineByID returns a pipeline with its steps (in creation order), or
// ErrNotFound.
func (db *DB) PipelineByID(ctx context.Context, id int64) (*Pipeline, error) {
	var p *Pipeline
	err := db.read(ctx, func(tx *sql.Tx) error {
		var (
			status            string
			account, finished sql.NullInt64
			started           int64
		)
		pp := Pipeline{}
		err := tx.QueryRowContext(ctx, `SELECT id, kind, account_id, status, started_at, finished_at FROM pipelines WHERE id = ?`, id).
			Scan(&pp.ID, &pp.Kind, &account, &status, &started, &finished)
		if err != nil {
			return notFound(err, "pipeline", id)
		}
		pp.AccountID, pp.Status = account.Int64, Status(status)
		pp.StartedAt, pp.FinishedAt = time.UnixMilli(started).UTC(), fromMS(finished)
		rows, err := tx.QueryContext(ctx, `SELECT id, pipeline_id, name, status, attempts, job_id, updated_at
			FROM pipeline_steps WHERE pipeline_id = ? ORDER BY id`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				st      PipelineStep
				s       string
				job     sql.NullInt64
				updated int64
			)
			if err := rows.Scan(&st.ID, &st.PipelineID, &st.Name, &s, &st.Attempts, &job, &updated); err != nil {
				rows.Close()
				return err
			}
			st.Status, st.JobID, st.UpdatedAt = Status(s), uint64(job.Int64), time.UnixMilli(updated).UTC()
			pp.Steps = append(pp.Steps, &st)
		}
		if err := errRows(rows, "pipeline steps"); err != nil {
			return err
		}
		p = &pp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SetStepStatus sets the status of step name of pipeline pipelineID, and
// its job when jobID is not 0. Entering running counts an attempt. It
// returns ErrNotFound when there is no such step.
func (db *DB) SetStepStatus(ctx context.Context, pipelineID int64, name string, status Status, jobID uint64) error {
	if !status.Valid() {
		return &FieldError{Field: "status", Reason: fmt.Sprintf("%q is not a status", status)}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pipeline_steps SET
			attempts = attempts + (CASE WHEN ?1 = 'running' THEN 1 ELSE 0 END),
			status = ?1, job_id = coalesce(?2, job_id), updated_at = ?3
			WHERE pipeline_id = ?4 AND name = ?5`,
			string(status), nullID(int64(jobID)), db.nowUTC().UnixMilli(), pipelineID, name)
		if err != nil {
			return fmt.Errorf("data: set step %d/%s: %w", pipelineID, name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: pipeline %d step %q: %w", pipelineID, name, ErrNotFound)
		}
		return nil
	})
}

// SetPipelineStatus sets the status of pipeline id; a terminal status also
// sets finished_at. It returns ErrNotFound when there is no such pipeline.
func (db *DB) SetPipelineStatus(ctx context.Context, id int64, status Status) error {
	if !status.Valid() {
		return &FieldError{Field: "status", Reason: fmt.Sprintf("%q is not a status", status)}
	}
	now := db.nowUTC()
	var finished any
	if status.Terminal() {
		finished = now.UnixMilli()
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pipelines SET status = ?, finished_at = ? WHERE id = ?`,
			string(status), finished, id)
		if err != nil {
			return fmt.Errorf("data: set pipeline %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: pipeline %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// StepTerminal reports whether step name of pipeline pipelineID is in a
// terminal status (a retry of it must be skipped). It returns ErrNotFound
// when there is no such step.
func (db *DB) StepTerminal(ctx context.Context, pipelineID int64, name string) (bool, error) {
	var s string
	err := db.r.QueryRowContext(ctx, `SELECT status FROM pipeline_steps WHERE pipeline_id = ? AND name = ?`, pipelineID, name).Scan(&s)
	if err != nil {
		return false, notFound(err, "pipeline step", fmt.Sprintf("%d/%s", pipelineID, name))
	}
	return Status(s).Terminal(), nil
}

// PipelineTerminal reports whether pipeline id is in a terminal status. It
// returns ErrNotFound when there is no such pipeline.
func (db *DB) PipelineTerminal(ctx context.Context, id int64) (bool, error) {
	var s string
	err := db.r.QueryRowContext(ctx, `SELECT status FROM pipelines WHERE id = ?`, id).Scan(&s)
	if err != nil {
		return false, notFound(err, "pipeline", id)
	}
	return Status(s).Terminal(), nil
}
