package failures

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"conveyor/data"
)

// BatchResult counts what a batch retry did.
type BatchResult struct {
	// Examined is how many failures were looked at.
	Examined int `json:"examined"`
	// Queued is how many were retried.
	Queued int `json:"queued"`
	// Refused is how many were refused, and Reasons how many per reason.
	Refused int                   `json:"refused"`
	Reasons map[RefusalReason]int `json:"reasons"`
	// Skipped is how many an automatic run left for a later one (over the
	// per-fingerprint budget).
	Skipped int `json:"skipped"`
	// Errors is how many failed for another reason (logged).
	Errors int `json:"errors"`
	// Next is the id to continue after, and More says whether there may be
	// more to do. Until is the highest id a RetryMatching walk covers (0 for
	// automatic runs).
	Next  int64 `json:"next_after_id"`
	Until int64 `json:"until_id"`
	More  bool  `json:"more"`
}

func (b *BatchResult) add(err error) {
	var re *RefusedError
	switch {
	case err == nil:
		b.Queued++
	case errors.As(err, &re):
		b.Refused++
		if b.Reasons == nil {
			b.Reasons = map[RefusalReason]int{}
		}
		b.Reasons[re.Reason]++
	default:
		b.Errors++
	}
}

// RetryMatching retries, by hand, the failures matching ff (its sort and
// paging are ignored) with afterID < id <= untilID, in ascending id order,
// and stops after limit failures (DefaultRetryAllLimit when 0); result.More
// and result.Next say where to go on. untilID 0 means the highest failure id
// when the call begins, and result.Until says which bound the walk used:
// pass it back with result.Next to go on. The failures the retries
// themselves cause have higher ids, so a walk and its continuations never
// retry them (a walk without a bound would retry its own retries' failures
// until the jobs ran out of attempts). Each failure is checked as by Retry,
// and each job is retried at most once per call.
func (r *Retrier) RetryMatching(ctx context.Context, ff data.FailureFilter, afterID, untilID int64, limit int) (BatchResult, error) {
	switch {
	case limit < 0:
		return BatchResult{}, errors.New("failures: retry matching: limit must not be negative")
	case afterID < 0 || untilID < 0:
		return BatchResult{}, errors.New("failures: retry matching: ids must not be negative")
	}
	if err := ff.Validate(); err != nil {
		return BatchResult{}, err
	}
	limit = cmp.Or(limit, DefaultRetryAllLimit)
	res := BatchResult{Next: afterID, Until: untilID}
	if res.Until == 0 {
		last, err := r.db.LastFailureID(ctx)
		if err != nil {
			return res, err
		}
		res.Until = last
	}
	if res.Next >= res.Until {
		return res, nil
	}
	ff.Conds = append(slices.Clip(ff.Conds), data.Cond{Field: data.FieldID, Op: data.OpLe, Value: res.Until, Param: "until_id"})
	once := &jobOnce{}
	for res.Examined < limit {
		ids, err := r.db.FailureIDs(ctx, ff, res.Next, min(bulkRetryChunk, limit-res.Examined))
		if err != nil {
			return res, err
		}
		if len(ids) == 0 {
			return res, nil
		}
		errs := r.retryFailures(ctx, ids, once)
		for i, err := range errs {
			res.add(err)
			if err != nil && !errors.Is(err, ErrRetryRefused) {
				r.log.Error("retry failed", "failure", ids[i], "error", err)
			}
		}
		res.Examined += len(ids)
		res.Next = ids[len(ids)-1]
		if err := ctx.Err(); err != nil {
			res.More = true
			return res, err
		}
	}
	// Stopped at the limit: is there more?
	ids, err := r.db.FailureIDs(ctx, ff, res.Next, 1)
	res.More = err == nil && len(ids) > 0
	return res, err
}

// jobOnce is the set of jobs a batch retry has retried, so that it retries
// each job at most once.
type jobOnce struct {
	mu   sync.Mutex
	jobs map[uint64]bool
}

// claim reports whether job id was not claimed before, and claims it.
func (o *jobOnce) claim(id uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.jobs[id] {
		return false
	}
	if o.jobs == nil {
		o.jobs = map[uint64]bool{}
	}
	o.jobs[id] = true
	return true
}

// retryFailures retries, by hand, the failures ids (a chunk of at most
// 1,000) with each job at most once (once), and returns each one's error.
// It decides each failure in memory from its row, its job and its job's
// latest failure, checked as Retry checks them, and settles the chunk at
// once; failures whose job the queue no longer holds go through Retry's
// path, which enqueues a new job.
func (r *Retrier) retryFailures(ctx context.Context, ids []int64, once *jobOnce) []error {
	errs := make([]error, len(ids))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	fs, err := r.db.FailuresByIDs(ctx, ids)
	if err != nil {
		return fail(err)
	}
	jobIDs := make([]uint64, 0, len(fs))
	for _, f := range fs {
		if f.JobID != 0 {
			jobIDs = append(jobIDs, f.JobID)
		}
	}
	latest, err := r.db.LatestFailures(ctx, jobIDs)
	if err != nil {
		return fail(err)
	}
	var (
		claims []pendingRetry
		ups    []data.RetryUpdate
		gone   []int // failures whose job is gone: one at a time
	)
	for i, id := range ids {
		f := fs[id]
		if f == nil { // deleted since it was listed
			errs[i] = fmt.Errorf("failures: failure %d: %w", id, data.ErrNotFound)
			continue
		}
		j, err := r.jobOf(f)
		switch {
		case err != nil:
			errs[i] = err
			continue
		case j == nil:
			gone = append(gone, i)
			continue
		}
		plan, err := r.check(ctx, f, retryMode{once: once, job: j, latest: latest[f.JobID], records: &ups})
		switch {
		case err != nil:
			errs[i] = err
		case !plan.revive: // not expected: the job is there
			errs[i] = fmt.Errorf("failures: retry failure %d: job %d is there but cannot be revived", f.ID, f.JobID)
		case !once.claim(f.JobID):
			errs[i] = alreadyInThisRequest(f)
		default:
			claims = append(claims, r.claimRecord(&ups, i, f, plan))
		}
	}
	r.settle(ctx, ups, claims, nil, errs)
	if len(gone) > 0 {
		gids := make([]int64, len(gone))
		for k, i := range gone {
			gids[k] = ids[i]
		}
		for k, err := range r.retryAll(ctx, gids, retryMode{once: once}) {
			errs[gone[k]] = err
		}
	}
	return errs
}

// retryAll retries ids with a few workers and returns each one's error.
func (r *Retrier) retryAll(ctx context.Context, ids []int64, mode retryMode) []error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(retryWorkers, len(ids)) {
		wg.Go(func() {
			for i := range next {
				_, errs[i] = r.retry(ctx, ids[i], mode)
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}
