package jobs

import (
	"context"
	"conveyor/internal/durable"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// accountTimeout bounds one attempt of a per-account job.
const accountTimeout = 2 * time.Minute

// accountClasses are the per-account jobs and the jobs they lead to.
func (c *Catalog) accountClasses() []lanes.Class {
	perAccount := func(name, q string, sw data.Switch, timeout time.Duration,
		run func(ctx context.Context, job *queue.Job, a *data.Account) error) lanes.Class {
		return lanes.Class{Name: name, Queue: q, Timeout: timeout,
			Handler: lanes.Typed(func(ctx context.Context, job *queue.Job, args AccountArgs) error {
				a, err := c.accountFor(ctx, job, args.AccountID, sw)
				if err != nil || a == nil {
					return err
				}
				return run(ctx, job, a)
			})}
	}
	return []lanes.Class{
		perAccount(ProcessAccountContinuously, "sync", data.SwitchContinuousProcessing, accountTimeout, c.coordinate),
		perAccount(StoryAutoReply, "messages", data.SwitchStoryAutoReply, accountTimeout, c.storyAutoReply),
		perAccount(FeedAutoEngagement, "engagements", data.SwitchFeedAutoEngagement, accountTimeout, c.feedAutoEngagement),
		perAccount(RecentProfilePostScan, "post_downloads", data.SwitchProfileScan, accountTimeout, c.profilePostScan),
		perAccount(SyncFollowGraph, "sync", data.SwitchFollowGraphSync, 10*time.Minute, c.syncFollowGraph),
		perAccount(SyncAvatar, "avatars", data.SwitchAvatarSync, accountTimeout, c.syncAvatars),
		perAccount(RefreshProfiles, "profiles", data.SwitchProfileRefresh, accountTimeout, c.refreshProfiles),
		{Name: CaptureHomeFeed, Queue: "sync", Timeout: accountTimeout, Handler: lanes.Typed(c.captureHomeFeed)},
		{Name: AnalyzePost, Queue: "ai", Timeout: accountTimeout, MaxAttempts: 10, Handler: lanes.Typed(c.analyzePost)},
		{Name: PurgeMedia, Queue: "maintenance", Timeout: 30 * time.Minute, Args: lanes.NoArgs,
			Handler: lanes.HandlerFunc(c.purgeMedia)},
	}
}

// accountFor loads the account a per-account job works for. It returns
// nil (and the job is done) when the account is gone, disabled, or its
// switch for the job is off since the job was enqueued.
func (c *Catalog) accountFor(ctx context.Context, job *queue.Job, id int64, sw data.Switch) (*data.Account, error) {
	a, err := c.db.AccountByID(ctx, id)
	switch {
	case errors.Is(err, data.ErrNotFound):
		c.log.Info("account is gone; nothing to do", "class", job.Class, "job", job.ID, "account", id)
		return nil, nil
	case err != nil:
		return nil, err
	case a.Disabled:
		c.log.Info("account is disabled; nothing to do", "class", job.Class, "job", job.ID, "account", id)
		return nil, nil
	case sw != "" && !*a.Switch(sw):
		c.log.Info("account's switch is off; nothing to do", "class", job.Class, "job", job.ID, "account", id, "switch", sw)
		return nil, nil
	}
	return a, nil
}

func (c *Catalog) storyAutoReply(ctx context.Context, job *queue.Job, a *data.Account) error {
	var res StoryReplies
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username}, &res); err != nil {
		return err
	}
	acts := make([]data.AccountAction, 0, len(res.Replies))
	for _, r := range res.Replies {
		acts = append(acts, data.AccountAction{JobID: job.ID, AccountID: a.ID, Action: "story_reply", Target: r.StoryID, Detail: r.Text})
	}
	c.rec.actions(ctx, acts...)
	return nil
}

func (c *Catalog) feedAutoEngagement(ctx context.Context, job *queue.Job, a *data.Account) error {
	var res Engagements
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username}, &res); err != nil {
		return err
	}
	acts := make([]data.AccountAction, 0, len(res.Engagements))
	for _, e := range res.Engagements {
		acts = append(acts, data.AccountAction{JobID: job.ID, AccountID: a.ID, Action: "engagement", Target: e.PostID,
			Detail: e.Action + " on a post by " + e.Author})
	}
	c.rec.actions(ctx, acts...)
	return nil
}

// profilePostScan stores the recent posts of the profiles the account
// follows, downloading their media.
func (c *Catalog) profilePostScan(ctx context.Context, job *queue.Job, a *data.Account) error {
	var res ProfileScan
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username}, &res); err != nil {
		return err
	}
	_, _, err := c.storePosts(ctx, job, a, res.Posts)
	return err
}

func (c *Catalog) syncAvatars(ctx context.Context, job *queue.Job, a *data.Account) error {
	var res ProfileList
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username}, &res); err != nil {
		return err
	}
	ps := make([]*data.Profile, 0, len(res.Profiles))
	for _, p := range res.Profiles {
		if p.Username == "" || p.AvatarURL == "" {
			continue
		}
		ps = append(ps, &data.Profile{AccountID: a.ID, Username: p.Username, AvatarURL: p.AvatarURL})
	}
	return c.upsertProfiles(ctx, ps)
}

func (c *Catalog) refreshProfiles(ctx context.Context, job *queue.Job, a *data.Account) error {
	var res ProfileList
	if err := c.call(ctx, job, a.ID, CallArgs{AccountID: a.ID, Username: a.Username}, &res); err != nil {
		return err
	}
	now := c.now()
	ps := make([]*data.Profile, 0, len(res.Profiles))
	for _, p := range res.Profiles {
		if p.Username == "" {
			continue
		}
		dp := &data.Profile{AccountID: a.ID, Username: p.Username, DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}
		if p.FollowersCount != nil && p.FollowingCount != nil {
			dp.FollowersCount, dp.FollowingCount, dp.LastRefreshedAt = *p.FollowersCount, *p.FollowingCount, now
		}
		ps = append(ps, dp)
	}
	return c.upsertProfiles(ctx, ps)
}

func (c *Catalog) upsertProfiles(ctx context.Context, ps []*data.Profile) error {
	if len(ps) == 0 {
		return nil
	}
	if err := c.db.UpsertProfiles(ctx, ps); err != nil {
		return err
	}
	c.profilesChanged()
	return nil
}

// storePosts stores posts of account a (new ones only), writes the media
// they carry under the media directory, and records a download action for
// each media file. It returns the posts as stored and how many were new.
func (c *Catalog) storePosts(ctx context.Context, job *queue.Job, a *data.Account, remote []RemotePost) ([]*data.Post, int, error) {
	if len(remote) == 0 {
		return nil, 0, nil
	}
	// The authors are profiles the account sees: upserted, so that each
	// post (and its analysis job) names its author's profile.
	authors := map[string]*data.Profile{}
	var profiles []*data.Profile
	for _, r := range remote {
		if strings.TrimSpace(r.ID) == "" {
			return nil, 0, &CallError{Endpoint: "connector " + job.Class, Status: 200, Kind: fault.Runtime, Message: "a post has no id"}
		}
		if mt := data.MediaType(r.MediaType); mt != "" && !mt.Valid() {
			return nil, 0, &CallError{Endpoint: "connector " + job.Class, Status: 200, Kind: fault.Runtime,
				Message: fmt.Sprintf("post %s: media_type must be %s or %s (got %q)", r.ID, data.MediaImage, data.MediaVideo, r.MediaType)}
		}
		if r.Author != "" && authors[r.Author] == nil {
			authors[r.Author] = &data.Profile{AccountID: a.ID, Username: r.Author}
			profiles = append(profiles, authors[r.Author])
		}
	}
	if err := c.upsertProfiles(ctx, profiles); err != nil {
		return nil, 0, err
	}
	ps := make([]*data.Post, 0, len(remote))
	for _, r := range remote {
		p := &data.Post{AccountID: a.ID, PostID: r.ID, Author: r.Author, Caption: r.Caption, MediaURL: r.MediaURL,
			MediaType: data.MediaType(r.MediaType), TakenAt: r.TakenAt}
		if pr := authors[r.Author]; pr != nil {
			p.ProfileID = pr.ID
		}
		ps = append(ps, p)
	}
	stored, created, err := c.db.StorePosts(ctx, ps)
	if err != nil {
		return nil, 0, err
	}
	var acts []data.AccountAction
	for i, r := range remote {
		if r.Media == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(r.Media)
		if err != nil {
			return nil, 0, &CallError{Endpoint: "connector " + job.Class, Status: 200, Kind: fault.Runtime,
				Message: fmt.Sprintf("post %s: media is not base64: %v", r.ID, err)}
		}
		rel := path.Join(strconv.FormatInt(a.ID, 10), strconv.FormatInt(stored[i].ID, 10)+mediaExt(r.MediaURL))
		if err := writeFile(filepath.Join(c.mediaDir, filepath.FromSlash(rel)), b); err != nil {
			return nil, 0, fmt.Errorf("store media of post %s: %w", r.ID, err)
		}
		m := &data.Media{PostID: stored[i].ID, Path: rel, Bytes: int64(len(b))}
		if err := c.db.AddPostMedia(ctx, m); err != nil {
			return nil, 0, err
		}
		acts = append(acts, data.AccountAction{JobID: job.ID, AccountID: a.ID, Action: "download", Target: r.ID,
			Detail: fmt.Sprintf("%d bytes to media/%s", len(b), rel)})
	}
	c.rec.actions(ctx, acts...)
	return stored, created, nil
}

// mediaExt is the extension of a media URL's file, ".bin" when it has no
// plain one.
func mediaExt(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	ext := path.Ext(u)
	if len(ext) < 2 || len(ext) > 6 || strings.ContainsAny(ext, `/\`) {
		return ".bin"
	}
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return ".bin"
		}
	}
	return ext
}

// writeFile writes b to p durably (internal/durable), so that the media row
// recorded after it never names a file a crash could lose or leave half
// written.
func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(p, b, 0o600)
}
