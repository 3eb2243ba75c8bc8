// Package lanes runs Conveyor's worker pools. A lane (Sidekiq's capsule) is a
// set of queues served by a number of workers; the default topology is the
// seed's: one default lane for the base queues and one lane per AI capsule,
// 34 workers in all, overridable by environment or configuration file.
//
// Jobs are run by Handlers registered under stable class names, wrapped in
// middleware in the manner of net/http. A handler returns nil (done), an error
// (retried with Sidekiq's backoff until its attempts run out, or dead at once
// when the error is an authentication failure or wrapped with Kill), or
// Snooze(d) (runs again later without spending an attempt). Panics become
// *PanicError with the stack kept; an attempt that outlives its class's timeout
// sees its context cancelled.
//
// A lane can be held closed by a gate (SetGate): its jobs then wait in their
// queues instead of failing. Stop drains gracefully: no job is lost and no
// attempt is spent on a job the shutdown interrupted.
package lanes
