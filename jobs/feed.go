package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

const (
	// analysisHold is how long an AnalyzePostJob's unique key is held
	// after it was enqueued: a post seen again in that time is not
	// analysed twice.
	analysisHold = 24 * time.Hour
	// purgeBatch is how many media files the purge deletes per round.
	purgeBatch = 500
	// maxDelaySeconds bounds CaptureHomeFeedJob's delay_seconds.
	maxDelaySeconds = 3600
)

// coordinate is ProcessInstagramAccountContinuouslyJob, the seed's account
// processing coordinator: when the account's next feed sync is due it
// enqueues a CaptureHomeFeedJob and sets the next one FeedSyncInterval
// later plus the account's jitter. While the local AI service is down it
// enqueues nothing (the capture would lead to analyses) and records why
// as the account's last sync result.
func (c *Catalog) coordinate(ctx context.Context, job *queue.Job, a *data.Account) error {
	now := c.now()
	if !a.NextFeedSyncAt.IsZero() && now.Before(a.NextFeedSyncAt) {
		return nil
	}
	if c.aiGate != nil {
		if open, why := c.aiGate(); !open {
			msg := "skipped: local AI is unavailable (" + why + "); no feed capture enqueued"
			c.log.Info("feed capture held back", "account", a.ID, "job", job.ID, "reason", why)
			if err := c.db.RecordSync(ctx, a.ID, now, msg); err != nil {
				return err
			}
			c.profilesChanged()
			return nil
		}
	}
	// The capture is named by this job, so that a run of it again after a
	// crash enqueues the same capture, which its unique key holds.
	capture := int64(job.ID)
	args, _ := json.Marshal(CaptureArgs{AccountID: a.ID, Capture: capture, Page: 1})
	_, err := c.enqueue(ctx, []lanes.JobRequest{{
		Class: CaptureHomeFeed, Args: args, UniqueKey: captureKey(a.ID, capture, 1), UniqueFor: c.set.FeedSyncInterval,
		Context: map[string]string{queue.CtxAccountID: strconv.FormatInt(a.ID, 10)},
	}})
	if err != nil {
		return err
	}
	next := now.Add(c.set.FeedSyncInterval + Jitter("feed:"+strconv.FormatInt(capture, 10), a.ID, c.set.FeedSyncJitter))
	if err := c.db.ScheduleFeedSync(ctx, a.ID, now, next); err != nil {
		return err
	}
	c.profilesChanged()
	return nil
}

func captureKey(account, capture int64, page int) string {
	return fmt.Sprintf("%s:%d:%d:%d", CaptureHomeFeed, account, capture, page)
}

// CaptureArgs are CaptureHomeFeedJob's args: the account, the capture it
// belongs to (the coordinator's job; 0 for one enqueued by hand), the page
// (from 1) and the cursor to read it from, the pause before the next page
// (delay_seconds, default 3) and the new posts counted so far.
type CaptureArgs struct {
	AccountID    int64  `json:"account_id"`
	Capture      int64  `json:"capture,omitempty"`
	Page         int    `json:"page,omitempty"`
	Cursor       string `json:"cursor,omitempty"`
	DelaySeconds *int   `json:"delay_seconds,omitempty"`
	NewPosts     int    `json:"new_posts,omitempty"`
}

// Validate checks the ranges.
func (a *CaptureArgs) Validate() error {
	switch {
	case a.AccountID <= 0:
		return &lanes.ArgsError{Field: "account_id", Reason: "must be a positive account id"}
	case a.Capture < 0 || a.Page < 0 || a.NewPosts < 0:
		return &lanes.ArgsError{Reason: "capture, page and new_posts must not be negative"}
	case a.DelaySeconds != nil && (*a.DelaySeconds < 0 || *a.DelaySeconds > maxDelaySeconds):
		return &lanes.ArgsError{Field: "delay_seconds", Reason: fmt.Sprintf("must be 0..%d", maxDelaySeconds)}
	}
	return nil
}

// captureHomeFeed reads one page of the account's home feed, stores its
// new posts, enqueues one AnalyzePostJob per post not analysed yet, and —
// when the feed has more and the capture is within FeedMaxPages — the next
// page as a new job due delay_seconds later: pacing never holds a worker.
func (c *Catalog) captureHomeFeed(ctx context.Context, job *queue.Job, args CaptureArgs) error {
	a, err := c.accountFor(ctx, job, args.AccountID, "")
	if err != nil || a == nil {
		return err
	}
	page := max(args.Page, 1)
	capture := args.Capture
	if capture == 0 {
		capture = int64(job.ID)
	}
	var res FeedPage
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username, Cursor: args.Cursor, Page: page}, &res); err != nil {
		return err
	}
	stored, created, err := c.storePosts(ctx, job, a, res.Posts)
	if err != nil {
		return err
	}
	acct := strconv.FormatInt(a.ID, 10)
	var reqs []lanes.JobRequest
	for _, p := range stored {
		if !p.AnalyzedAt.IsZero() {
			continue
		}
		ctxMap := map[string]string{queue.CtxAccountID: acct}
		if p.ProfileID != 0 {
			ctxMap[queue.CtxProfileID] = strconv.FormatInt(p.ProfileID, 10)
		}
		reqs = append(reqs, lanes.JobRequest{Class: AnalyzePost, Args: json.RawMessage(`{"post_id":` + strconv.FormatInt(p.ID, 10) + `}`),
			UniqueKey: AnalyzePost + ":" + strconv.FormatInt(p.ID, 10), UniqueFor: analysisHold, Context: ctxMap})
	}
	total := args.NewPosts + created
	more := res.HasMore && res.NextCursor != "" && page < c.set.FeedMaxPages
	if more {
		delay := DefaultFeedPageDelay
		if args.DelaySeconds != nil {
			delay = time.Duration(*args.DelaySeconds) * time.Second
		}
		next := args
		next.Capture, next.Page, next.Cursor, next.NewPosts = capture, page+1, res.NextCursor, total
		raw, _ := json.Marshal(next)
		reqs = append(reqs, lanes.JobRequest{Class: CaptureHomeFeed, Args: raw, RunAt: c.now().Add(delay),
			UniqueKey: captureKey(a.ID, capture, page+1), UniqueFor: c.set.FeedSyncInterval,
			Context: map[string]string{queue.CtxAccountID: acct}})
	}
	if len(reqs) > 0 {
		if _, err := c.enqueue(ctx, reqs); err != nil {
			return err
		}
	}
	result := fmt.Sprintf("ok: %d pages, %d new posts", page, total)
	if more {
		result = fmt.Sprintf("capturing: page %d read, %d new posts so far", page, total)
	}
	if err := c.db.RecordSync(ctx, a.ID, c.now(), result); err != nil {
		return err
	}
	c.profilesChanged()
	return nil
}

// AnalyzeArgs are AnalyzePostJob's args: the stored post (its id in the
// posts table).
type AnalyzeArgs struct {
	PostID int64 `json:"post_id"`
}

// Validate checks the id.
func (a *AnalyzeArgs) Validate() error {
	if a.PostID <= 0 {
		return &lanes.ArgsError{Field: "post_id", Reason: "must be a positive post id"}
	}
	return nil
}

// analyzePost sends one captured post through the local AI service,
// stores its analysis, and fans the post out to the pipeline's steps on
// the AI capsules (fanOutPost). A post analysed already is only fanned out
// (the steps' unique keys hold what is enqueued already); a purged one is
// done.
func (c *Catalog) analyzePost(ctx context.Context, job *queue.Job, args AnalyzeArgs) error {
	p, err := c.db.PostByID(ctx, args.PostID)
	switch {
	case errors.Is(err, data.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if p.AnalyzedAt.IsZero() {
		if c.ai == nil {
			return errNoLocalAI
		}
		start := time.Now()
		out, err := c.ai.Analyze(ctx, AnalyzeRequest{AccountID: p.AccountID, PostID: p.PostID, Author: p.Author, Caption: p.Caption,
			MediaURL: p.MediaURL}, job.Attempt)
		if err := c.record(ctx, job, p.AccountID, c.ai.Endpoint(AnalyzePath), start, err); err != nil {
			return err
		}
		if err := c.db.SetPostAnalysis(ctx, p.ID, out, c.now()); err != nil {
			if errors.Is(err, data.ErrNotFound) {
				return nil
			}
			return err
		}
	}
	reqs, err := c.fanOutPost(ctx, p)
	if err != nil {
		return err
	}
	_, err = c.enqueue(ctx, reqs)
	return err
}

// purgeMedia is PurgeExpiredInstagramPostMediaJob: it deletes the media
// files stored longer than MediaRetention ago, then their rows, in rounds
// of purgeBatch. A file already gone only loses its row.
func (c *Catalog) purgeMedia(ctx context.Context, job *queue.Job) error {
	before := c.now().Add(-c.set.MediaRetention)
	var files, bytes int64
	for {
		ms, err := c.db.ExpiredMedia(ctx, before, purgeBatch)
		if err != nil {
			return err
		}
		ids := make([]int64, 0, len(ms))
		for _, m := range ms {
			p := filepath.Join(c.mediaDir, filepath.FromSlash(m.Path))
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("purge %s: %w", m.Path, err)
			}
			ids = append(ids, m.ID)
			bytes += m.Bytes
		}
		n, err := c.db.DeleteMedia(ctx, ids)
		if err != nil {
			return err
		}
		files += n
		if len(ms) < purgeBatch {
			break
		}
	}
	if files > 0 {
		c.log.Info("purged expired post media", "job", job.ID, "files", files, "bytes", bytes, "before", before.Format(time.RFC3339))
	}
	return nil
}
