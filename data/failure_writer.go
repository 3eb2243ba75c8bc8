package data

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"conveyor/internal/lifecycle"
)

// maxHeldErrors is how many write errors the writer holds for the next
// Flush; beyond them it counts.
const maxHeldErrors = 16

// Defaults for FailureWriterOptions.
const (
	DefaultFailureBatch      = 2000
	DefaultFailureLinger     = 5 * time.Millisecond
	DefaultFailureInterval   = 200 * time.Millisecond
	DefaultFailureMaxPending = 100_000
	// DefaultFailureBusyInterval is FailureWriterOptions.BusyInterval.
	DefaultFailureBusyInterval = 2 * time.Second
)

// FailureWriterOptions configures a FailureWriter. Zero (or negative)
// fields take their defaults.
type FailureWriterOptions struct {
	// BatchSize is the most failures written per transaction
	// (DefaultFailureBatch).
	BatchSize int
	// Linger is how long the writer waits for more failures after the first
	// one arrives before it writes a partial batch (DefaultFailureLinger).
	Linger time.Duration
	// Interval is the least time between the starts of two batches that
	// are not full (DefaultFailureInterval): while failures keep coming
	// they gather into batches of up to BatchSize. A transaction rewrites
	// every index page it touches, whatever the number of rows it adds, so
	// a burst written in batches of a few rows costs SQLite several times
	// the CPU per row that batches of thousands do (BenchmarkFailureWriter).
	// A failure that arrives after a quiet spell waits only Linger.
	Interval time.Duration
	// Busy, when set, says whether the work the writer shares the CPU with
	// is busy (the app: the lanes are finishing jobs fast). While it is,
	// the writer holds failures for up to BusyInterval
	// (DefaultFailureBusyInterval) instead of Interval, or until BusyHold
	// (MaxPending/2) of them wait, and then writes them all: a burst of
	// failures shorter than BusyInterval is written after it, not during
	// it. Failures show in the list later meanwhile; /readyz counts them
	// as pending. It is called from the writer's goroutine only.
	Busy         func() bool
	BusyInterval time.Duration
	BusyHold     int
	// MaxPending bounds the in-memory queue (DefaultFailureMaxPending rows).
	// Add drops — and counts — failures beyond it rather than block or grow.
	MaxPending int
	// MaxRate, when positive, is the most failures written per second: after
	// each batch the writer pauses until the batch's share of a second has
	// passed. It keeps a burst of failures from taking the CPU the jobs
	// need (the failures wait in memory, up to MaxPending); Close cuts a
	// pause short. With Busy set, the pace applies only while Busy says so.
	// Zero means as fast as the database takes them.
	MaxRate int
	// OnFlush, when set, is called by the writer goroutine after each batch
	// commits, with the failures of that batch (IDs set). The failure
	// pipeline upserts issues and publishes events from it. It must not call
	// Flush or Close. A slow OnFlush slows the writer down.
	OnFlush func([]*Failure)
	// Logger receives write errors (discarded when nil).
	Logger *slog.Logger
}

// FailureWriterStats are the writer's counters since it started.
type FailureWriterStats struct {
	Added   uint64 // accepted by Add
	Written uint64 // committed
	Dropped uint64 // refused by Add: queue full or writer closed
	Failed  uint64 // accepted but not written: invalid, or the write failed
	Pending int    // accepted, not yet written: waiting, or in the batch being written
}

// FailureWriter batches failures from bursts of failing jobs into few
// transactions. Add never blocks; one goroutine writes. Close it before the
// DB it writes to.
type FailureWriter struct {
	db     *DB
	opts   FailureWriterOptions
	logger *slog.Logger

	mu       sync.Mutex
	pending  []*Failure
	closed   bool
	added    uint64 // accepted, in order: the sequence number of the last one
	done     uint64 // accepted ones that were written or failed
	written  uint64
	dropped  uint64
	failed   uint64
	errs     []error       // write errors not yet returned by Flush (the first maxHeldErrors)
	moreErrs int           // write errors beyond those
	progress chan struct{} // closed and replaced whenever done advances

	lost chan struct{} // cap 1: failures were dropped or not written (Lost)
	wake chan struct{} // cap 1: there is work, or a flush is wanted
	now  chan struct{} // cap 1: flush without lingering
	stop chan struct{} // closed by Close
	// writer runs run; cancelling it aborts the write in flight when Close
	// gives up.
	writer lifecycle.Loop

	onAbandon func() // test hook: Close gave up on the pending failures
	// pause waits d or until stop is closed (a test hook replaces it).
	pause func(d time.Duration, stop <-chan struct{})
}

// NewFailureWriter starts a writer on db. Close it to stop its goroutine.
func NewFailureWriter(db *DB, opts FailureWriterOptions) *FailureWriter {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultFailureBatch
	}
	if opts.Linger <= 0 {
		opts.Linger = DefaultFailureLinger
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultFailureInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultFailureMaxPending
	}
	if opts.BusyInterval <= 0 {
		opts.BusyInterval = DefaultFailureBusyInterval
	}
	if opts.BusyHold <= 0 {
		opts.BusyHold = max(1, opts.MaxPending/2)
	}
	opts.MaxRate = max(0, opts.MaxRate)
	w := &FailureWriter{
		db:       db,
		opts:     opts,
		logger:   cmp.Or(opts.Logger, db.logger),
		progress: make(chan struct{}),
		lost:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		now:      make(chan struct{}, 1),
		stop:     make(chan struct{}),
		pause:    sleepUnless,
	}
	// The writer goroutine outlives any caller's context: it is the root of
	// its own, which Close cancels when its deadline passes.
	w.writer.Go(context.Background(), w.run)
	return w
}

// Add queues f for writing and returns at once. When the writer is closed or
// MaxPending failures are already waiting, f is dropped and counted in
// Stats().Dropped. The writer owns f from here on: it sets f.ID on commit.
func (w *FailureWriter) Add(f *Failure) {
	w.mu.Lock()
	if w.closed || len(w.pending) >= w.opts.MaxPending {
		w.dropped++
		w.mu.Unlock()
		w.signalLost()
		return
	}
	w.pending = append(w.pending, f)
	w.added++
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every failure added before the call is committed (or
// has failed) and OnFlush has run for it. It returns the write errors seen
// since the previous Flush, joined, or ctx's error.
func (w *FailureWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.added
	w.mu.Unlock()
	select {
	case w.now <- struct{}{}:
	default:
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	for {
		w.mu.Lock()
		if w.done >= target {
			errs := w.errs
			if w.moreErrs > 0 {
				errs = append(errs, fmt.Errorf("data: %d more failures not written", w.moreErrs))
			}
			w.errs, w.moreErrs = nil, 0
			w.mu.Unlock()
			return errors.Join(errs...)
		}
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-w.writer.Done():
			w.mu.Lock()
			done := w.done >= target
			w.mu.Unlock()
			if !done {
				return errors.New("data: failure writer stopped before flushing")
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting failures, writes what is pending and stops the
// goroutine. When ctx ends first, the failures still pending are counted as
// failed and Close returns ctx's error after the batch in flight commits.
func (w *FailureWriter) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.writer.Done()
		return nil
	}
	w.closed = true
	// Writes that failed before were logged and counted when they failed
	// (a disk full for a while, say): Close reports only what it fails
	// to write itself.
	w.errs, w.moreErrs = nil, 0
	w.mu.Unlock()
	close(w.stop)
	flushErr := w.Flush(ctx)
	if flushErr != nil && ctx.Err() != nil {
		// Give up on what is left: count it failed and abort the write
		// in flight.
		w.mu.Lock()
		n := len(w.pending)
		w.pending = nil
		w.failed += uint64(n)
		w.done += uint64(n)
		w.signal()
		w.mu.Unlock()
		if n > 0 {
			w.signalLost()
		}
		w.writer.Cancel()
		if w.onAbandon != nil {
			w.onAbandon()
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.writer.Stop(context.Background()) // waits for the goroutine to return
	return flushErr
}

// Lost returns a channel that receives when failures were dropped by Add
// or failed to be written since the last receive (one value stands for any
// number of them). The failure pipeline rebuilds such rows from the queue
// (failures.Reconciler).
func (w *FailureWriter) Lost() <-chan struct{} { return w.lost }

func (w *FailureWriter) signalLost() {
	select {
	case w.lost <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (w *FailureWriter) Stats() FailureWriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return FailureWriterStats{Added: w.added, Written: w.written, Dropped: w.dropped, Failed: w.failed, Pending: int(w.added - w.done)}
}

// signal wakes Flush waiters; w.mu must be held.
func (w *FailureWriter) signal() {
	close(w.progress)
	w.progress = make(chan struct{})
}

func (w *FailureWriter) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		lastStart time.Time // of the previous batch
		drain     uint64    // write without lingering until done reaches it
	)
	for {
		w.mu.Lock()
		n, closed, done := len(w.pending), w.closed, w.done
		w.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			select {
			case <-w.wake:
			case <-w.stop:
			}
			continue
		}
		if done >= drain && !closed {
			w.linger(timer, lastStart, n)
			// What waits now is written before the writer lingers again.
			w.mu.Lock()
			drain = w.added
			w.mu.Unlock()
		}
		w.mu.Lock()
		k := min(len(w.pending), w.opts.BatchSize)
		batch := make([]*Failure, k)
		copy(batch, w.pending)
		w.pending = w.pending[k:]
		if len(w.pending) == 0 {
			w.pending = nil // let the backing array go after a burst
		}
		w.mu.Unlock()
		if k > 0 {
			start := time.Now()
			lastStart = start
			w.write(ctx, batch)
			if w.opts.MaxRate > 0 && (w.opts.Busy == nil || w.opts.Busy()) {
				if d := time.Duration(k)*time.Second/time.Duration(w.opts.MaxRate) - time.Since(start); d > 0 {
					w.pause(d, w.stop)
				}
			}
		}
	}
}

// linger waits for a fuller batch: Linger after the first of n waiting
// failures, and until Interval after the previous batch began (BusyInterval
// while Busy says so), unless a flush is wanted, the writer is closing, or
// a batch's worth (BusyHold while busy) is waiting.
func (w *FailureWriter) linger(timer *time.Timer, lastStart time.Time, n int) {
	interval, enough := w.opts.Interval, w.opts.BatchSize
	if w.opts.Busy != nil && w.opts.Busy() {
		interval, enough = w.opts.BusyInterval, w.opts.BusyHold
	}
	if n >= enough {
		return
	}
	select {
	case <-w.now:
		return
	default:
	}
	timer.Reset(max(w.opts.Linger, interval-time.Since(lastStart)))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return
		case <-w.now:
			return
		case <-w.stop:
			return
		case <-w.wake:
			w.mu.Lock()
			full := len(w.pending) >= enough
			w.mu.Unlock()
			if full {
				return
			}
		}
	}
}

// write commits one batch. When the batch fails as a whole (one invalid
// failure fails its transaction) it retries the failures one by one, so one
// bad row costs only itself.
func (w *FailureWriter) write(ctx context.Context, batch []*Failure) {
	var written []*Failure
	var errs []error
	if err := w.db.InsertFailures(ctx, batch); err == nil {
		written = batch
	} else {
		for _, f := range batch {
			if err := w.db.InsertFailures(ctx, []*Failure{f}); err != nil {
				errs = append(errs, err)
				w.logger.Error("failure not recorded", "class", classOf(f), "error", err)
				continue
			}
			written = append(written, f)
		}
	}
	if len(written) > 0 && w.opts.OnFlush != nil {
		w.opts.OnFlush(written)
	}
	w.mu.Lock()
	w.written += uint64(len(written))
	w.failed += uint64(len(batch) - len(written))
	w.done += uint64(len(batch))
	for _, err := range errs {
		if len(w.errs) < maxHeldErrors {
			w.errs = append(w.errs, err)
		} else {
			w.moreErrs++ // nobody may Flush for hours: hold a few, count the rest
		}
	}
	w.signal()
	w.mu.Unlock()
	if len(written) < len(batch) {
		w.signalLost()
	}
}

// sleepUnless waits d, or less when stop is closed.
func sleepUnless(d time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

func classOf(f *Failure) string {
	if f == nil {
		return ""
	}
	return f.Class
}
