// Package failures owns what happens after a job fails: what kind of
// failure it is, how alike failures are grouped into one issue, where the
// failure row is written, how failures are retried, and the queue-health
// check that raises issues of its own.
//
// It builds on conveyor/queue, conveyor/lanes, conveyor/data and
// conveyor/ops/events; none of those imports it.
//
// # Classification
//
// [Classify] maps an error to a failure kind (conveyor/ops/fault): fault.Authentication,
// fault.Transient or fault.Runtime. The kind steers the queue's retry
// ([RetryableError]): authentication failures are never retried
// automatically. The rules, in the order they are tried, are documented on
// [Classify]. Handlers that know better set the kind themselves with
// fault.Error or any error with a FailureKind method. Panics recovered by
// the worker middleware are recorded as fault.Runtime.
//
// # Fingerprints
//
// [Fingerprint] groups alike failures (and queue-health and AI-outage
// reports) into one issue: it hashes the source, kind, class and the message
// after [NormalizeMessage] has replaced ids, numbers, hex, UUIDs, e-mail
// addresses, URL query strings and quoted values with placeholders.
//
// # Capture: where a failure row is written
//
// [Capture] is the lanes middleware around every attempt (capture.go): a
// failed attempt becomes a data.Failure handed, without waiting, to the
// data.FailureWriter, which inserts the rows in batches on its own
// goroutine and then calls its OnFlush ([Tracker.RecordFailures] in the
// app). Capture also settles the retry state of earlier failures when a
// later attempt of the same job ends.
//
// # Reconciliation: every failed attempt has its row
//
// The queue keeps each failed attempt's error in the job's record, in the
// transaction (fsynced) that fails the job; the row reaches SQLite later,
// through the writer. The [Reconciler] closes the gap: at start, every 10
// minutes and after the writer dropped or failed to write rows, it reads
// every job in the queue and rebuilds, from the job and its stored errors,
// the row of each failed attempt that has none (marked recovered): rows a
// crash lost from the writer, rows a full writer dropped, and attempts the
// capture never saw — crash strikes ("orphaned by a crash") and jobs of
// unregistered classes. It waits for the writer before it rebuilds, and
// data.InsertRecoveredFailures checks and inserts in one transaction, so
// no attempt gets two rows.
//
// # Issues
//
// The [Tracker] keeps one issue per fingerprint: job failures arrive in
// batches through RecordFailures; every health check — queue health, the
// local AI outages (conveyor/ops/localai) and the scheduler's liveness
// (conveyor/cron) — reports a [Problem] through [Tracker.Raise] and
// resolves it through [Tracker.Clear], so all of them share one fingerprint
// scheme ([ProblemFingerprint] of source and subject). Every change
// publishes events.TopicIssues.
//
// # Retries
//
// The [Retrier] retries a failure by hand ([Retrier.Retry],
// [Retrier.RetryMatching], whose walk is bounded by the highest failure id
// when it began, so that it never retries the failures of its own
// retries, and retries each job once) or automatically in bounded batches
// ([Retrier.AutoRetry], the RetryFailedBackgroundJobsJob class), refusing
// with a typed [RefusedError] whatever cannot be retried (authentication
// failures, finished pipelines, classes no longer registered, …).
//
// # Queue health
//
// [QueueHealth] (CheckQueueHealthJob) compares every queue's size and
// latency with thresholds and raises or clears one queue_health issue per
// queue.
package failures
