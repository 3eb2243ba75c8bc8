package failures

import (
	"errors"
	"fmt"
)

// RefusalReason says why a failure was not retried.
type RefusalReason string

// The refusal reasons, in the order Retry checks them. "Recorded" reasons
// are written to the failure's retry state (status refused, or superseded
// where noted) so that lists show them; the others leave it as it is.
const (
	// RefusedAuthentication: authentication failures are never retried
	// (recorded).
	RefusedAuthentication RefusalReason = "authentication"
	// RefusedNotRetryable: the failure is not retryable, e.g. its handler
	// discarded the job (recorded).
	RefusedNotRetryable RefusalReason = "not_retryable"
	// RefusedAlreadyRetried: a retry is queued already.
	RefusedAlreadyRetried RefusalReason = "already_retried"
	// RefusedAlreadySucceeded: a retry succeeded already.
	RefusedAlreadySucceeded RefusalReason = "already_succeeded"
	// RefusedSuperseded: a later failure of the job or of its retry
	// replaced this one (recorded as superseded when found here).
	RefusedSuperseded RefusalReason = "superseded"
	// RefusedRetryLimit: automatic retries only — the failure was retried
	// automatically AutoRetryOptions.MaxRetries times already.
	RefusedRetryLimit RefusalReason = "retry_limit"
	// RefusedClassUnregistered: no handler is registered for the class
	// any more (recorded).
	RefusedClassUnregistered RefusalReason = "class_unregistered"
	// RefusedQueueUnserved: no lane serves the queue any more (recorded).
	RefusedQueueUnserved RefusalReason = "queue_unserved"
	// RefusedPipelineTerminal: the failure was a step of a pipeline that
	// has finished (or no longer exists) (recorded).
	RefusedPipelineTerminal RefusalReason = "pipeline_terminal"
	// RefusedStepTerminal: its pipeline step has finished (or no longer
	// exists) (recorded).
	RefusedStepTerminal RefusalReason = "step_terminal"
	// RefusedJobSucceeded: a later attempt of the job succeeded (recorded
	// as superseded).
	RefusedJobSucceeded RefusalReason = "job_succeeded"
	// RefusedJobPending: the job is ready or running again already (and,
	// for automatic retries, waiting for the queue's own retry).
	RefusedJobPending RefusalReason = "job_pending"
	// RefusedArgsTruncated: the job is gone and its args were too large to
	// be kept whole, so it cannot be enqueued again (recorded).
	RefusedArgsTruncated RefusalReason = "args_truncated"
)

// RefusalReasons lists every reason, in the order Retry checks them.
func RefusalReasons() []RefusalReason {
	return []RefusalReason{RefusedAuthentication, RefusedNotRetryable, RefusedAlreadyRetried, RefusedAlreadySucceeded,
		RefusedSuperseded, RefusedRetryLimit, RefusedClassUnregistered, RefusedQueueUnserved, RefusedPipelineTerminal,
		RefusedStepTerminal, RefusedJobSucceeded, RefusedJobPending, RefusedArgsTruncated}
}

// ErrRetryRefused is what every *RefusedError matches with errors.Is.
var ErrRetryRefused = errors.New("failures: retry refused")

// RefusedError is returned by Retry when a failure may not be retried.
type RefusedError struct {
	FailureID int64
	// JobID is set when a job was refused whose failure is not recorded
	// (RetryJobs); FailureID is then 0.
	JobID  uint64
	Reason RefusalReason
	Detail string // for people: what was found and what to do
}

// Error names the failure (or job), the reason and the detail.
func (e *RefusedError) Error() string {
	if e.FailureID == 0 && e.JobID != 0 {
		return fmt.Sprintf("failures: retry of job %d refused (%s): %s", e.JobID, e.Reason, e.Detail)
	}
	return fmt.Sprintf("failures: retry of failure %d refused (%s): %s", e.FailureID, e.Reason, e.Detail)
}

// Is matches ErrRetryRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRetryRefused }
