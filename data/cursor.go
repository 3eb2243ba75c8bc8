package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Cursor kinds of the follow-graph sync. Other paginated syncs may use any
// other kind string.
const (
	CursorFollowing = "following" // the accounts an account follows: Profile.Following
	CursorFollowers = "followers" // the accounts that follow it: Profile.FollowedBy
)

// SyncCursor is where a paginated per-account sync stands.
//
// A pass starts from the start cursor (Cursor ""): the job then sets
// StartedFromStart and StartedAt, and saves the next-page cursor after each
// page. A pass that resumed from a saved cursor is partial by construction.
type SyncCursor struct {
	AccountID        int64
	Kind             string
	Cursor           string    // "" is the start
	StartedFromStart bool      // this pass began at the start cursor
	StartedAt        time.Time // when this pass began (set with StartedFromStart)
	UpdatedAt        time.Time
}

// Cursor returns the cursor of (accountID, kind). A cursor never saved is
// the zero SyncCursor (with AccountID and Kind set): start from the start.
func (db *DB) Cursor(ctx context.Context, accountID int64, kind string) (SyncCursor, error) {
	c := SyncCursor{AccountID: accountID, Kind: kind}
	var (
		started   int
		startedAt sql.NullInt64
		updated   int64
	)
	err := db.r.QueryRowContext(ctx, `SELECT cursor, started_from_start, started_at, updated_at
		FROM sync_cursors WHERE account_id = ? AND kind = ?`, accountID, kind).
		Scan(&c.Cursor, &started, &startedAt, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return c, nil
	case err != nil:
		return c, fmt.Errorf("data: cursor %d/%s: %w", accountID, kind, err)
	}
	c.StartedFromStart = started != 0
	c.StartedAt = fromMS(startedAt)
	c.UpdatedAt = time.UnixMilli(updated).UTC()
	return c, nil
}

// SetCursor saves c (UpdatedAt is set to now). The account must exist.
func (db *DB) SetCursor(ctx context.Context, c SyncCursor) error {
	if c.AccountID == 0 {
		return &FieldError{Field: "SyncCursor.AccountID", Reason: "must be set"}
	}
	if strings.TrimSpace(c.Kind) == "" {
		return &FieldError{Field: "SyncCursor.Kind", Reason: "must not be empty"}
	}
	now := db.nowUTC()
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sync_cursors (account_id, kind, cursor, started_from_start, started_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, kind) DO UPDATE SET cursor = excluded.cursor,
				started_from_start = excluded.started_from_start, started_at = excluded.started_at,
				updated_at = excluded.updated_at`,
			c.AccountID, c.Kind, c.Cursor, boolInt(c.StartedFromStart), ms(c.StartedAt), now.UnixMilli())
		if err != nil {
			return fmt.Errorf("data: set cursor %d/%s: %w", c.AccountID, c.Kind, err)
		}
		return nil
	})
}

// CompleteFollowSnapshot ends a follow-graph pass that reached the last
// page. When the pass started from the start cursor, it is a full snapshot:
// in one transaction the relationship flag of kind (CursorFollowing or
// CursorFollowers) is cleared on every profile of the account not seen since
// the pass began, and the cursor is reset to the start. It returns how many
// flags it cleared.
//
// When the pass did not start from the start cursor it clears nothing,
// resets the cursor so that the next pass is a full one, and returns
// ErrPartialSnapshot.
func (db *DB) CompleteFollowSnapshot(ctx context.Context, accountID int64, kind string) (int64, error) {
	var flag, seen string
	switch kind {
	case CursorFollowing:
		flag, seen = "following", "following_seen_at"
	case CursorFollowers:
		flag, seen = "followed_by", "followed_by_seen_at"
	default:
		return 0, &FieldError{Field: "kind", Reason: fmt.Sprintf("%q is not %s or %s", kind, CursorFollowing, CursorFollowers)}
	}
	var (
		cleared int64
		full    bool
	)
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		var (
			started   int
			startedAt sql.NullInt64
		)
		err := tx.QueryRowContext(ctx, `SELECT started_from_start, started_at FROM sync_cursors
			WHERE account_id = ? AND kind = ?`, accountID, kind).Scan(&started, &startedAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		full = err == nil && started != 0 && startedAt.Valid
		if full {
			res, err := tx.ExecContext(ctx, `UPDATE profiles SET `+flag+` = 0, updated_at = ?
				WHERE account_id = ? AND `+flag+` = 1 AND (`+seen+` IS NULL OR `+seen+` < ?)`,
				now.UnixMilli(), accountID, startedAt.Int64)
			if err != nil {
				return err
			}
			cleared, _ = res.RowsAffected()
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sync_cursors (account_id, kind, cursor, started_from_start, started_at, updated_at)
			VALUES (?, ?, '', 0, NULL, ?)
			ON CONFLICT (account_id, kind) DO UPDATE SET cursor = '', started_from_start = 0, started_at = NULL,
				updated_at = excluded.updated_at`, accountID, kind, now.UnixMilli())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("data: complete %s snapshot of account %d: %w", kind, accountID, err)
	}
	if !full {
		return 0, fmt.Errorf("data: account %d %s: %w", accountID, kind, ErrPartialSnapshot)
	}
	return cleared, nil
}
