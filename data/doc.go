// Package data owns everything Conveyor keeps in SQLite: job failures and
// their roll-ups, issues, accounts and profiles, sync cursors, cron state,
// pipelines and health checks. It opens the database (modernc.org/sqlite,
// pure Go), applies the schema migrations embedded in the binary, offers the
// repositories as methods on *DB, and replicates the file with the embedded
// litestream (Replicate, Restore). It imports no other Conveyor package.
//
// # Connections
//
// Open keeps one writer connection (every write is BEGIN IMMEDIATE on it, so
// writers queue in Go instead of failing with SQLITE_BUSY) and a read-only
// pool (Options.ReadConns, 40 by default like the seed's RAILS_MAX_THREADS).
// All settings are in the DSN so every pooled connection has them: WAL,
// busy_timeout(5000), foreign_keys(ON), synchronous(NORMAL) and
// wal_autocheckpoint(0) — litestream owns checkpoints; never checkpoint by
// hand. Reads that return a page and a total run in one read transaction.
//
// # Migrations
//
// Scripts live in data/migrations as NNNN_name.sql, versions from 1 without
// gaps. Each is applied in its own transaction together with its
// schema_migrations row, so a crash or an error half-way leaves the previous
// version and the next Open retries the script. A database that records a
// migration this binary lacks is refused (*SchemaError, ErrSchemaTooNew).
//
// # Time
//
// Every timestamp is stored as INTEGER unix milliseconds, UTC, and read back
// as a UTC time.Time; the zero time is NULL. Integers are 8 bytes against 24
// or more for RFC 3339 text, compare and index as numbers, cannot carry a
// zone or a fraction that sorts wrongly (RFC 3339 text with and without
// fractional seconds does not sort by time), and make time ranges and the
// hourly roll-up (hour = ms / 3600000 * 3600000) plain arithmetic. Times
// the store sets itself come from Options.Now.
//
// # Failures at scale
//
// The failures table is built for a million rows and bursts of 10,000
// failures a second:
//
//   - One index per filterable field ending in occurred_at, so a filtered,
//     time-sorted first page reads straight off an index (about 1 ms at a
//     million rows; see BenchmarkFindFailures1M).
//   - Roll-up tables (failure_counts, failure_hours) make counts over the
//     low-cardinality fields and time ranges cost the same at any size.
//     Other counts stop at Options.CountCap (10,000) and say so.
//   - Substring search (FailureFilter.Q, conditions on error_message) looks
//     at the newest Options.SearchWindow (20,000) failures that match the
//     other conditions: bounded cost (tens of milliseconds), documented
//     incompleteness; FailureIDs is exact for retry-all.
//   - FailureWriter batches bursts into transactions of up to 2,000 rows,
//     at most one partial batch per Interval (200 ms), without ever
//     blocking the caller; past MaxPending (100,000) waiting rows it drops,
//     counts and signals (Lost). MaxRate paces it during a burst, so that
//     recording failures does not take the CPU the jobs need. A row it lost
//     is rebuilt by the failure pipeline's reconciliation
//     (MissingFailures, InsertRecoveredFailures: marked recovered, never
//     twice).
//   - A failure's retry state moves by compare-and-set
//     (UpdateFailureRetryIf), so two retries of one failure make one job;
//     SettleFailures marks earlier failures superseded or succeeded when a
//     later attempt of their job ends; LaterFailure and SetFailureRetryJob
//     serve the retry checks.
//
// # Replication
//
// Replicate runs litestream in-process for one database and replica URL
// (file:///abs/dir or s3://bucket/prefix?…; the s3 backend is linked, see
// s3.go). Shutdown order: (*FailureWriter).Close, then (*DB).Close, then
// (*Replicator).Close, which uploads what is left. Restore rebuilds a database from the replica
// into a path that must not exist, then runs integrity_check. The same
// litestream.yml serves this package (LoadLitestreamConfig) and a stock
// litestream CLI; never run both replicating one database at once.
//
// # Known issues
//
//   - Counts combining a non-roll-up field (account_id, attempt, job_id, …)
//     with other unselective conditions are capped at CountCap.
//   - Substring search misses matches older than the search window; narrow
//     the time range (occurred_at) to search further back.
//   - An s3 replica cannot use a custom CA bundle: AWS_CA_BUNDLE is unset
//     before the client starts, because litestream's AWS client cannot use
//     it. (This package links litestream's s3 backend itself, see s3.go.)
//   - The WAL file keeps its high-water mark between litestream's passive
//     checkpoints; lower ReplicaOptions.TruncatePageN to bound it.
package data
