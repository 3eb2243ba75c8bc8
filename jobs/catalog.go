package jobs

import (
	"conveyor/data"
)

// The catalog's classes (the seed's names).
const (
	EnqueueContinuousAccountProcessing = "EnqueueContinuousAccountProcessingJob"
	EnqueueStoryAutoReplies            = "EnqueueStoryAutoRepliesForAllAccountsJob"
	EnqueueFeedAutoEngagement          = "EnqueueFeedAutoEngagementForAllAccountsJob"
	EnqueueRecentProfilePostScans      = "EnqueueRecentProfilePostScansForAllAccountsJob"
	EnqueueFollowGraphSync             = "EnqueueFollowGraphSyncForAllAccountsJob"
	EnqueueAvatarSync                  = "EnqueueAvatarSyncForAllAccountsJob"
	EnqueueProfileRefresh              = "EnqueueProfileRefreshForAllAccountsJob"

	ProcessAccountContinuously = "ProcessInstagramAccountContinuouslyJob"
	StoryAutoReply             = "StoryAutoReplyJob"
	FeedAutoEngagement         = "FeedAutoEngagementJob"
	RecentProfilePostScan      = "RecentProfilePostScanJob"
	SyncFollowGraph            = "SyncFollowGraphJob"
	SyncAvatar                 = "SyncAvatarJob"
	RefreshProfiles            = "RefreshProfilesJob"

	CaptureHomeFeed = "CaptureHomeFeedJob"
	AnalyzePost     = "AnalyzePostJob"
	PurgeMedia      = "PurgeExpiredInstagramPostMediaJob"
)

// Orchestrator is one schedule entry's class that fans out to a
// per-account job: its queue, its environment prefix, the account switch
// that selects the accounts, and the per-account class and queue.
type Orchestrator struct {
	Class       string
	Queue       string
	Prefix      string
	Switch      data.Switch
	Target      string
	TargetQueue string
}

// Orchestrators is the catalog's table of fan-outs, in the default
// schedule's order.
func Orchestrators() []Orchestrator {
	return []Orchestrator{
		{EnqueueContinuousAccountProcessing, "sync", "CONTINUOUS_PROCESSING", data.SwitchContinuousProcessing, ProcessAccountContinuously, "sync"},
		{EnqueueStoryAutoReplies, "engagements", "STORY_AUTO_REPLY", data.SwitchStoryAutoReply, StoryAutoReply, "messages"},
		{EnqueueFeedAutoEngagement, "engagements", "FEED_AUTO_ENGAGEMENT", data.SwitchFeedAutoEngagement, FeedAutoEngagement, "engagements"},
		{EnqueueRecentProfilePostScans, "profiles", "PROFILE_SCAN", data.SwitchProfileScan, RecentProfilePostScan, "post_downloads"},
		{EnqueueFollowGraphSync, "sync", "FOLLOW_GRAPH_SYNC", data.SwitchFollowGraphSync, SyncFollowGraph, "sync"},
		{EnqueueAvatarSync, "avatars", "AVATAR_SYNC", data.SwitchAvatarSync, SyncAvatar, "avatars"},
		{EnqueueProfileRefresh, "profiles", "PROFILE_REFRESH", data.SwitchProfileRefresh, RefreshProfiles, "profiles"},
	}
}

// orchestrator returns the table's row for class.
func orchestrator(class string) (Orchestrator, bool) {
	for _, o := range Orchestrators() {
		if o.Class == class {
			return o, true
		}
	}
	return Orchestrator{}, false
}
