package data

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// HealthCheck is one probe of a service: "local_ai", "ollama",
// "queue:<name>", …
type HealthCheck struct {
	ID        int64
	Service   string
	OK        bool
	Status    string // short state: "ok", "degraded", "down", an HTTP status
	Latency   time.Duration
	Error     string
	CheckedAt time.Time // zero means now on record
}

// RecordHealthCheck stores one probe and sets its ID.
func (db *DB) RecordHealthCheck(ctx context.Context, hc *HealthCheck) error {
	if strings.TrimSpace(hc.Service) == "" {
		return &FieldError{Field: "HealthCheck.Service", Reason: "must not be empty"}
	}
	if hc.CheckedAt.IsZero() {
		hc.CheckedAt = db.nowUTC()
	}
	hc.CheckedAt = hc.CheckedAt.UTC().Truncate(time.Millisecond)
	err := db.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO health_checks (service, ok, status, latency_ms, error, checked_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, hc.Service, boolInt(hc.OK), hc.Status,
			hc.Latency.Milliseconds(), hc.Error, hc.CheckedAt.UnixMilli()).Scan(&hc.ID)
	})
	if err != nil {
		return fmt.Errorf("data: record health check of %s: %w", hc.Service, err)
	}
	return nil
}

// LatestHealth returns the newest probe of every service, by service name.
func (db *DB) LatestHealth(ctx context.Context) ([]HealthCheck, error) {
	rows, err := db.r.QueryContext(ctx, `
		SELECT h.id, h.service, h.ok, h.status, h.latency_ms, h.error, h.checked_at
		  FROM (SELECT DISTINCT service FROM health_checks) s
		  JOIN health_checks h ON h.id = (
		       SELECT id FROM health_checks WHERE service = s.service ORDER BY checked_at DESC, id DESC LIMIT 1)
		 ORDER BY h.service`)
	if err != nil {
		return nil, fmt.Errorf("data: latest health: %w", err)
	}
	var out []HealthCheck
	for rows.Next() {
		var (
			hc      HealthCheck
			ok      int
			latency int64
			checked int64
		)
		if err := rows.Scan(&hc.ID, &hc.Service, &ok, &hc.Status, &latency, &hc.Error, &checked); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: latest health: %w", err)
		}
		hc.OK, hc.Latency, hc.CheckedAt = ok != 0, time.Duration(latency)*time.Millisecond, time.UnixMilli(checked).UTC()
		out = append(out, hc)
	}
	return out, errRows(rows, "latest health")
}

// PruneHealthChecks deletes probes older than before, keeping the newest of
// each service so that LatestHealth never loses a service, and returns how
// many it deleted.
func (db *DB) PruneHealthChecks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM health_checks WHERE checked_at < ?
			AND id NOT IN (
			    SELECT (SELECT id FROM health_checks h WHERE h.service = s.service ORDER BY checked_at DESC, id DESC LIMIT 1)
			      FROM (SELECT DISTINCT service FROM health_checks) s)`, before.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("data: prune health checks: %w", err)
	}
	return n, nil
}
