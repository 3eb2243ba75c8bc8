package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PostAnalysis is one result of the post-analysis pipeline: what the local
// AI service answered for one capability (visual, faces, ocr, metadata,
// video, frames) of one post and frame (0: the post itself; n: frame n of
// its video), and the job that asked.
type PostAnalysis struct {
	PostID     int64
	Capability string
	Frame      int
	JobID      uint64
	Result     json.RawMessage
	AnalyzedAt time.Time
}

const analysisColumns = `post_id, capability, frame, job_id, result, analyzed_at`

func scanAnalysis(s scanner) (*PostAnalysis, error) {
	var (
		a        PostAnalysis
		result   string
		analyzed int64
	)
	if err := s.Scan(&a.PostID, &a.Capability, &a.Frame, &a.JobID, &result, &analyzed); err != nil {
		return nil, err
	}
	a.Result, a.AnalyzedAt = json.RawMessage(result), time.UnixMilli(analyzed).UTC()
	return &a, nil
}

// SavePostAnalysis stores a's result, AnalyzedAt now, unless a result of
// the same post, capability and frame is stored already: the first result
// is kept, so that a step run again after a crash reads what it had. It
// returns the result as stored and whether it was a's. A post that does
// not exist is ErrNotFound.
func (db *DB) SavePostAnalysis(ctx context.Context, a *PostAnalysis) (*PostAnalysis, bool, error) {
	switch {
	case a.PostID <= 0:
		return nil, false, &FieldError{Field: "PostID", Reason: "must be a post id"}
	case strings.TrimSpace(a.Capability) == "":
		return nil, false, &FieldError{Field: "Capability", Reason: "must not be empty"}
	case a.Frame < 0:
		return nil, false, &FieldError{Field: "Frame", Reason: "must not be negative"}
	case !json.Valid(a.Result):
		return nil, false, &FieldError{Field: "Result", Reason: "must be a JSON document"}
	}
	var (
		out     *PostAnalysis
		created bool
	)
	now := db.nowUTC()
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO post_analyses (`+analysisColumns+`)
			SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM posts WHERE id = ?)
			ON CONFLICT (post_id, capability, frame) DO NOTHING`,
			a.PostID, a.Capability, a.Frame, a.JobID, string(a.Result), now.UnixMilli(), a.PostID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		out, err = scanAnalysis(tx.QueryRowContext(ctx, `SELECT `+analysisColumns+` FROM post_analyses
			WHERE post_id = ? AND capability = ? AND frame = ?`, a.PostID, a.Capability, a.Frame))
		if err != nil {
			// Nothing inserted and nothing there: the post does not exist.
			return notFound(err, "post", a.PostID)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, err
	case err != nil:
		return nil, false, fmt.Errorf("data: save the %s analysis of post %d: %w", a.Capability, a.PostID, err)
	}
	return out, created, nil
}

// PostAnalysisOf returns the stored result of post postID's capability
// for frame, or ErrNotFound.
func (db *DB) PostAnalysisOf(ctx context.Context, postID int64, capability string, frame int) (*PostAnalysis, error) {
	a, err := scanAnalysis(db.r.QueryRowContext(ctx, `SELECT `+analysisColumns+` FROM post_analyses
		WHERE post_id = ? AND capability = ? AND frame = ?`, postID, capability, frame))
	if err != nil {
		return nil, notFound(err, "analysis", fmt.Sprintf("%s of post %d frame %d", capability, postID, frame))
	}
	return a, nil
}

// PostAnalyses returns every stored result of post postID, by capability
// and frame.
func (db *DB) PostAnalyses(ctx context.Context, postID int64) ([]*PostAnalysis, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+analysisColumns+` FROM post_analyses WHERE post_id = ?
		ORDER BY capability, frame`, postID)
	if err != nil {
		return nil, fmt.Errorf("data: analyses of post %d: %w", postID, err)
	}
	var out []*PostAnalysis
	for rows.Next() {
		a, err := scanAnalysis(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: analyses of post %d: %w", postID, err)
		}
		out = append(out, a)
	}
	return out, errRows(rows, "post analyses")
}

// CountPostAnalyses returns how many results are stored per capability.
func (db *DB) CountPostAnalyses(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT capability, count(*) FROM post_analyses GROUP BY capability`)
	if err != nil {
		return nil, fmt.Errorf("data: count post analyses: %w", err)
	}
	out := map[string]int{}
	for rows.Next() {
		var (
			c string
			n int
		)
		if err := rows.Scan(&c, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: count post analyses: %w", err)
		}
		out[c] = n
	}
	return out, errRows(rows, "count post analyses")
}
