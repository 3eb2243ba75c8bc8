// Package cron owns Conveyor's recurring schedule: reading it, and deciding
// from the schedule, the clock and the last fire which tick of an entry is
// due. It does no I/O beyond reading a schedule file and knows nothing of
// the queue or the database; the scheduler loop that enqueues ticks and
// records fires is built on top of it.
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
package cron
