// Package cron owns Conveyor's recurring schedule: reading it, deciding
// from the schedule, the clock and the last fire which tick of an entry is
// due (Decide, a pure function), and running it (Scheduler): enqueueing
// each tick into the queue, keeping each entry's history in SQLite, and
// watching its own liveness.
//
// # The promise
//
// River calls its periodic jobs "approximate". Conveyor's are not. Each
// tick of an entry has one identity, TickKey (the entry's name and the
// tick's scheduled instant in Unix seconds), and:
//
//   - a tick fires at most once: Decide never fires a tick at or before
//     the last one fired, whatever the clock does, and enqueueing under
//     TickKey as a unique key makes a crash between enqueue and record
//     harmless;
//   - a tick is never missed silently: it fires on time (at most Grace
//     late), or Decide reports it in Decision.MissedFirst/MissedLast;
//   - with the run_once policy, the most recent tick missed during
//     downtime fires exactly once if it is at most the entry's catch-up
//     window late; never a burst of every missed tick;
//   - daylight-saving changes neither double nor drop a fixed-time tick
//     (see Entry.Next for the exact rules).
//
// # The schedule file
//
// The file is sidekiq-cron's: a YAML hash keyed by entry name (or a list of
// entries with a "name"), each with cron, class, queue, args, description
// and status; see Parse for every key. Cron lines are read by ParseLine and
// evaluated with github.com/adhocore/gronx on a zone-free wall clock, the
// zone (UTC, or the IANA name ending the line) being applied by this
// package. A bad entry is an error naming the entry, the YAML line, the
// field and what is wrong; Check is the body of "conveyor schedule check".
//
// # Missed runs
//
// Each entry has a missed-run policy: Skip (the default, sidekiq-cron's
// behaviour) or RunOnce. Decide applies it; see its documentation.
//
// # The scheduler
//
// A Scheduler keeps every active entry in a heap by its next tick and
// sleeps until the earliest one (or at most Options.Recheck, a minute by
// default, so that a wall clock set forward or a resumed laptop is noticed:
// Go's timers do not follow the wall clock). It wakes, calls Decide for
// the entries that are due and for nothing else, enqueues all the ticks
// that fire in one batch (queue.Store.EnqueueMany: one fsync) under their
// TickKey with a UniqueFor longer than any tick of the entry can fire late,
// and only then records the fires and the missed ranges in SQLite in one
// transaction (data.RecordCronRuns). So:
//
//   - a crash before the enqueue is durable fires the tick after restart
//     if its policy still allows it (or reports it missed);
//   - a crash after the enqueue and before the record offers the tick
//     again after restart, and the queue answers with the job that holds
//     its unique key: it runs once;
//   - a clock that jumps back fires nothing until it is past the last fire
//     again; one that jumps forward is downtime (Decide reports the gap).
//
// History.Since is stored per entry: when the scheduler first saw it,
// when it was last enabled (by the file or an operator), or when its cron
// line changed; never the process start. An entry whose class is not
// registered (or whose queue no lane serves) is shown as unavailable and
// never enqueues, so no job waits for a handler that does not exist.
// Operators enable, disable (persisted; it overrides the file) and enqueue
// now through SetEnabled and EnqueueNow; Entries shows each entry with its
// last fire, last job, next tick and missed ranges.
//
// # Liveness
//
// A watchdog goroutine judges the loop by what it sees it do: when work
// has been due for Options.LateAfter (30 s by default) of its own
// observation and the loop finished no pass, the scheduler is late; when
// a due tick cannot be enqueued, or fires cannot be recorded, for
// LateAfter, it is failing; when the loop is gone it is stopped. Health
// reports the verdict (for readiness), and each change opens, adds to or
// auto-resolves one "scheduler" issue in SQLite.
package cron
