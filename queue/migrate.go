package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrate brings the buckets of a store written in an earlier format up to
// storeFormat, inside the transaction that opens it (all or nothing: a crash
// part-way leaves the old format, migrated again at the next Open). The record
// layout is versioned on its own (record.go).
func migrate(tx *bolt.Tx, from byte) error {
	if from < 2 {
		// Format 2 adds the finish-time indexes of done and dead jobs.
		for _, idx := range []struct {
			st           State
			byID, byTime []byte
		}{{StateDone, bucketDone, bucketDoneAt}, {StateDead, bucketDead, bucketDeadAt}} {
			byTime := tx.Bucket(idx.byTime)
			if err := tx.Bucket(idx.byID).ForEach(func(k, v []byte) error {
				qid, at := finishedEntry(idx.st, v)
				return byTime.Put(timeKey(fromNano(at), getU64(k)), qidKey(qid))
			}); err != nil {
				return fmt.Errorf("migrate to format 2: %w", err)
			}
		}
	}
	return nil
}
