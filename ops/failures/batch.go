package failures

import (
	"cmp"
	"context"
	"errors"
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
	// more to do.
	Next int64 `json:"next_after_id"`
	More bool  `json:"more"`
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
// paging are ignored) with an id after afterID, in ascending id order, and
// stops after limit failures (DefaultRetryAllLimit when 0); result.More and
// result.Next say where to go on. Each failure is checked as by Retry.
func (r *Retrier) RetryMatching(ctx context.Context, ff data.FailureFilter, afterID int64, limit int) (BatchResult, error) {
	if limit < 0 {
		return BatchResult{}, errors.New("failures: retry matching: limit must not be negative")
	}
	limit = cmp.Or(limit, DefaultRetryAllLimit)
	res := BatchResult{Next: afterID}
	for res.Examined < limit {
		ids, err := r.db.FailureIDs(ctx, ff, res.Next, min(retryChunk, limit-res.Examined))
		if err != nil {
			return res, err
		}
		if len(ids) == 0 {
			return res, nil
		}
		errs := r.retryAll(ctx, ids, retryMode{})
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
