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
// is the media file's content in standard base64 (stored by the job);
// MediaType is "image" (also when absent) or "video".
type RemotePost struct {
	ID        string    `json:"id"`
	Author    string    `json:"author"`
	Caption   string    `json:"caption,omitempty"`
	MediaURL  string    `json:"media_url,omitempty"`
	MediaType string    `json:"media_type,omitempty"`
	TakenAt   time.Time `json:"taken_at,omitzero"`
	Media     string    `json:"media,omitempty"`
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

// The post-analysis pipeline's calls to the local AI service: each step
// posts a StepRequest to its path under the service's URL (Steps names
// them) and gets a JSON object back, stored as the step's result. The
// fields below are the parts of the answers Conveyor reads to decide the
// next steps; the rest of each answer is kept as it is.

// StepRequest is what a step of the pipeline posts. Media is the content of
// the media file the step looks at, in standard base64: the post's image
// or video, or a frame generated from its video (Frame n ≥ 1). The
// metadata step sends the caption and author and no media; the frames step
// sends the video and the times to take frames at (AtMS).
type StepRequest struct {
	AccountID int64   `json:"account_id"`
	PostID    string  `json:"post_id"`
	Frame     int     `json:"frame,omitempty"`
	MediaType string  `json:"media_type"`
	Media     string  `json:"media,omitempty"`
	Author    string  `json:"author,omitempty"`
	Caption   string  `json:"caption,omitempty"`
	AtMS      []int64 `json:"at_ms,omitempty"`
}

// VisualResult is the part of a visual analysis the pipeline reads: an
// image with text regions goes on to OCR.
type VisualResult struct {
	TextRegions int `json:"text_regions"`
}

// VideoResult is the part of a video processing answer the pipeline
// reads: the times of the keyframes that frame generation extracts.
type VideoResult struct {
	DurationMS  int64   `json:"duration_ms"`
	KeyframesMS []int64 `json:"keyframes_ms"`
}

// FramesAnswer answers frame generation: one image per time asked for, in
// standard base64.
type FramesAnswer struct {
	Frames []GeneratedFrame `json:"frames"`
}

// GeneratedFrame is one frame of a FramesAnswer.
type GeneratedFrame struct {
	AtMS  int64  `json:"at_ms"`
	Image string `json:"image"`
}

// FramesResult is what frame generation stores as its result: the frames
// it wrote to the media directory (numbered from 1), without their bytes.
type FramesResult struct {
	Frames []StoredFrame `json:"frames"`
}

// StoredFrame is one stored frame of a FramesResult.
type StoredFrame struct {
	Frame int    `json:"frame"`
	AtMS  int64  `json:"at_ms"`
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
}
