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
	if from < 3 {
		// Format 2 added the finish-time indexes of done and dead jobs, one
		// key per job; format 3 keeps one entry per commit (finished.go).
		// Both are rebuilt from the done and dead jobs.
		if err := rebuildFinishedIndexes(tx); err != nil {
			return fmt.Errorf("migrate to format %d: %w", storeFormat, err)
		}
	}
	return nil
}
