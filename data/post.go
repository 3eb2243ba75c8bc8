package data

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Post is a post captured from an account's home feed or a profile scan.
// (AccountID, PostID) is unique: a post seen again is not stored again.
type Post struct {
	ID         int64
	AccountID  int64
	PostID     string // the outside service's id
	ProfileID  int64  // the author's profile, 0 when unknown
	Author     string
	Caption    string
	MediaURL   string
	MediaType  MediaType // MediaImage when not set
	TakenAt    time.Time
	CapturedAt time.Time
	AnalyzedAt time.Time       // zero until analysed
	Analysis   json.RawMessage // the local AI service's answer; nil until analysed
}

// MediaType is the kind of a post's media.
type MediaType string

// The media types: a video goes through video processing and frame
// generation before visual analysis.
const (
	MediaImage MediaType = "image"
	MediaVideo MediaType = "video"
)

// Valid reports whether t is one of the media types.
func (t MediaType) Valid() bool { return t == MediaImage || t == MediaVideo }

const postColumns = `id, account_id, post_id, profile_id, author, caption, media_url, media_type, taken_at, captured_at,
	analyzed_at, analysis`

func scanPost(s scanner) (*Post, error) {
	var (
		p               Post
		profile         sql.NullInt64
		taken, analyzed sql.NullInt64
		captured        int64
		analysis        sql.NullString
	)
	if err := s.Scan(&p.ID, &p.AccountID, &p.PostID, &profile, &p.Author, &p.Caption, &p.MediaURL, &p.MediaType, &taken,
		&captured, &analyzed, &analysis); err != nil {
		return nil, err
	}
	p.ProfileID = profile.Int64
	p.TakenAt, p.AnalyzedAt = fromMS(taken), fromMS(analyzed)
	p.CapturedAt = time.UnixMilli(captured).UTC()
	if analysis.Valid {
		p.Analysis = json.RawMessage(analysis.String)
	}
	return &p, nil
}

// StorePosts inserts the posts that are new (by AccountID and PostID) in
// one transaction, setting CapturedAt to now, and returns every given post
// as stored — the new ones and those stored before — with IDs set, in the
// given order, and how many were new. A post without a MediaType is an
// image.
func (db *DB) StorePosts(ctx context.Context, ps []*Post) ([]*Post, int, error) {
	for i, p := range ps {
		switch {
		case p == nil:
			return nil, 0, &FieldError{Field: fmt.Sprintf("posts[%d]", i), Reason: "nil post"}
		case p.AccountID == 0:
			return nil, 0, &FieldError{Field: fmt.Sprintf("posts[%d].AccountID", i), Reason: "must be set"}
		case strings.TrimSpace(p.PostID) == "":
			return nil, 0, &FieldError{Field: fmt.Sprintf("posts[%d].PostID", i), Reason: "must not be empty"}
		case p.MediaType != "" && !p.MediaType.Valid():
			return nil, 0, &FieldError{Field: fmt.Sprintf("posts[%d].MediaType", i), Reason: fmt.Sprintf("must be %s or %s (got %q)", MediaImage, MediaVideo, p.MediaType)}
		}
	}
	now := db.nowUTC()
	out := make([]*Post, len(ps))
	created := 0
	err := db.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO posts (account_id, post_id, profile_id, author, caption, media_url,
			media_type, taken_at, captured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, post_id) DO NOTHING RETURNING id`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, p := range ps {
			var id int64
			mt := cmp.Or(p.MediaType, MediaImage)
			err := ins.QueryRowContext(ctx, p.AccountID, p.PostID, nullID(p.ProfileID), p.Author, p.Caption, p.MediaURL,
				mt, ms(p.TakenAt), now.UnixMilli()).Scan(&id)
			switch {
			case err == nil:
				q := *p
				q.ID, q.CapturedAt, q.MediaType = id, now, mt
				out[i] = &q
				created++
				continue
			case err != sql.ErrNoRows:
				return fmt.Errorf("post %q of account %d: %w", p.PostID, p.AccountID, err)
			}
			old, err := scanPost(tx.QueryRowContext(ctx, `SELECT `+postColumns+` FROM posts WHERE account_id = ? AND post_id = ?`,
				p.AccountID, p.PostID))
			if err != nil {
				return fmt.Errorf("post %q of account %d: %w", p.PostID, p.AccountID, err)
			}
			out[i] = old
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("data: store posts: %w", err)
	}
	return out, created, nil
}

// PostByID returns one post, or ErrNotFound.
func (db *DB) PostByID(ctx context.Context, id int64) (*Post, error) {
	p, err := scanPost(db.r.QueryRowContext(ctx, `SELECT `+postColumns+` FROM posts WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "post", id)
	}
	return p, nil
}

// CountPosts returns how many posts account accountID has (0: every
// account) and how many of them are analysed.
func (db *DB) CountPosts(ctx context.Context, accountID int64) (total, analyzed int, err error) {
	err = db.r.QueryRowContext(ctx, `SELECT count(*), count(analyzed_at) FROM posts WHERE ?1 = 0 OR account_id = ?1`,
		accountID).Scan(&total, &analyzed)
	if err != nil {
		return 0, 0, fmt.Errorf("data: count posts: %w", err)
	}
	return total, analyzed, nil
}

// SetPostAnalysis stores the local AI service's analysis of post id (a JSON
// document) and when it was made. It returns ErrNotFound when there is no
// such post.
func (db *DB) SetPostAnalysis(ctx context.Context, id int64, analysis json.RawMessage, at time.Time) error {
	if !json.Valid(analysis) {
		return &FieldError{Field: "analysis", Reason: "must be a JSON document"}
	}
	return db.updateRow(ctx, "posts", "post", id, `analysis = ?, analyzed_at = ?`, string(analysis), ms(at))
}

// Media is a media file stored for a post. Path is relative to the media
// directory its owner keeps. Frame is 0 for the post's own media and n for
// frame n generated from the post's video; a post has at most one media
// file per frame.
type Media struct {
	ID       int64
	PostID   int64
	Frame    int
	Path     string
	Bytes    int64
	StoredAt time.Time
}

// AddPostMedia records a media file stored for post m.PostID (frame
// m.Frame) and sets m.ID and m.StoredAt (now). A path recorded already is
// left as it is and its row returned (the file was written again with the
// same content).
func (db *DB) AddPostMedia(ctx context.Context, m *Media) error {
	if m.PostID == 0 || strings.TrimSpace(m.Path) == "" || m.Frame < 0 {
		return &FieldError{Field: "Media", Reason: "PostID and Path must be set and Frame must not be negative"}
	}
	now := db.nowUTC()
	return db.write(ctx, func(tx *sql.Tx) error {
		var stored int64
		err := tx.QueryRowContext(ctx, `INSERT INTO post_media (post_id, frame, path, bytes, stored_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes RETURNING id, stored_at`,
			m.PostID, m.Frame, m.Path, m.Bytes, now.UnixMilli()).Scan(&m.ID, &stored)
		if err != nil {
			return fmt.Errorf("data: media %q of post %d: %w", m.Path, m.PostID, err)
		}
		m.StoredAt = time.UnixMilli(stored).UTC()
		return nil
	})
}

// ExpiredMedia returns up to limit media rows stored before `before`,
// oldest first.
func (db *DB) ExpiredMedia(ctx context.Context, before time.Time, limit int) ([]*Media, error) {
	if limit <= 0 || limit > 10_000 {
		return nil, &FilterError{Param: "limit", Reason: "must be between 1 and 10000"}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+mediaColumns+` FROM post_media
		WHERE stored_at < ? ORDER BY stored_at, id LIMIT ?`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("data: expired media: %w", err)
	}
	var out []*Media
	for rows.Next() {
		m, err := scanMedia(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: expired media: %w", err)
		}
		out = append(out, m)
	}
	return out, errRows(rows, "expired media")
}

const mediaColumns = `id, post_id, frame, path, bytes, stored_at`

func scanMedia(s scanner) (*Media, error) {
	var (
		m      Media
		stored int64
	)
	if err := s.Scan(&m.ID, &m.PostID, &m.Frame, &m.Path, &m.Bytes, &stored); err != nil {
		return nil, err
	}
	m.StoredAt = time.UnixMilli(stored).UTC()
	return &m, nil
}

// PostMedia returns the media file of post postID for frame (0: the
// post's own), or ErrNotFound (never stored, or purged).
func (db *DB) PostMedia(ctx context.Context, postID int64, frame int) (*Media, error) {
	m, err := scanMedia(db.r.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM post_media WHERE post_id = ? AND frame = ?`,
		postID, frame))
	if err != nil {
		return nil, notFound(err, "media of post", fmt.Sprintf("%d frame %d", postID, frame))
	}
	return m, nil
}

// DeleteMedia deletes media rows by id and returns how many it deleted.
func (db *DB) DeleteMedia(ctx context.Context, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM post_media WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			res, err := stmt.ExecContext(ctx, id)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("data: delete media: %w", err)
	}
	return n, nil
}
