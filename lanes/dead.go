package lanes

import "conveyor/queue"

// KilledNotRetryable reports whether a dead job was killed by its lane as
// not retryable — its handler killed it (Kill), or its error's kind is
// `authentication` (see Options.Retryable) — rather than running out of
// attempts or crashing its worker too often. The queue keeps no reason for
// a death, so this reads it from the job: a lane kills such a job before
// its last attempt, and the store marks orphan kills with the class
// "Orphaned".
func KilledNotRetryable(j *queue.Job) bool {
	if j.State != queue.StateDead || j.Attempt >= j.MaxAttempts {
		return false
	}
	n := len(j.Errors)
	return !(n > 0 && j.Errors[n-1].Class == "Orphaned" && j.Orphans > 0)
}
