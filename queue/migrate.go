package queue

import (
	"bytes"
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
		// Format 3 also checksums every job record (record.go's format 2).
		if err := checksumRecords(tx); err != nil {
			return fmt.Errorf("migrate to format %d: %w", storeFormat, err)
		}
	}
	return nil
}

// checksumRecords rewrites every job record of record format 1 in format 2
// (the same bytes and a checksum), a thousand at a time: a cursor must not
// walk a bucket while it is written.
func checksumRecords(tx *bolt.Tx) error {
	jobs := tx.Bucket(bucketJobs)
	jobs.FillPercent = 1.0
	var from []byte
	for {
		var keys, vals [][]byte
		c := jobs.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for ; k != nil && len(keys) < 1000; k, v = c.Next() {
			if len(v) > 0 && v[0] == recordFormat1 {
				keys = append(keys, bytes.Clone(k))
				vals = append(vals, checksummed(v))
			}
		}
		from = bytes.Clone(k) // the first not looked at yet (nil: none)
		for i := range keys {
			if err := jobs.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		if from == nil {
			return nil
		}
	}
}
