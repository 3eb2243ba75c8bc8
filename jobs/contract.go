package jobs

import "time"

// The connector contract: the args each class's call carries and the JSON
// its 2xx answer holds. docs/jobs.md shows them with examples; the sandbox
// (package jobs/sandbox) serves exactly these.

// CallArgs are the args of every connector call: the account the job works
// for and, for paged calls, where to continue.
type CallArgs struct {
	AccountID int64  `json:"account_id"`
	Username  string `json:"username"`
	// Cursor is where a paged call continues; "" is the start.
	Cursor string `json:"cursor,omitempty"`
	// Page counts a feed capture's pages from 1.
	Page int `json:"page,omitempty"`
	// List is the follow list of a SyncFollowGraphJob call: "followers" or
	// "following".
	List string `json:"list,omitempty"`
}

// RemotePost is a post as the outside service reports it. Media, when set,
// is the media file's content in standard base64 (stored by the job).
type RemotePost struct {
	ID       string    `json:"id"`
	Author   string    `json:"author"`
	Caption  string    `json:"caption,omitempty"`
	MediaURL string    `json:"media_url,omitempty"`
	TakenAt  time.Time `json:"taken_at,omitzero"`
	Media    string    `json:"media,omitempty"`
}

// RemoteProfile is a profile as the outside service reports it. Counts are
// pointers: absent means not reported (a follow list does not report them).
type RemoteProfile struct {
	Username       string `json:"username"`
	DisplayName    string `json:"display_name,omitempty"`
	FollowersCount *int64 `json:"followers_count,omitempty"`
	FollowingCount *int64 `json:"following_count,omitempty"`
	AvatarURL      string `json:"avatar_url,omitempty"`
}

// FeedPage answers a CaptureHomeFeedJob call: one page of the home feed,
// newest first.
type FeedPage struct {
	Posts      []RemotePost `json:"posts"`
	NextCursor string       `json:"next_cursor,omitempty"`
	HasMore    bool         `json:"has_more"`
}

// FollowPage answers a SyncFollowGraphJob call: one page of a follow list.
type FollowPage struct {
	Profiles   []RemoteProfile `json:"profiles"`
	NextCursor string          `json:"next_cursor,omitempty"`
	HasMore    bool            `json:"has_more"`
}

// StoryReplies answers a StoryAutoReplyJob call: the stories the account
// saw and the replies the service sent.
type StoryReplies struct {
	Stories []Story      `json:"stories"`
	Replies []StoryReply `json:"replies"`
}

// Story is one story an account saw.
type Story struct {
	ID     string `json:"id"`
	Author string `json:"author"`
}

// StoryReply is one reply sent to a story.
type StoryReply struct {
	StoryID string `json:"story_id"`
	Text    string `json:"text"`
}

// Engagements answers a FeedAutoEngagementJob call: what the service did
// on the account's feed.
type Engagements struct {
	Engagements []Engagement `json:"engagements"`
}

// Engagement is one action on a post ("like", "comment", …).
type Engagement struct {
	PostID string `json:"post_id"`
	Author string `json:"author"`
	Action string `json:"action"`
}

// ProfileScan answers a RecentProfilePostScanJob call: recent posts of the
// profiles the account follows, with their media.
type ProfileScan struct {
	Posts []RemotePost `json:"posts"`
}

// ProfileList answers SyncAvatarJob (profiles with avatar_url) and
// RefreshProfilesJob (profiles with their counts) calls.
type ProfileList struct {
	Profiles []RemoteProfile `json:"profiles"`
}

// AnalyzeRequest is what AnalyzePostJob posts to the local AI service's
// /analyze; the answer is any JSON object, stored as the post's analysis.
type AnalyzeRequest struct {
	AccountID int64  `json:"account_id"`
	PostID    string `json:"post_id"`
	Author    string `json:"author"`
	Caption   string `json:"caption"`
	MediaURL  string `json:"media_url"`
}
