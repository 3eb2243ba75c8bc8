package queue

import (
	"context"
	"errors"
	"fmt"
)

// MaxBulk is the most job ids one RetryNowMany or DiscardMany call takes:
// they share one transaction, which this keeps short.
const MaxBulk = 5000

// RetryNowMany does RetryNow for each id in one transaction (one commit
// for all) and returns each one's error, nil where the job was made ready:
// ErrNotFound, ErrRunning and ErrWrongState as RetryNow returns them. The
// error is for the call as a whole (the store closed, the commit failed,
// too many ids); then nothing changed.
func (s *Store) RetryNowMany(ctx context.Context, ids []uint64) ([]error, error) {
	return s.many(ctx, ids, (*txn).retryNow)
}

// DiscardMany does Discard for each id in one transaction and returns each
// one's error, as RetryNowMany does.
func (s *Store) DiscardMany(ctx context.Context, ids []uint64) ([]error, error) {
	return s.many(ctx, ids, (*txn).discard)
}

// perJob marks a job's own refusal, which does not abort the transaction.
func perJob(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrRunning) || errors.Is(err, ErrWrongState)
}

func (s *Store) many(ctx context.Context, ids []uint64, op func(t *txn, id uint64) error) ([]error, error) {
	if len(ids) > MaxBulk {
		return nil, &ValidationError{Field: "ids", Reason: fmt.Sprintf("at most %d jobs a call (got %d)", MaxBulk, len(ids))}
	}
	errs := make([]error, len(ids))
	if len(ids) == 0 {
		return errs, nil
	}
	err := s.admin(ctx, func(t *txn) error {
		// Run again from scratch if bbolt retries the closure.
		clear(errs)
		for i, id := range ids {
			if err := op(t, id); err != nil {
				if !perJob(err) {
					return err
				}
				errs[i] = err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}
