package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CronState is the stored state of one recurring schedule entry.
type CronState struct {
	Name        string
	Enabled     *bool     // operator override; nil: use the schedule file
	LastTick    time.Time // the schedule tick last fired (UTC); zero: never
	LastFiredAt time.Time // when it was fired
	LastJobID   uint64
}

func scanCron(s scanner) (CronState, error) {
	var (
		c           CronState
		enabled     sql.NullInt64
		tick, fired sql.NullInt64
		job         sql.NullInt64
	)
	if err := s.Scan(&c.Name, &enabled, &tick, &fired, &job); err != nil {
		return c, err
	}
	if enabled.Valid {
		b := enabled.Int64 != 0
		c.Enabled = &b
	}
	c.LastTick, c.LastFiredAt, c.LastJobID = fromMS(tick), fromMS(fired), uint64(job.Int64)
	return c, nil
}

// CronState returns the state of entry name; an entry with no state yet is
// the zero CronState with Name set.
func (db *DB) CronState(ctx context.Context, name string) (CronState, error) {
	c, err := scanCron(db.r.QueryRowContext(ctx, `SELECT name, enabled, last_tick, last_fired_at, last_job_id
		FROM cron_entries WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return CronState{Name: name}, nil
	}
	if err != nil {
		return CronState{Name: name}, fmt.Errorf("data: cron state %q: %w", name, err)
	}
	return c, nil
}

// CronStates returns the state of every entry that has one, by name.
func (db *DB) CronStates(ctx context.Context) ([]CronState, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT name, enabled, last_tick, last_fired_at, last_job_id
		FROM cron_entries ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("data: cron states: %w", err)
	}
	var out []CronState
	for rows.Next() {
		c, err := scanCron(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: cron states: %w", err)
		}
		out = append(out, c)
	}
	return out, errRows(rows, "cron states")
}

// SetCronEnabled sets the operator's override of entry name: true or false,
// or nil to fall back to the schedule file.
func (db *DB) SetCronEnabled(ctx context.Context, name string, enabled *bool) error {
	if strings.TrimSpace(name) == "" {
		return &FieldError{Field: "name", Reason: "must not be empty"}
	}
	var v any
	if enabled != nil {
		v = boolInt(*enabled)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO cron_entries (name, enabled, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`,
			name, v, db.nowUTC().UnixMilli())
		if err != nil {
			return fmt.Errorf("data: set cron %q enabled: %w", name, err)
		}
		return nil
	})
}

// RecordCronFire records that entry fired for tick (the schedule's tick
// time; stored in UTC to the millisecond) with job jobID at firedAt. It
// returns false, and changes nothing, when that (entry, tick) was already
// recorded: a tick fires at most once. In the same transaction it moves the
// entry's last_tick, last_fired_at and last_job_id forward (never back to an
// older tick).
func (db *DB) RecordCronFire(ctx context.Context, entry string, tick time.Time, jobID uint64, firedAt time.Time) (bool, error) {
	if strings.TrimSpace(entry) == "" {
		return false, &FieldError{Field: "entry", Reason: "must not be empty"}
	}
	if tick.IsZero() {
		return false, &FieldError{Field: "tick", Reason: "must be set"}
	}
	if firedAt.IsZero() {
		firedAt = db.nowUTC()
	}
	var recorded bool
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO cron_fires (entry, tick, job_id, fired_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (entry, tick) DO NOTHING`, entry, tick.UnixMilli(), int64(jobID), firedAt.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		recorded = true
		_, err = tx.ExecContext(ctx, `INSERT INTO cron_entries (name, last_tick, last_fired_at, last_job_id, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT (name) DO UPDATE SET
				last_fired_at = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?3 ELSE last_fired_at END,
				last_job_id   = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?4 ELSE last_job_id END,
				last_tick     = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?2 ELSE last_tick END,
				updated_at    = ?5`,
			entry, tick.UnixMilli(), firedAt.UnixMilli(), int64(jobID), db.nowUTC().UnixMilli())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("data: record fire of %q at %s: %w", entry, tick.UTC().Format(time.RFC3339), err)
	}
	return recorded, nil
}

// CronFired reports whether (entry, tick) was recorded.
func (db *DB) CronFired(ctx context.Context, entry string, tick time.Time) (bool, error) {
	var one int
	err := db.r.QueryRowContext(ctx, `SELECT 1 FROM cron_fires WHERE entry = ? AND tick = ?`, entry, tick.UnixMilli()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("data: cron fired %q: %w", entry, err)
	}
	return true, nil
}

// PruneCronFires deletes fire records older than before, keeping each
// entry's newest tick, and returns how many it deleted. Keep at least as much
// history as the scheduler catches up after downtime.
func (db *DB) PruneCronFires(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM cron_fires WHERE fired_at < ?
			AND tick < (SELECT max(tick) FROM cron_fires newest WHERE newest.entry = cron_fires.entry)`, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("data: prune cron fires: %w", err)
	}
	return n, nil
}
