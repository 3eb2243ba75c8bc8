package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CronState is the stored state of one recurring schedule entry: the
// operator's override, what the scheduler remembers about its ticks (the
// cron package's History is Since, LastTick and Missed), and its last
// enqueues.
type CronState struct {
	Name    string
	Enabled *bool // operator override; nil: use the schedule file
	// Line is the cron line the scheduler last took the entry with; ""
	// before it ever did.
	Line string
	// Active is whether the entry was enabled and runnable when the
	// scheduler last took it.
	Active bool
	// Since is when the entry came under the scheduler's care (first
	// seen, re-enabled, or its line changed); zero before.
	Since       time.Time
	LastTick    time.Time // the schedule tick last fired (UTC); zero: never
	LastFiredAt time.Time // when it was fired
	LastJobID   uint64    // the job enqueued for it
	// Missed is the latest tick reported missed; zero: none.
	Missed time.Time
	// ManualJobID and ManualAt are the last enqueue-now; zero: none.
	ManualJobID uint64
	ManualAt    time.Time
}

const cronColumns = `name, enabled, line, active, since, last_tick, last_fired_at, last_job_id, missed_last, manual_job_id, manual_at`

func scanCron(s scanner) (CronState, error) {
	var (
		c                  CronState
		enabled            sql.NullInt64
		active             int
		since, tick, fired sql.NullInt64
		job, manualJob     sql.NullInt64
		missed, manualAt   sql.NullInt64
	)
	if err := s.Scan(&c.Name, &enabled, &c.Line, &active, &since, &tick, &fired, &job, &missed, &manualJob, &manualAt); err != nil {
		return c, err
	}
	if enabled.Valid {
		b := enabled.Int64 != 0
		c.Enabled = &b
	}
	c.Active = active != 0
	c.Since, c.LastTick, c.LastFiredAt, c.LastJobID = fromMS(since), fromMS(tick), fromMS(fired), uint64(job.Int64)
	c.Missed, c.ManualJobID, c.ManualAt = fromMS(missed), uint64(manualJob.Int64), fromMS(manualAt)
	return c, nil
}

// CronState returns the state of entry name; an entry with no state yet is
// the zero CronState with Name set.
func (db *DB) CronState(ctx context.Context, name string) (CronState, error) {
	c, err := scanCron(db.r.QueryRowContext(ctx, `SELECT `+cronColumns+` FROM cron_entries WHERE name = ?`, name))
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
	rows, err := db.r.QueryContext(ctx, `SELECT `+cronColumns+` FROM cron_entries ORDER BY name`)
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
// or nil to fall back to the schedule file. It changes nothing else.
func (db *DB) SetCronEnabled(ctx context.Context, name string, enabled *bool) error {
	if strings.TrimSpace(name) == "" {
		return &FieldError{Field: "name", Reason: "must not be empty"}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := setOverride(ctx, tx, name, enabled, db.nowUTC()); err != nil {
			return fmt.Errorf("data: set cron %q enabled: %w", name, err)
		}
		return nil
	})
}

func setOverride(ctx context.Context, tx *sql.Tx, name string, enabled *bool, now time.Time) error {
	var v any
	if enabled != nil {
		v = boolInt(*enabled)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO cron_entries (name, enabled, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`,
		name, v, now.UnixMilli())
	return err
}

// CronSync is what the scheduler stores about an entry it takes into its
// care: the cron line it runs the entry with, whether it runs it, and since
// when (the cron package's History.Since).
type CronSync struct {
	Name   string
	Line   string
	Active bool
	Since  time.Time // zero keeps the stored value
}

func (c CronSync) validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return &FieldError{Field: "CronSync.Name", Reason: "must not be empty"}
	}
	return nil
}

// SyncCron stores the line, the active flag and, when set, the since of
// every entry in one transaction, creating the entries that have no state
// yet. The scheduler calls it at start-up for the whole schedule.
func (db *DB) SyncCron(ctx context.Context, entries []CronSync) error {
	for _, c := range entries {
		if err := c.validate(); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, syncCronSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := db.nowUTC().UnixMilli()
		for _, c := range entries {
			if _, err := stmt.ExecContext(ctx, c.Name, c.Line, boolInt(c.Active), ms(c.Since), now); err != nil {
				return fmt.Errorf("entry %q: %w", c.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data: sync cron entries: %w", err)
	}
	return nil
}

const syncCronSQL = `INSERT INTO cron_entries (name, line, active, since, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
	ON CONFLICT (name) DO UPDATE SET line = ?2, active = ?3, since = coalesce(?4, since), updated_at = ?5`

// ToggleCron stores the operator's override enabled (nil: the schedule
// file decides) together with the scheduler's view of the entry in c, in
// one transaction: an entry the operator re-enables gets a new Since, so
// that the time it spent disabled is never caught up.
func (db *DB) ToggleCron(ctx context.Context, c CronSync, enabled *bool) error {
	if err := c.validate(); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := db.nowUTC()
		if err := setOverride(ctx, tx, c.Name, enabled, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, syncCronSQL, c.Name, c.Line, boolInt(c.Active), ms(c.Since), now.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("data: toggle cron %q: %w", c.Name, err)
	}
	return nil
}

// CronRun is what one scheduler decision did for one entry: the tick it
// fired and the job that holds it, and the range of ticks it reported
// missed. Either part may be empty.
type CronRun struct {
	Entry string
	// Fire is the scheduled instant of the tick enqueued; zero when none
	// was. JobID is the job enqueued for it (or the job already holding its
	// unique key) and FiredAt when (zero: the store's clock).
	Fire    time.Time
	JobID   uint64
	FiredAt time.Time
	// MissedFirst and MissedLast bound the ticks reported missed; zero when
	// none were. ReportedAt is when (zero: the store's clock).
	MissedFirst, MissedLast time.Time
	ReportedAt              time.Time
}

func (r CronRun) validate() error {
	switch {
	case strings.TrimSpace(r.Entry) == "":
		return &FieldError{Field: "CronRun.Entry", Reason: "must not be empty"}
	case r.MissedFirst.IsZero() != r.MissedLast.IsZero():
		return &FieldError{Field: "CronRun.MissedFirst", Reason: "and MissedLast must be set together"}
	case r.MissedLast.Before(r.MissedFirst):
		return &FieldError{Field: "CronRun.MissedLast", Reason: "must not be before MissedFirst"}
	}
	return nil
}

// RecordCronRuns records runs in one transaction and reports, per run,
// whether its fire was new. A fire of an (entry, tick) already recorded
// changes nothing (a tick fires at most once); otherwise it is added to
// cron_fires and moves the entry's last_tick, last_fired_at and last_job_id
// forward (never back to an older tick). A missed range is added to
// cron_misses (once per (entry, first tick)) and moves the entry's
// missed_last forward.
func (db *DB) RecordCronRuns(ctx context.Context, runs []CronRun) ([]bool, error) {
	for _, r := range runs {
		if err := r.validate(); err != nil {
			return nil, err
		}
	}
	fresh := make([]bool, len(runs))
	if len(runs) == 0 {
		return fresh, nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := db.nowUTC()
		fire, err := tx.PrepareContext(ctx, `INSERT INTO cron_fires (entry, tick, job_id, fired_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (entry, tick) DO NOTHING`)
		if err != nil {
			return err
		}
		defer fire.Close()
		last, err := tx.PrepareContext(ctx, `INSERT INTO cron_entries (name, last_tick, last_fired_at, last_job_id, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT (name) DO UPDATE SET
				last_fired_at = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?3 ELSE last_fired_at END,
				last_job_id   = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?4 ELSE last_job_id END,
				last_tick     = CASE WHEN last_tick IS NULL OR ?2 >= last_tick THEN ?2 ELSE last_tick END,
				updated_at    = ?5`)
		if err != nil {
			return err
		}
		defer last.Close()
		miss, err := tx.PrepareContext(ctx, `INSERT INTO cron_misses (entry, first_tick, last_tick, reported_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (entry, first_tick) DO NOTHING`)
		if err != nil {
			return err
		}
		defer miss.Close()
		missedLast, err := tx.PrepareContext(ctx, `INSERT INTO cron_entries (name, missed_last, updated_at) VALUES (?1, ?2, ?3)
			ON CONFLICT (name) DO UPDATE SET missed_last = max(coalesce(missed_last, ?2), ?2), updated_at = ?3`)
		if err != nil {
			return err
		}
		defer missedLast.Close()

		for i, r := range runs {
			if !r.Fire.IsZero() {
				at := r.FiredAt
				if at.IsZero() {
					at = now
				}
				res, err := fire.ExecContext(ctx, r.Entry, r.Fire.UnixMilli(), int64(r.JobID), at.UnixMilli())
				if err != nil {
					return fmt.Errorf("fire of %q at %s: %w", r.Entry, r.Fire.UTC().Format(time.RFC3339), err)
				}
				if n, _ := res.RowsAffected(); n > 0 {
					fresh[i] = true
					if _, err := last.ExecContext(ctx, r.Entry, r.Fire.UnixMilli(), at.UnixMilli(), int64(r.JobID), now.UnixMilli()); err != nil {
						return fmt.Errorf("fire of %q: %w", r.Entry, err)
					}
				}
			}
			if !r.MissedLast.IsZero() {
				at := r.ReportedAt
				if at.IsZero() {
					at = now
				}
				if _, err := miss.ExecContext(ctx, r.Entry, r.MissedFirst.UnixMilli(), r.MissedLast.UnixMilli(), at.UnixMilli()); err != nil {
					return fmt.Errorf("misses of %q: %w", r.Entry, err)
				}
				if _, err := missedLast.ExecContext(ctx, r.Entry, r.MissedLast.UnixMilli(), now.UnixMilli()); err != nil {
					return fmt.Errorf("misses of %q: %w", r.Entry, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data: record cron runs: %w", err)
	}
	return fresh, nil
}

// RecordCronFire records that entry fired for tick (the schedule's tick
// time; stored in UTC to the millisecond) with job jobID at firedAt. It
// returns false, and changes nothing, when that (entry, tick) was already
// recorded: a tick fires at most once. It is RecordCronRuns for one fire.
func (db *DB) RecordCronFire(ctx context.Context, entry string, tick time.Time, jobID uint64, firedAt time.Time) (bool, error) {
	if tick.IsZero() {
		return false, &FieldError{Field: "tick", Reason: "must be set"}
	}
	fresh, err := db.RecordCronRuns(ctx, []CronRun{{Entry: entry, Fire: tick, JobID: jobID, FiredAt: firedAt}})
	if err != nil {
		return false, err
	}
	return fresh[0], nil
}

// RecordCronManual records an enqueue-now of entry: job jobID at at (zero:
// the store's clock). It does not touch the entry's ticks.
func (db *DB) RecordCronManual(ctx context.Context, entry string, jobID uint64, at time.Time) error {
	if strings.TrimSpace(entry) == "" {
		return &FieldError{Field: "entry", Reason: "must not be empty"}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		now := db.nowUTC()
		if at.IsZero() {
			at = now
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO cron_entries (name, manual_job_id, manual_at, updated_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (name) DO UPDATE SET manual_job_id = ?2, manual_at = ?3, updated_at = ?4`,
			entry, int64(jobID), at.UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("data: record enqueue-now of %q: %w", entry, err)
	}
	return nil
}

// CronMiss is one range of ticks an entry missed: every tick from First to
// Last (both included) never fired.
type CronMiss struct {
	Entry       string
	First, Last time.Time
	ReportedAt  time.Time
}

// CronMisses returns the newest perEntry missed ranges of every entry (by
// last tick), by entry name and then newest first. perEntry must be 1 to
// 1000.
func (db *DB) CronMisses(ctx context.Context, perEntry int) ([]CronMiss, error) {
	if perEntry < 1 || perEntry > 1000 {
		return nil, &FieldError{Field: "perEntry", Reason: fmt.Sprintf("must be 1..1000 (got %d)", perEntry)}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT entry, first_tick, last_tick, reported_at FROM (
			SELECT entry, first_tick, last_tick, reported_at,
			       row_number() OVER (PARTITION BY entry ORDER BY last_tick DESC) AS n
			FROM cron_misses)
		WHERE n <= ? ORDER BY entry, last_tick DESC`, perEntry)
	if err != nil {
		return nil, fmt.Errorf("data: cron misses: %w", err)
	}
	var out []CronMiss
	for rows.Next() {
		var (
			m                   CronMiss
			first, last, report int64
		)
		if err := rows.Scan(&m.Entry, &first, &last, &report); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: cron misses: %w", err)
		}
		m.First, m.Last, m.ReportedAt = time.UnixMilli(first).UTC(), time.UnixMilli(last).UTC(), time.UnixMilli(report).UTC()
		out = append(out, m)
	}
	return out, errRows(rows, "cron misses")
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

// PruneCronFires deletes fire records fired before `before` and missed
// ranges reported before it, keeping each entry's newest fire and newest
// missed range, and returns how many rows it deleted. The scheduler's
// bookkeeping needs neither (cron_entries holds what it needs); they are the
// audit trail of what fired and what did not.
func (db *DB) PruneCronFires(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM cron_fires WHERE fired_at < ?
				AND tick < (SELECT max(tick) FROM cron_fires newest WHERE newest.entry = cron_fires.entry)`,
			`DELETE FROM cron_misses WHERE reported_at < ?
				AND last_tick < (SELECT max(last_tick) FROM cron_misses newest WHERE newest.entry = cron_misses.entry)`,
		} {
			res, err := tx.ExecContext(ctx, q, before.UnixMilli())
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("data: prune cron fires: %w", err)
	}
	return n, nil
}
