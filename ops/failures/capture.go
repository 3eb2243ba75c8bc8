package failures

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// Size caps of a captured failure, and the settler's queue.
const (
	// DefaultCaptureArgsBytes caps the args kept with a failure. Larger
	// args are kept as {"truncated_by_conveyor": true, "bytes": N,
	// "prefix": "…"}; such
	// a failure cannot be retried once its job is gone (see Retrier).
	DefaultCaptureArgsBytes = 64 << 10
	// DefaultCaptureMessageBytes caps the error message kept (the queue
	// keeps as much).
	DefaultCaptureMessageBytes = 8 << 10
	// DefaultCaptureBacktraceBytes caps the backtrace kept.
	DefaultCaptureBacktraceBytes = 16 << 10
	// DefaultSettleQueue bounds the job outcomes waiting to be settled;
	// beyond it they are dropped and counted (CaptureStats.OutcomesDropped).
	DefaultSettleQueue = 10_000
	// DefaultFailureWriteRate is the data.FailureWriterOptions.MaxRate the
	// app uses: a burst of failures is recorded at up to this many a second
	// (beyond the 10,000 a second the product promises), leaving the rest of
	// the CPU to the lanes; the excess waits in memory. On a 2-core machine
	// an unpaced writer took half the lanes' throughput during a burst (see
	// BenchmarkFailureBurst).
	DefaultFailureWriteRate = 12_000
	// settleBatch is the most outcomes settled per transaction.
	settleBatch = 512
)

// CtxRetryOf is the job context key naming the failure a job was enqueued
// to retry (see Retrier). The capture middleware settles that failure with
// the job's outcome.
const CtxRetryOf = "retry_of_failure"

// SourceJobFailure is the fingerprint source of job failures (the issue
// source data.SourceJobFailure).
const SourceJobFailure = string(data.SourceJobFailure)

// CaptureOptions configure a Capture.
type CaptureOptions struct {
	// Writer receives every failure; it never blocks the lanes (it batches
	// in its own goroutine and drops, counting, past its MaxPending).
	// Required.
	Writer *data.FailureWriter
	// DB settles retry states when a job that has failures ends another
	// attempt (see data.SettleFailures). Nil: retry states are only set by
	// the Retrier.
	DB *data.DB
	// Registry supplies class timeouts, to describe a timed-out attempt as
	// the lanes do ("timed out after 30s: …"). Nil: the timeout is taken
	// from the attempt's deadline.
	Registry *lanes.Registry
	// Bus receives TopicFailures when settling changed failures. Optional.
	Bus *events.Bus
	// MaxArgsBytes, MaxMessageBytes and MaxBacktraceBytes cap what is kept
	// (DefaultCaptureArgsBytes, DefaultCaptureMessageBytes,
	// DefaultCaptureBacktraceBytes).
	MaxArgsBytes      int
	MaxMessageBytes   int
	MaxBacktraceBytes int
	// SettleQueue bounds the outcomes waiting to be settled
	// (DefaultSettleQueue).
	SettleQueue int
	// Now stamps failures (default time.Now).
	Now func() time.Time
	// Logger receives settling errors (default: discard).
	Logger *slog.Logger
}

// CaptureStats are a Capture's counters since it started.
type CaptureStats struct {
	Captured        uint64 // failures handed to the writer
	Outcomes        uint64 // outcomes of jobs with failures queued for settling
	OutcomesDropped uint64 // outcomes dropped: settle queue full or closed
	Settled         uint64 // failures whose retry state settling changed
}

// Capture is the failure-capture middleware (the seed's ApplicationJob
// around hook). Around every attempt it:
//
//   - on an error, builds a data.Failure (job id, class, queue, capped
//     args, error class and message, backtrace, the account, profile,
//     pipeline and step from the job's context, attempt, time, kind,
//     retryable, fingerprint) and hands it to the FailureWriter without
//     waiting. Panics (lanes.PanicError) are runtime failures with their
//     stack; an attempt that outlived its class's timeout is recorded as
//     the lanes record it (lanes.TimeoutError, error class "Timeout"), and
//     is transient unless the handler's error says otherwise. Snoozes
//     (lanes.Snooze) and attempts interrupted by shutdown are not failures.
//   - when the job already has failures (a later attempt, or a job
//     enqueued by the Retrier), queues its outcome for settling, so that
//     earlier failures show "superseded" or "succeeded" (data.SettleFailures).
//     A settler goroutine applies outcomes in batches, after the writer has
//     committed the failures added before them. Jobs without failures cost
//     nothing here.
//
// Nothing in the middleware waits on SQLite.
type Capture struct {
	w      *data.FailureWriter
	db     *data.DB
	reg    *lanes.Registry
	bus    *events.Bus
	now    func() time.Time
	log    *slog.Logger
	caps   captureCaps
	outc   chan data.JobOutcome
	closeM sync.RWMutex
	closed bool
	// settler runs settle; its context is cancelled when Close gives up.
	settler lifecycle.Loop

	captured, outcomes, dropped, settled atomic.Uint64
	prints                               fingerprintCache

	// queued counts outcomes accepted; done those settled or given up on.
	progMu   sync.Mutex
	queued   uint64
	done     uint64
	progress chan struct{} // closed and replaced whenever done advances
}

// captureCaps are the size caps of what a failure row keeps.
type captureCaps struct{ args, message, backtrace int }

// newCaps fills the caps left 0 with their defaults.
func newCaps(args, message, backtrace int) captureCaps {
	return captureCaps{
		args:      cmp.Or(args, DefaultCaptureArgsBytes),
		message:   cmp.Or(message, DefaultCaptureMessageBytes),
		backtrace: cmp.Or(backtrace, DefaultCaptureBacktraceBytes),
	}
}

// NewCapture validates opts and starts the settler. Close it after the
// lanes have stopped and before the writer is closed.
func NewCapture(opts CaptureOptions) (*Capture, error) {
	switch {
	case opts.Writer == nil:
		return nil, errors.New("failures: CaptureOptions.Writer is required")
	case opts.MaxArgsBytes < 0 || opts.MaxMessageBytes < 0 || opts.MaxBacktraceBytes < 0:
		return nil, errors.New("failures: CaptureOptions size caps must not be negative")
	case opts.SettleQueue < 0:
		return nil, errors.New("failures: CaptureOptions.SettleQueue must not be negative")
	}
	c := &Capture{
		w: opts.Writer, db: opts.DB, reg: opts.Registry, bus: opts.Bus, now: opts.Now, log: opts.Logger,
		caps:     newCaps(opts.MaxArgsBytes, opts.MaxMessageBytes, opts.MaxBacktraceBytes),
		outc:     make(chan data.JobOutcome, cmp.Or(opts.SettleQueue, DefaultSettleQueue)),
		progress: make(chan struct{}),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	// The settler outlives any caller's context: it is the root of its own,
	// which Close cancels when its deadline passes.
	c.settler.Go(context.Background(), c.settle)
	return c, nil
}

// Middleware returns the capture middleware; put it outermost.
func (c *Capture) Middleware() lanes.Middleware {
	return func(next lanes.Handler) lanes.Handler {
		return lanes.HandlerFunc(func(ctx context.Context, j *queue.Job) error {
			start := c.now()
			err := next.Perform(ctx, j)
			retryOf := contextID(j.Context, CtxRetryOf)
			if err == nil {
				if len(j.Errors) > 0 || j.Attempt > 1 || retryOf != 0 {
					c.queueOutcome(data.JobOutcome{JobID: j.ID, Attempt: max(j.Attempt, 1), Succeeded: true, RetryOf: retryOf})
				}
				return nil
			}
			if isSnooze(err) || errors.Is(ctx.Err(), context.Canceled) {
				// Not a failure: the job runs again later, attempt unspent.
				return err
			}
			var timeout time.Duration
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				timeout = c.timeoutOf(ctx, j.Class, start)
			}
			c.w.Add(c.failure(j, err, timeout))
			c.captured.Add(1)
			if j.Attempt > 1 || retryOf != 0 {
				c.queueOutcome(data.JobOutcome{JobID: j.ID, Attempt: max(j.Attempt, 1), RetryOf: retryOf})
			}
			return err
		})
	}
}

// timeoutOf is the class's timeout, as the lanes apply it.
func (c *Capture) timeoutOf(ctx context.Context, class string, start time.Time) time.Duration {
	if c.reg != nil {
		if cls, ok := c.reg.Lookup(class); ok {
			return cmp.Or(cls.Timeout, lanes.DefaultTimeout)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		return dl.Sub(start).Round(time.Millisecond)
	}
	return lanes.DefaultTimeout
}

// failure describes one failed attempt. timeout is the class's timeout when
// the attempt outlived it, else 0.
func (c *Capture) failure(j *queue.Job, err error, timeout time.Duration) *data.Failure {
	if timeout > 0 {
		err = &lanes.TimeoutError{Timeout: timeout, Err: err}
	}
	var (
		kind      fault.Kind
		backtrace string
		pe        *lanes.PanicError
	)
	switch {
	case errors.As(err, &pe):
		kind, backtrace = fault.Runtime, pe.Stack
	default:
		kind = Classify(err)
		if timeout > 0 && kind == fault.Runtime {
			kind = fault.Transient
		}
		backtrace = errorChain(err)
	}
	return c.caps.failure(j, attempt{errClass: lanes.ErrorClass(err), message: err.Error(), backtrace: backtrace,
		kind: kind, retryable: kind.Retryable() && !isKill(err), at: c.now()}, &c.prints)
}

// fingerprintCache remembers the fingerprints of recent failures: a burst
// of failures mostly repeats one message, and normalizing it costs more
// than the rest of building the row. It holds up to fingerprintCacheSize
// entries of messages up to fingerprintCacheMessage bytes, and starts
// afresh when full.
type fingerprintCache struct {
	mu sync.Mutex
	m  map[[4]string]string
}

const (
	fingerprintCacheSize    = 4096
	fingerprintCacheMessage = 1024
)

// of returns Fingerprint(SourceJobFailure, kind, class, errClass+": "+msg).
// A nil cache computes it every time.
func (c *fingerprintCache) of(kind fault.Kind, class, errClass, msg string) string {
	if c == nil || len(msg) > fingerprintCacheMessage {
		return Fingerprint(SourceJobFailure, string(kind), class, errClass+": "+msg)
	}
	key := [4]string{string(kind), class, errClass, msg}
	c.mu.Lock()
	fp, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return fp
	}
	fp = Fingerprint(SourceJobFailure, string(kind), class, errClass+": "+msg)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= fingerprintCacheSize {
		c.m = make(map[[4]string]string, 64)
	}
	c.m[key] = fp
	c.mu.Unlock()
	return fp
}

// attempt is what a failure row says about the failed attempt itself.
type attempt struct {
	errClass, message, backtrace string
	kind                         fault.Kind
	retryable                    bool
	at                           time.Time
	number                       int // 0: the job's current attempt
}

// failure builds the row of a failed attempt of job j: the job's class,
// queue, capped args and context, and the attempt's capped error. prints
// may be nil.
func (caps captureCaps) failure(j *queue.Job, a attempt, prints *fingerprintCache) *data.Failure {
	msg := capText(a.message, caps.message)
	return &data.Failure{
		JobID:        j.ID,
		Class:        j.Class,
		Queue:        j.Queue,
		Args:         capArgs(j.Args, caps.args),
		ErrorClass:   a.errClass,
		ErrorMessage: msg,
		Backtrace:    capText(a.backtrace, caps.backtrace),
		AccountID:    contextID(j.Context, queue.CtxAccountID),
		ProfileID:    contextID(j.Context, queue.CtxProfileID),
		PipelineID:   contextID(j.Context, queue.CtxPipelineID),
		Step:         j.Context[queue.CtxStep],
		Attempt:      cmp.Or(a.number, j.Attempt),
		Kind:         a.kind,
		Retryable:    a.retryable,
		OccurredAt:   a.at,
		Fingerprint:  prints.of(a.kind, j.Class, a.errClass, msg),
	}
}

// RetryableError reports whether the queue may retry a job that failed with
// err: Classify(err).Retryable(), so authentication failures (a FailureKind
// of "authentication", HTTP 401/403, ErrAuthentication) go straight to
// dead. It is what the app gives the lanes as lanes.Options.Retryable.
// Panics are runtime failures and are retried.
func RetryableError(err error) bool {
	var pe *lanes.PanicError
	if errors.As(err, &pe) {
		return true
	}
	return Classify(err).Retryable()
}

// Stats returns the counters.
func (c *Capture) Stats() CaptureStats {
	return CaptureStats{Captured: c.captured.Load(), Outcomes: c.outcomes.Load(),
		OutcomesDropped: c.dropped.Load(), Settled: c.settled.Load()}
}

// contextID reads a positive integer id from a job's context; anything else
// is 0.
func contextID(m map[string]string, key string) int64 {
	v, ok := m[key]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// capText cuts s to at most n bytes on a character boundary, saying how
// much was cut, and replaces invalid UTF-8.
func capText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	// The note is sized for the most it could say, then says what was cut.
	cut := max(0, n-len(fmt.Sprintf(" …[%d bytes cut]", len(s))))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	note := fmt.Sprintf(" …[%d bytes cut]", len(s)-cut)
	return s[:cut] + note
}

// truncatedArgs stands for args larger than the cap.
type truncatedArgs struct {
	Truncated bool   `json:"truncated_by_conveyor"`
	Bytes     int    `json:"bytes"`
	Prefix    string `json:"prefix"`
}

// capArgs keeps args as they are when they fit in n bytes (the queue only
// holds valid JSON, and the store checks it again), and otherwise keeps a
// truncatedArgs object with their start.
func capArgs(args json.RawMessage, n int) json.RawMessage {
	if len(args) == 0 {
		return nil
	}
	if len(args) <= n {
		return args
	}
	prefix := string(args)
	if len(prefix) > n/2 {
		cut := n / 2
		for cut > 0 && !utf8.RuneStart(prefix[cut]) {
			cut--
		}
		prefix = prefix[:cut]
	}
	b, _ := json.Marshal(truncatedArgs{Truncated: true, Bytes: len(args), Prefix: strings.ToValidUTF8(prefix, "\uFFFD")})
	return b
}

// ArgsTruncated reports whether a failure's args were cut by the capture
// (so they cannot be used to enqueue the job again).
func ArgsTruncated(args json.RawMessage) bool {
	if len(args) == 0 || args[0] != '{' {
		return false
	}
	var t truncatedArgs
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	return dec.Decode(&t) == nil && t.Truncated
}

// errorChain lists the errors wrapped in err, one per line, when there is
// more than one: Go errors carry no stack, and the chain is the nearest
// thing to a backtrace.
func errorChain(err error) string {
	var lines []string
	for e := err; e != nil && len(lines) < 32; e = errors.Unwrap(e) {
		lines = append(lines, fmt.Sprintf("%T: %s", e, firstLine(e.Error(), 300)))
	}
	if len(lines) < 2 {
		return ""
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return capText(s, n)
}

// The lanes' control-flow errors are unexported types; they are recognised
// by the dynamic type of a sample.
var (
	snoozeType = reflect.TypeOf(lanes.Snooze(0))
	killType   = reflect.TypeOf(lanes.Kill(errors.New("")))
)

func isSnooze(err error) bool { return hasType(err, snoozeType) }
func isKill(err error) bool   { return hasType(err, killType) }

func hasType(err error, t reflect.Type) bool {
	_, ok := first(err, func(e error) (struct{}, bool) { return struct{}{}, reflect.TypeOf(e) == t })
	return ok
}
