// Package events owns the live-update bus: how a change anywhere in
// Conveyor reaches the dashboard's server-sent event streams.
//
// Producers call [Bus.Publish] with a [Topic] (the built-in topics are
// [TopicJobs], [TopicFailures], [TopicIssues], [TopicMetrics],
// [TopicProfiles] and [TopicSchedule]); any number of subscribers
// ([Bus.Subscribe]) receive at most one [Notification] per interval,
// carrying the set of topics that changed and how many publishes it stands
// for.
//
// What it promises:
//   - Publishing a built-in topic is lock-free: an atomic add and an atomic
//     load, no allocation, never a wait. Other topics take a mutex for a map
//     update.
//   - A lone change is delivered at once; a burst is coalesced into one
//     notification per interval.
//   - A slow subscriber gets the merged latest state, never a backlog, and
//     never holds up a publisher or another subscriber.
//
// It imports no other Conveyor package but internal/lifecycle.
package events
