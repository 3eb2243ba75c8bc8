package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Account is an account the schedules fan out over, with its switches.
// An account is enabled unless Disabled (so the zero Account is enabled);
// each orchestrator fans out only to enabled accounts whose switch for it
// is on (AccountsForFanOut).
type Account struct {
	ID                   int64
	Username             string
	Disabled             bool // the enabled column, negated: nothing is fanned out to it
	ContinuousProcessing bool // feed capture every FEED_SYNC_INTERVAL
	StoryAutoReply       bool
	FeedAutoEngagement   bool
	ProfileScan          bool
	FollowGraphSync      bool
	AvatarSync           bool
	ProfileRefresh       bool
	Settings             json.RawMessage // a JSON object for everything else; "{}" when empty
	NextFeedSyncAt       time.Time       // zero: due now
	LastFeedCaptureAt    time.Time       // when the coordinator last enqueued a feed capture
	LastSyncAt           time.Time
	LastSyncResult       string
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

// Switch names one of an account's automation switches: its column.
type Switch string

// The switches, one per orchestrator of the job catalog.
const (
	SwitchContinuousProcessing Switch = "continuous_processing"
	SwitchStoryAutoReply       Switch = "story_auto_reply"
	SwitchFeedAutoEngagement   Switch = "feed_auto_engagement"
	SwitchProfileScan          Switch = "profile_scan"
	SwitchFollowGraphSync      Switch = "follow_graph_sync"
	SwitchAvatarSync           Switch = "avatar_sync"
	SwitchProfileRefresh       Switch = "profile_refresh"
)

// Switches lists every switch, in column order.
func Switches() []Switch {
	return []Switch{SwitchContinuousProcessing, SwitchStoryAutoReply, SwitchFeedAutoEngagement, SwitchProfileScan,
		SwitchFollowGraphSync, SwitchAvatarSync, SwitchProfileRefresh}
}

// Switch returns a pointer to the account's field for sw, nil for an
// unknown switch.
func (a *Account) Switch(sw Switch) *bool {
	switch sw {
	case SwitchContinuousProcessing:
		return &a.ContinuousProcessing
	case SwitchStoryAutoReply:
		return &a.StoryAutoReply
	case SwitchFeedAutoEngagement:
		return &a.FeedAutoEngagement
	case SwitchProfileScan:
		return &a.ProfileScan
	case SwitchFollowGraphSync:
		return &a.FollowGraphSync
	case SwitchAvatarSync:
		return &a.AvatarSync
	case SwitchProfileRefresh:
		return &a.ProfileRefresh
	}
	return nil
}

const accountColumns = `id, username, enabled, continuous_processing, story_auto_reply, feed_auto_engagement, profile_scan,
	follow_graph_sync, avatar_sync, profile_refresh,
	settings, next_feed_sync_at, last_feed_capture_at, last_sync_at, last_sync_result, created_at, updated_at`

func scanAccount(s scanner) (*Account, error) {
	var (
		a                    Account
		en, cp, sar, fae, ps int
		fgs, av, pr          int
		settings             string
		next, capt, last     sql.NullInt64
		created, updated     int64
	)
	if err := s.Scan(&a.ID, &a.Username, &en, &cp, &sar, &fae, &ps, &fgs, &av, &pr, &settings, &next, &capt, &last,
		&a.LastSyncResult, &created, &updated); err != nil {
		return nil, err
	}
	a.Disabled = en == 0
	a.ContinuousProcessing, a.StoryAutoReply, a.FeedAutoEngagement, a.ProfileScan = cp != 0, sar != 0, fae != 0, ps != 0
	a.FollowGraphSync, a.AvatarSync, a.ProfileRefresh = fgs != 0, av != 0, pr != 0
	a.Settings = json.RawMessage(settings)
	a.NextFeedSyncAt, a.LastFeedCaptureAt, a.LastSyncAt = fromMS(next), fromMS(capt), fromMS(last)
	a.CreatedAt, a.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &a, nil
}

func (a *Account) validate() error {
	if strings.TrimSpace(a.Username) == "" {
		return &FieldError{Field: "Account.Username", Reason: "must not be empty"}
	}
	if len(a.Settings) == 0 {
		a.Settings = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(a.Settings, &obj); err != nil || obj == nil {
		return &FieldError{Field: "Account.Settings", Reason: "must be a JSON object"}
	}
	return nil
}

// CreateAccount inserts a and sets its ID and timestamps. Usernames are
// unique.
func (db *DB) CreateAccount(ctx context.Context, a *Account) error {
	if err := a.validate(); err != nil {
		return err
	}
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO accounts
			(username, enabled, continuous_processing, story_auto_reply, feed_auto_engagement, profile_scan,
			 follow_graph_sync, avatar_sync, profile_refresh, settings,
			 next_feed_sync_at, last_sync_at, last_sync_result, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			a.Username, boolInt(!a.Disabled), boolInt(a.ContinuousProcessing), boolInt(a.StoryAutoReply),
			boolInt(a.FeedAutoEngagement), boolInt(a.ProfileScan), boolInt(a.FollowGraphSync), boolInt(a.AvatarSync),
			boolInt(a.ProfileRefresh), string(a.Settings), ms(a.NextFeedSyncAt), ms(a.LastSyncAt), a.LastSyncResult,
			now.UnixMilli(), now.UnixMilli()).Scan(&a.ID)
	})
	if err != nil {
		return fmt.Errorf("data: create account %q: %w", a.Username, conflict(err))
	}
	a.CreatedAt, a.UpdatedAt = now, now
	return nil
}

// CreateAccounts inserts accounts in one transaction, all or nothing, and
// sets their IDs and timestamps (a bulk CreateAccount, for seeding).
func (db *DB) CreateAccounts(ctx context.Context, as []*Account) error {
	for _, a := range as {
		if err := a.validate(); err != nil {
			return err
		}
	}
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO accounts
			(username, enabled, continuous_processing, story_auto_reply, feed_auto_engagement, profile_scan,
			 follow_graph_sync, avatar_sync, profile_refresh, settings, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, a := range as {
			if err := stmt.QueryRowContext(ctx, a.Username, boolInt(!a.Disabled), boolInt(a.ContinuousProcessing),
				boolInt(a.StoryAutoReply), boolInt(a.FeedAutoEngagement), boolInt(a.ProfileScan), boolInt(a.FollowGraphSync),
				boolInt(a.AvatarSync), boolInt(a.ProfileRefresh), string(a.Settings), now.UnixMilli(), now.UnixMilli()).Scan(&a.ID); err != nil {
				return fmt.Errorf("account %q: %w", a.Username, conflict(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data: create accounts: %w", err)
	}
	for _, a := range as {
		a.CreatedAt, a.UpdatedAt = now, now
	}
	return nil
}

// UpdateAccount saves the username, enabled, switches and settings of a
// (the operator's edits). Sync bookkeeping has its own methods. It returns
// ErrNotFound when there is no such account.
func (db *DB) UpdateAccount(ctx context.Context, a *Account) error {
	if err := a.validate(); err != nil {
		return err
	}
	now := db.nowUTC()
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET username = ?, enabled = ?, continuous_processing = ?,
			story_auto_reply = ?, feed_auto_engagement = ?, profile_scan = ?, follow_graph_sync = ?, avatar_sync = ?,
			profile_refresh = ?, settings = ?, updated_at = ?
			WHERE id = ?`,
			a.Username, boolInt(!a.Disabled), boolInt(a.ContinuousProcessing), boolInt(a.StoryAutoReply),
			boolInt(a.FeedAutoEngagement), boolInt(a.ProfileScan), boolInt(a.FollowGraphSync), boolInt(a.AvatarSync),
			boolInt(a.ProfileRefresh), string(a.Settings), now.UnixMilli(), a.ID)
		if err != nil {
			return fmt.Errorf("data: update account %d: %w", a.ID, conflict(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: account %d: %w", a.ID, ErrNotFound)
		}
		a.UpdatedAt = now
		return nil
	})
}

// conflict marks a unique-constraint failure as ErrConflict.
func conflict(err error) error {
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	return err
}

// AccountByID returns one account, or ErrNotFound.
func (db *DB) AccountByID(ctx context.Context, id int64) (*Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "account", id)
	}
	return a, nil
}

// AccountsAfter returns up to limit accounts with id > afterID in ascending
// id order: the batches of the seed's ScheduledAccountBatching. An empty
// result means there are no more.
func (db *DB) AccountsAfter(ctx context.Context, afterID int64, limit int) ([]*Account, error) {
	if limit <= 0 || limit > 10_000 {
		return nil, &FilterError{Param: "limit", Reason: "must be between 1 and 10000"}
	}
	return db.accounts(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id > ? ORDER BY id LIMIT ?`, afterID, limit)
}

// AccountByUsername returns one account, or ErrNotFound.
func (db *DB) AccountByUsername(ctx context.Context, username string) (*Account, error) {
	a, err := scanAccount(db.r.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = ?`, username))
	if err != nil {
		return nil, notFound(err, "account", username)
	}
	return a, nil
}

// AccountsForFanOut returns up to limit enabled accounts whose switch sw
// is on, with id > afterID, in ascending id order: the batches of an
// orchestrator's fan-out (the seed's ScheduledAccountBatching).
func (db *DB) AccountsForFanOut(ctx context.Context, sw Switch, afterID int64, limit int) ([]*Account, error) {
	if limit <= 0 || limit > 10_001 {
		return nil, &FilterError{Param: "limit", Reason: "must be between 1 and 10001"}
	}
	var a Account
	if a.Switch(sw) == nil {
		return nil, &FilterError{Param: "switch", Reason: fmt.Sprintf("%q is not an account switch", sw)}
	}
	return db.accounts(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE id > ? AND enabled = 1 AND `+string(sw)+` = 1 ORDER BY id LIMIT ?`, afterID, limit)
}

// CountAccounts returns how many accounts there are.
func (db *DB) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
		return 0, fmt.Errorf("data: count accounts: %w", err)
	}
	return n, nil
}

// DueFeedSyncs returns up to limit enabled accounts with continuous
// processing on whose next feed sync is due at now (or was never set), the
// longest-waiting first.
func (db *DB) DueFeedSyncs(ctx context.Context, now time.Time, limit int) ([]*Account, error) {
	if limit <= 0 || limit > 10_000 {
		return nil, &FilterError{Param: "limit", Reason: "must be between 1 and 10000"}
	}
	return db.accounts(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE enabled = 1 AND continuous_processing = 1 AND (next_feed_sync_at IS NULL OR next_feed_sync_at <= ?)
		ORDER BY next_feed_sync_at, id LIMIT ?`, now.UnixMilli(), limit)
}

func (db *DB) accounts(ctx context.Context, query string, args ...any) ([]*Account, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("data: list accounts: %w", err)
	}
	var out []*Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: list accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, errRows(rows, "list accounts")
}

// SetNextFeedSync sets when account id's next feed capture is due. It
// returns ErrNotFound when there is no such account.
func (db *DB) SetNextFeedSync(ctx context.Context, id int64, at time.Time) error {
	return db.updateAccount(ctx, id, `next_feed_sync_at = ?`, ms(at))
}

// ScheduleFeedSync records that a home-feed capture of account id was
// enqueued at capturedAt and that the next one is due at next.
func (db *DB) ScheduleFeedSync(ctx context.Context, id int64, capturedAt, next time.Time) error {
	return db.updateAccount(ctx, id, `last_feed_capture_at = ?, next_feed_sync_at = ?`, ms(capturedAt), ms(next))
}

// RecordSync records the end of a sync of account id: when, and a short
// result ("ok", "partial: 3 pages", an error message).
func (db *DB) RecordSync(ctx context.Context, id int64, at time.Time, result string) error {
	return db.updateAccount(ctx, id, `last_sync_at = ?, last_sync_result = ?`, ms(at), result)
}

func (db *DB) updateAccount(ctx context.Context, id int64, set string, args ...any) error {
	return db.updateRow(ctx, "accounts", "account", id, set+`, updated_at = ?`, append(args, db.nowUTC().UnixMilli())...)
}

// updateRow runs UPDATE table SET set WHERE id = id in one write
// transaction; what names the row in errors, and no such row is
// ErrNotFound.
func (db *DB) updateRow(ctx context.Context, table, what string, id int64, set string, args ...any) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE `+table+` SET `+set+` WHERE id = ?`, append(args, id)...)
		if err != nil {
			return fmt.Errorf("data: update %s %d: %w", what, id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("data: %s %d: %w", what, id, ErrNotFound)
		}
		return nil
	})
}

// Profile is a profile an account sees. Following means the account follows
// the profile; FollowedBy means the profile follows the account.
type Profile struct {
	ID              int64
	AccountID       int64
	Username        string
	DisplayName     string
	FollowersCount  int64
	FollowingCount  int64
	Following       bool
	FollowedBy      bool
	AvatarURL       string
	LastRefreshedAt time.Time // set by a full profile refresh
	UpdatedAt       time.Time
}

const profileColumns = `id, account_id, username, display_name, followers_count, following_count, following,
	followed_by, avatar_url, last_refreshed_at, updated_at`

func scanProfile(s scanner) (*Profile, error) {
	var (
		p         Profile
		fol, fby  int
		refreshed sql.NullInt64
		updated   int64
	)
	if err := s.Scan(&p.ID, &p.AccountID, &p.Username, &p.DisplayName, &p.FollowersCount, &p.FollowingCount,
		&fol, &fby, &p.AvatarURL, &refreshed, &updated); err != nil {
		return nil, err
	}
	p.Following, p.FollowedBy = fol != 0, fby != 0
	p.LastRefreshedAt, p.UpdatedAt = fromMS(refreshed), time.UnixMilli(updated).UTC()
	return &p, nil
}

// UpsertProfiles inserts or updates profiles by (AccountID, Username) in one
// transaction and sets their IDs. On an existing profile:
//   - DisplayName and AvatarURL change only when non-empty;
//   - the counts and LastRefreshedAt change only when LastRefreshedAt is set
//     (a full refresh carries all of them);
//   - Following and FollowedBy are only ever set, never cleared: a true flag
//     also stamps when the relationship was last seen. Only
//     CompleteFollowSnapshot clears flags, so a partial sync cannot.
func (db *DB) UpsertProfiles(ctx context.Context, ps []*Profile) error {
	for i, p := range ps {
		switch {
		case p == nil:
			return &FieldError{Field: fmt.Sprintf("profiles[%d]", i), Reason: "nil profile"}
		case p.AccountID == 0:
			return &FieldError{Field: fmt.Sprintf("profiles[%d].AccountID", i), Reason: "must be set"}
		case strings.TrimSpace(p.Username) == "":
			return &FieldError{Field: fmt.Sprintf("profiles[%d].Username", i), Reason: "must not be empty"}
		}
	}
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO profiles AS p
			(account_id, username, display_name, followers_count, following_count, following, followed_by,
			 following_seen_at, followed_by_seen_at, avatar_url, last_refreshed_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?6 THEN ?9 END, CASE WHEN ?7 THEN ?9 END, ?8, ?10, ?9)
			ON CONFLICT (account_id, username) DO UPDATE SET
				display_name        = CASE WHEN ?3 != '' THEN ?3 ELSE p.display_name END,
				avatar_url          = CASE WHEN ?8 != '' THEN ?8 ELSE p.avatar_url END,
				followers_count     = CASE WHEN ?10 IS NOT NULL THEN ?4 ELSE p.followers_count END,
				following_count     = CASE WHEN ?10 IS NOT NULL THEN ?5 ELSE p.following_count END,
				last_refreshed_at   = coalesce(?10, p.last_refreshed_at),
				following           = max(p.following, ?6),
				followed_by         = max(p.followed_by, ?7),
				following_seen_at   = CASE WHEN ?6 THEN ?9 ELSE p.following_seen_at END,
				followed_by_seen_at = CASE WHEN ?7 THEN ?9 ELSE p.followed_by_seen_at END,
				updated_at          = ?9
			RETURNING id`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range ps {
			err := stmt.QueryRowContext(ctx, p.AccountID, p.Username, p.DisplayName, p.FollowersCount, p.FollowingCount,
				boolInt(p.Following), boolInt(p.FollowedBy), p.AvatarURL, now.UnixMilli(), ms(p.LastRefreshedAt)).Scan(&p.ID)
			if err != nil {
				return fmt.Errorf("profile %q of account %d: %w", p.Username, p.AccountID, err)
			}
			p.UpdatedAt = now
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data: upsert profiles: %w", err)
	}
	return nil
}

// ProfileByID returns one profile, or ErrNotFound.
func (db *DB) ProfileByID(ctx context.Context, id int64) (*Profile, error) {
	p, err := scanProfile(db.r.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM profiles WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "profile", id)
	}
	return p, nil
}

// ProfileSort orders profiles.
type ProfileSort string

// Profile orders.
const (
	ProfilesByUpdated   ProfileSort = "updated_at"      // most recently updated first (the default)
	ProfilesByFollowers ProfileSort = "followers_count" // most followed first
	ProfilesByUsername  ProfileSort = "username"        // A to Z
)

// ProfileFilter selects profiles. AccountID 0 means every account.
type ProfileFilter struct {
	AccountID  int64
	Following  *bool  // nil: either
	FollowedBy *bool  // nil: either
	Q          string // substring of username or display name
	Sort       ProfileSort
	Offset     int
	Limit      int // default 50, at most 1000
}

// FindProfiles returns a page of profiles and the total matching.
func (db *DB) FindProfiles(ctx context.Context, f ProfileFilter) ([]*Profile, int, error) {
	var where []string
	var args []any
	if f.AccountID != 0 {
		where = append(where, "account_id = ?")
		args = append(args, f.AccountID)
	}
	if f.Following != nil {
		where = append(where, "following = ?")
		args = append(args, boolInt(*f.Following))
	}
	if f.FollowedBy != nil {
		where = append(where, "followed_by = ?")
		args = append(args, boolInt(*f.FollowedBy))
	}
	if q := strings.TrimSpace(f.Q); q != "" {
		if len(q) > MaxFilterText {
			return nil, 0, &FilterError{Param: "q", Reason: fmt.Sprintf("at most %d bytes", MaxFilterText)}
		}
		p := likePattern(q)
		where = append(where, `(username LIKE ? ESCAPE '\' OR display_name LIKE ? ESCAPE '\')`)
		args = append(args, p, p)
	}
	var order string
	switch f.Sort {
	case "", ProfilesByUpdated:
		order = "updated_at DESC, id DESC"
	case ProfilesByFollowers:
		order = "followers_count DESC, id DESC"
	case ProfilesByUsername:
		order = "username, id"
	default:
		return nil, 0, &FilterError{Param: "sort", Reason: fmt.Sprintf("%q is not updated_at, followers_count or username", f.Sort)}
	}
	limit, offset, err := page(f.Limit, f.Offset)
	if err != nil {
		return nil, 0, err
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	var (
		out   []*Profile
		total int
	)
	err = db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+profileColumns+` FROM profiles`+w+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
			append(args, limit, offset)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			p, err := scanProfile(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, p)
		}
		if err := errRows(rows, "find profiles"); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM profiles`+w, args...).Scan(&total)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("data: find profiles: %w", err)
	}
	return out, total, nil
}
