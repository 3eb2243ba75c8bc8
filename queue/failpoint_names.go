package queue

// Failpoints stop the store at its commit boundaries, for the tests: they are
// compiled in only with the `failpoints` build tag (`make test` and `make
// chaos` set it); the product's build has none (failpoint_off.go).
//
// A process can be told to die at one: CONVEYOR_FAILPOINT names it and
// CONVEYOR_FAILPOINT_SKIP how many passes to let by first; at the next pass the
// process exits at once with status FailpointExitCode, as if killed there.
// In-process tests use SetFailpoint instead.
const (
	// FailpointBeforeCommit: a transaction's writes are done, not committed.
	FailpointBeforeCommit = "before-commit"
	// FailpointAfterCommit: committed and fsynced; nobody told, memory not updated.
	FailpointAfterCommit = "after-commit"
	// FailpointMidGroupCommit: some of a group commit's enqueues are written
	// into its transaction, the rest not yet.
	FailpointMidGroupCommit = "mid-group-commit"
	// FailpointBeforeAckCommit: finished attempts are about to be committed.
	FailpointBeforeAckCommit = "before-ack-commit"
	// FailpointBeforePromote: due jobs are about to be promoted.
	FailpointBeforePromote = "before-promote"
	// EnvFailpointNoSync, set to 1 in a test build's environment, opens every
	// store with NoSync: commits are acknowledged without their fsync. The
	// power-loss test sets it to show that it catches a store that skips
	// its syncs.
	EnvFailpointNoSync = "CONVEYOR_FAILPOINT_NOSYNC"
	// FailpointExitCode is the exit status of a process killed at a failpoint.
	FailpointExitCode = 77
)

// Failpoints lists every failpoint.
var Failpoints = []string{FailpointBeforeCommit, FailpointAfterCommit, FailpointMidGroupCommit,
	FailpointBeforeAckCommit, FailpointBeforePromote}
