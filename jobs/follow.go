package jobs

import (
	"context"
	"errors"

	"conveyor/data"
	"conveyor/queue"
)

// syncFollowGraph is SyncFollowGraphJob: it pages the account's following
// and followers lists, each from its stored cursor, upserts the profiles
// it sees (setting their flag), and saves the cursor after each page, so a
// run that stops — a crash, its page budget, a failed call — loses
// nothing and the next continues where it stopped. Relationship flags are
// cleared only by data.CompleteFollowSnapshot when a pass that started
// from the start cursor reaches the end: a partial pass never clears any.
func (c *Catalog) syncFollowGraph(ctx context.Context, job *queue.Job, a *data.Account) error {
	for _, kind := range []string{data.CursorFollowing, data.CursorFollowers} {
		if err := c.syncList(ctx, job, a, kind); err != nil {
			return err
		}
	}
	return nil
}

// syncList reads up to FollowPagesPerRun pages of one list.
func (c *Catalog) syncList(ctx context.Context, job *queue.Job, a *data.Account, kind string) error {
	cur, err := c.db.Cursor(ctx, a.ID, kind)
	if err != nil {
		return err
	}
	if cur.Cursor == "" && !cur.StartedFromStart {
		// A new pass from the start: mark it before the first page, so the
		// pass counts as full even if this run stops on its first page.
		cur.StartedFromStart, cur.StartedAt = true, c.now()
		if err := c.db.SetCursor(ctx, cur); err != nil {
			return err
		}
	}
	for range c.set.FollowPagesPerRun {
		var page FollowPage
		if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username, List: kind, Cursor: cur.Cursor}, &page); err != nil {
			return err
		}
		ps := make([]*data.Profile, 0, len(page.Profiles))
		for _, p := range page.Profiles {
			if p.Username == "" {
				continue
			}
			dp := &data.Profile{AccountID: a.ID, Username: p.Username, DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}
			if kind == data.CursorFollowing {
				dp.Following = true
			} else {
				dp.FollowedBy = true
			}
			ps = append(ps, dp)
		}
		if err := c.upsertProfiles(ctx, ps); err != nil {
			return err
		}
		if !page.HasMore || page.NextCursor == "" {
			cleared, err := c.db.CompleteFollowSnapshot(ctx, a.ID, kind)
			switch {
			case errors.Is(err, data.ErrPartialSnapshot):
				c.log.Info("follow list read to its end, but the pass did not start at the start: nothing cleared; the next pass is full",
					"account", a.ID, "list", kind, "job", job.ID)
				return nil
			case err != nil:
				return err
			}
			if cleared > 0 {
				c.profilesChanged()
			}
			c.log.Info("follow list snapshot complete", "account", a.ID, "list", kind, "job", job.ID, "cleared", cleared)
			return nil
		}
		cur.Cursor = page.NextCursor
		if err := c.db.SetCursor(ctx, cur); err != nil {
			return err
		}
	}
	c.log.Info("follow list page budget spent; the next run continues from the cursor", "account", a.ID, "list", kind, "job", job.ID)
	return nil
}
