package failures

import (
	"context"

	"fmt"
	"sync"
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
// queue knows of its last error. The jobs that may be retried are made
// ready in one queue transaction per queue.MaxBulk jobs, so a bulk retry
// costs one commit per chunk rather than one per job.
//
// It returns each job's error: nil when the job is ready again, a
// *RefusedError when the rules refuse it, queue.ErrWrongState or
// queue.ErrRunning when its state does not allow a retry.
func (r *Retrier) RetryJobs(ctx context.Context, jobs []*queue.Job) []error {
	errs := make([]error, len(jobs))
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	latest, err := r.latestFailures(ctx, ids)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// Decide and claim, a few at a time: each check reads SQLite and the
	// queue, and each claim is a small SQLite write.
	type revive struct {
		i int
		f *data.Failure // nil: no failure to claim
	}
	var (
		mu      sync.Mutex
		revives []revive
		wg      sync.WaitGroup
		next    = make(chan int)
	)
	for range min(retryWorkers, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				j, f := jobs[i], latest[jobs[i].ID]
				if f != nil && !FailureOfJob(f, j) {
					f = nil
				}
				rv, err := r.decideJob(ctx, j, f)
				if err != nil || rv == nil {
					errs[i] = err
					continue
				}
				mu.Lock()
				revives = append(revives, revive{i: i, f: rv.f})
				mu.Unlock()
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()

	for start := 0; start < len(revives); start += queue.MaxBulk {
		chunk := revives[start:min(len(revives), start+queue.MaxBulk)]
		cids := make([]uint64, len(chunk))
		for k, rv := range chunk {
			cids[k] = jobs[rv.i].ID
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
	return errs
}

// decided is a job RetryJobs may make ready; f is its failure, claimed.
type decided struct{ f *data.Failure }

// decideJob applies the rules to one job: it returns the job to make ready
// (with its failure claimed), nil and nil when the retry was made another
// way (a new job), or the refusal.
func (r *Retrier) decideJob(ctx context.Context, j *queue.Job, f *data.Failure) (*decided, error) {
	if f == nil {
		if lanes.KilledNotRetryable(j) {
			return nil, &RefusedError{JobID: j.ID, Reason: RefusedNotRetryable,
				Detail: fmt.Sprintf("job %d was killed as not retryable (discarded, or an authentication failure) and its failure is not recorded: enqueue it again by hand if it should run", j.ID)}
		}
		if j.State != queue.StateDead && j.State != queue.StateRetry && j.State != queue.StateScheduled {
			return nil, fmt.Errorf("%w: job %d is %s", queue.ErrWrongState, j.ID, j.State)
		}
		return &decided{}, nil
	}
	plan, err := r.check(ctx, f, retryMode{})
	if err != nil {
		return nil, err
	}
	if !plan.revive {
		_, err := r.act(ctx, f, plan, retryMode{})
		return nil, err
	}
	if _, err := r.claim(ctx, f, plan, retryMode{}); err != nil {
		return nil, err
	}
	return &decided{f: f}, nil
}

// latestFailures looks up the jobs' latest failures in chunks.
func (r *Retrier) latestFailures(ctx context.Context, ids []uint64) (map[uint64]*data.Failure, error) {
	out := map[uint64]*data.Failure{}
	const chunk = 1000
	for start := 0; start < len(ids); start += chunk {
		m, err := r.db.LatestFailures(ctx, ids[start:min(len(ids), start+chunk)])
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

// FailureOfJob reports whether failure f is of job j and not of an earlier
// job that had the same id (ids can repeat after a queue restored from an
// older snapshot). Failure times are stored to the millisecond.
func FailureOfJob(f *data.Failure, j *queue.Job) bool {
	return j.Class == f.Class && j.Queue == f.Queue && !j.CreatedAt.After(f.OccurredAt.Add(time.Millisecond))
}
