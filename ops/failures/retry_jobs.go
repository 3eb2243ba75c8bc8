package failures

import (
	"context"

	"fmt"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

// RetryJobs retries jobs by hand — the jobs API's retry and the jobs
// screen's bulk retry — under the same rules as a failure's retry: each
// job's latest failure is checked as Retry checks it (an authentication
// failure, a discarded job, a finished pipeline… are refused) and its retry
// state records the retry. A job with no recorded failure (a scheduled job,
// or a failure the capture did not write) is refused when its lane killed
// it as not retryable (lanes.KilledNotRetryable), since that is all the
// queue knows of its last error.
//
// The work is batched so that a bulk retry of 100,000 jobs costs a few
// hundred commits, not 100,000: per chunk of up to 1,000 jobs, one read of
// their latest failures, one SQLite transaction that claims the failures
// to retry and records the refusals, and one queue transaction per
// queue.MaxBulk jobs that makes them ready. (A failure whose job is gone is
// retried as a new job, one at a time, as Retry does.)
//
// It returns each job's error: nil when the job is ready again, a
// *RefusedError when the rules refuse it, queue.ErrWrongState or
// queue.ErrRunning when its state does not allow a retry.
func (r *Retrier) RetryJobs(ctx context.Context, jobs []*queue.Job) []error {
	errs := make([]error, len(jobs))
	for start := 0; start < len(jobs); start += bulkRetryChunk {
		end := min(len(jobs), start+bulkRetryChunk)
		r.retryChunk(ctx, jobs[start:end], errs[start:end])
	}
	return errs
}

// retryChunk does RetryJobs for one chunk, writing each job's error in errs.
func (r *Retrier) retryChunk(ctx context.Context, jobs []*queue.Job, errs []error) {
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	latest, err := r.db.LatestFailures(ctx, ids)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return
	}
	// Decide each job in memory; the refusals to record and the claims
	// are written together by settle.
	var (
		revives []pendingRetry // jobs without a failure to claim
		claims  []pendingRetry
		ups     []data.RetryUpdate
	)
	mode := retryMode{records: &ups}
	for i, j := range jobs {
		f := latest[j.ID]
		if f != nil && !FailureOfJob(f, j) {
			f = nil
		}
		if f == nil {
			switch {
			case lanes.KilledNotRetryable(j):
				errs[i] = &RefusedError{JobID: j.ID, Reason: RefusedNotRetryable,
					Detail: fmt.Sprintf("job %d was killed as not retryable (discarded, or an authentication failure) and its failure is not recorded: enqueue it again by hand if it should run", j.ID)}
			case j.State != queue.StateDead && j.State != queue.StateRetry && j.State != queue.StateScheduled:
				errs[i] = fmt.Errorf("%w: job %d is %s", queue.ErrWrongState, j.ID, j.State)
			default:
				revives = append(revives, pendingRetry{i: i, job: j.ID})
			}
			continue
		}
		mode.job = j
		plan, err := r.check(ctx, f, mode)
		switch {
		case err != nil:
			errs[i] = err
		case !plan.revive: // not expected: the job is there
			_, errs[i] = r.act(ctx, f, plan, retryMode{})
		default:
			claims = append(claims, r.claimRecord(&ups, i, f, plan))
		}
	}
	r.settle(ctx, ups, claims, revives, errs)
}

// pendingRetry is a retry decided in memory: job i of a chunk, to be made
// ready, and its failure f claimed for it by the update ups[up] (f nil:
// there is no failure to claim).
type pendingRetry struct {
	i   int
	job uint64
	f   *data.Failure
	up  int
}

// claimRecord adds to ups the claim of failure f (from none or refused to
// queued), for chunk entry i, and returns the pending retry it makes.
func (r *Retrier) claimRecord(ups *[]data.RetryUpdate, i int, f *data.Failure, plan retryPlan) pendingRetry {
	*ups = append(*ups, data.RetryUpdate{ID: f.ID, From: []data.RetryStatus{data.RetryNone, data.RetryRefused},
		State: r.claimState(f, plan)})
	return pendingRetry{i: i, job: f.JobID, f: f, up: len(*ups) - 1}
}

// settle ends a chunk decided in memory: it writes ups (the claims and the
// refusals to record) in one SQLite transaction, then makes ready, in one
// queue transaction per queue.MaxBulk jobs, the jobs of revives and of the
// claims that won, undoing the claim of a job the queue would not revive.
// Each entry's error goes to errs[entry.i].
func (r *Retrier) settle(ctx context.Context, ups []data.RetryUpdate, claims, revives []pendingRetry, errs []error) {
	if len(ups) > 0 {
		done, err := r.db.UpdateFailuresRetryIf(ctx, ups)
		for _, c := range claims {
			switch {
			case err != nil:
				errs[c.i] = err
			case done[c.up]:
				revives = append(revives, c)
			default:
				errs[c.i] = r.claimLost(ctx, c.f)
			}
		}
		r.publish()
	}
	for start := 0; start < len(revives); start += queue.MaxBulk {
		chunk := revives[start:min(len(revives), start+queue.MaxBulk)]
		cids := make([]uint64, len(chunk))
		for k, rv := range chunk {
			cids[k] = rv.job
		}
		out, err := r.store.RetryNowMany(ctx, cids)
		for k, rv := range chunk {
			e := err
			if e == nil {
				e = out[k]
			}
			if e == nil {
				continue
			}
			if rv.f != nil {
				e = r.undo(ctx, rv.f, r.reviveError(rv.f, e))
			}
			errs[rv.i] = e
		}
	}
}

// FailureOfJob reports whether failure f is of job j and not of an earlier
// job that had the same id (ids can repeat after a queue restored from an
// older snapshot). Failure times are stored to the millisecond.
func FailureOfJob(f *data.Failure, j *queue.Job) bool {
	return j.Class == f.Class && j.Queue == f.Queue && !j.CreatedAt.After(f.OccurredAt.Add(time.Millisecond))
}
