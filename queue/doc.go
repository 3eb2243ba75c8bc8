// Package queue is Conveyor's durable job store, on a bbolt file.
//
// It owns job records, their states and the moves between them (enqueue,
// claim, ack, fail, kill, snooze, release, retry now, discard, clear), the
// promotion of scheduled and retrying jobs when they fall due, unique keys,
// leases, per-queue counters and per-minute statistics, retention, and change
// notifications. It knows nothing of HTTP, SQLite or lanes.
//
// Words keep one meaning: to kill a job is to send it to dead (a worker's Kill
// outcome, the lanes' Kill error); to discard a job is to delete it (Discard,
// the API's discard); to release a job is to put it back as it was.
//
// Workers take jobs as Claims from a Consumer: a one-time token on which the
// worker calls Begin, runs the handler, and calls Finish once with the
// outcome (Ack, Fail, Kill, Snooze, Release). A claim cannot be finished
// twice, nor with an attempt's outcome before its Begin.
//
// # Promises
//
//   - Enqueue and EnqueueMany return only after the jobs are fsynced; a batch is
//     all or nothing. Concurrent enqueues share one transaction and one fsync.
//   - Every job is in exactly one state index; a record and its index entries
//     change in one transaction. Check verifies it.
//   - Delivery is at least once. An acked job never runs again. A job that was
//     running when the process died runs again after restart: the process holds
//     the file lock, so at Open every running job is an orphan. The running
//     journal (journal.go) says which of them a worker was running at the
//     moment of death: each of those gets an orphan strike and the error
//     "orphaned by a crash", and runs alone from then on (a suspect), so that a
//     second crash can only be its own; at MaxOrphans strikes it goes to dead
//     ("crashed the worker 3 times"), so a poison pill cannot crash-loop the
//     appliance and the jobs that ran beside it once are not blamed again. A
//     job that was claimed but not begun, or whose handler had returned, goes
//     back untouched.
//   - A unique key is held while its job is unfinished (and, with UniqueFor, at
//     least that long after enqueue); it is released in the transaction that
//     finishes, kills or deletes the job, so no key is stuck after a crash.
//   - Queue sizes, latencies and state counts are read from memory kept in step
//     with the file by the writer: never by scanning.
//
// # Shape
//
// One writer goroutine (writer.go) performs every write. Each of its
// transactions takes the waiting enqueues, the finished attempts, the due
// promotions and the claims the consumers have room for, so one fsync serves
// them all. The record is a compact versioned binary envelope with a CRC-32C
// (record.go) written on enqueue and rewritten only when it must remember
// something new; the state, lease and running attempt live in the index
// entries (keys.go); done and dead jobs are ordered by finish time with one
// index entry per commit (finished.go).
// docs/state-machine.md draws the states and moves.
package queue
