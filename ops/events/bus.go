package events

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"conveyor/internal/lifecycle"
)

// Topic names a kind of change the dashboard listens for. The UI streams
// topics as server-sent event names and refetches what changed.
type Topic string

// The topics. Any other Topic value works too (on a slower, locked path).
const (
	TopicJobs     Topic = "jobs_changed"
	TopicFailures Topic = "job_failures_changed"
	TopicIssues   Topic = "issues_changed"
	TopicMetrics  Topic = "dashboard_metrics_changed"
	TopicProfiles Topic = "profiles_table_changed"
	TopicSchedule Topic = "schedule_changed"
)

// builtinTopics is the order topics appear in a Notification; other topics
// follow, sorted by name.
var builtinTopics = [...]Topic{TopicJobs, TopicFailures, TopicIssues, TopicMetrics, TopicProfiles, TopicSchedule}

func builtinIndex(t Topic) int {
	switch t {
	case TopicJobs:
		return 0
	case TopicFailures:
		return 1
	case TopicIssues:
		return 2
	case TopicMetrics:
		return 3
	case TopicProfiles:
		return 4
	case TopicSchedule:
		return 5
	}
	return -1
}

// DefaultInterval is the coalescing window when
// Options.Interval is zero.
const DefaultInterval = 250 * time.Millisecond

// Options configures a [Bus]. The zero value is ready to
// use.
type Options struct {
	// Interval is the coalescing window: a subscriber receives at most one
	// notification per Interval. Default DefaultInterval.
	Interval time.Duration
	// Manual turns the background flusher off: notifications go out only
	// when Flush is called. For tests, and for callers that drive their own
	// timing.
	Manual bool
	// After returns a channel that receives once d has passed; the flusher
	// waits on it between flushes. Default time.After. Tests pass their own
	// to decide when a window ends.
	After func(d time.Duration) <-chan time.Time
	// Now stamps notifications. Default time.Now.
	Now func() time.Time
	// Logger receives debug records of flushes. Default: discard.
	Logger *slog.Logger
}

// Notification tells a subscriber which topics changed since its previous
// notification.
type Notification struct {
	// Topics that changed: the built-in topics in declaration order, then
	// any others sorted by name. Never empty.
	Topics []Topic
	// Count is the number of Publish calls this notification stands for.
	Count int
	// At is when it was flushed (the latest flush, when merged for a slow
	// subscriber).
	At time.Time
}

// Has reports whether t is among n's topics.
func (n Notification) Has(t Topic) bool { return slices.Contains(n.Topics, t) }

// paddedCounter keeps each topic's counter on its own cache line, so
// publishers of different topics do not contend.
type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

// Bus coalesces change notices from many publishers into at most one
// notification per interval per subscriber.
//
// Publishing a built-in topic costs one atomic add and one atomic load, and
// never blocks or allocates; any other topic takes a mutex for a map update
// (see Publish). When nothing has been published for a
// whole interval the flusher sleeps until the next Publish, which it
// delivers at once (so a lone change shows up immediately); further changes
// in the following interval are merged into one notification at its end.
//
// Each subscriber has a one-slot mailbox: when it has not taken its previous
// notification yet, the new one is merged into it (topic sets united, counts
// added), so a slow subscriber never receives a backlog and never delays
// publishers or other subscribers.
type Bus struct {
	counts [len(builtinTopics)]paddedCounter

	interval time.Duration
	after    func(time.Duration) <-chan time.Time
	now      func() time.Time
	logger   *slog.Logger

	// sleeping is true while the flusher waits for a publish; the publisher
	// that flips it to false sends the wake-up.
	sleeping atomic.Bool
	wake     chan struct{}

	flushMu sync.Mutex // one flush at a time

	mu     sync.Mutex
	others map[Topic]uint64 // counts of non-built-in topics
	subs   map[*subscriber]struct{}
	closed bool

	flusher lifecycle.Loop // runs run; never started in Manual mode
}

type subscriber struct {
	mu     sync.Mutex
	ch     chan Notification
	closed bool
}

// NewBus returns a running Bus. Call Close when done.
func NewBus(opts Options) *Bus {
	b := &Bus{
		interval: cmp.Or(opts.Interval, DefaultInterval),
		after:    opts.After,
		now:      opts.Now,
		logger:   opts.Logger,
		wake:     make(chan struct{}, 1),
		others:   map[Topic]uint64{},
		subs:     map[*subscriber]struct{}{},
	}
	if b.after == nil {
		b.after = time.After
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	if !opts.Manual {
		// The flusher outlives any caller's context: Close stops it.
		b.flusher.Go(context.Background(), b.run)
	}
	return b
}

// Publish records that topic changed. It is safe for concurrent use. For
// the built-in topics it is lock-free and does not allocate; any other topic
// is counted in a map under the bus's mutex, so it may wait for a concurrent
// Flush or Subscribe and allocates the first time a topic is seen in a
// window. Publishing after Close is a no-op as far as subscribers are
// concerned.
func (b *Bus) Publish(topic Topic) {
	if i := builtinIndex(topic); i >= 0 {
		b.counts[i].n.Add(1)
	} else {
		if topic == "" {
			return
		}
		b.mu.Lock()
		b.others[topic]++
		b.mu.Unlock()
	}
	if b.sleeping.Load() && b.sleeping.CompareAndSwap(true, false) {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Subscribe returns a channel of notifications and a function that ends the
// subscription and closes the channel. The channel holds at most one
// pending notification (see Bus). After Close the channel is closed.
func (b *Bus) Subscribe() (<-chan Notification, func()) {
	s := &subscriber{ch: make(chan Notification, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.ch, sync.OnceFunc(func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
		s.close()
	})
}

// Flush delivers what has been published since the previous flush to every
// subscriber now, and reports whether there was anything. The background
// flusher calls it once per interval; call it yourself in Manual mode.
func (b *Bus) Flush() bool {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()

	var n Notification
	for i := range b.counts {
		if c := b.counts[i].n.Swap(0); c > 0 {
			n.Topics = append(n.Topics, builtinTopics[i])
			n.Count += int(c)
		}
	}
	b.mu.Lock()
	if len(b.others) > 0 {
		start := len(n.Topics)
		for t, c := range b.others {
			n.Topics = append(n.Topics, t)
			n.Count += int(c)
		}
		clear(b.others)
		slices.Sort(n.Topics[start:])
	}
	subs := make([]*subscriber, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	if len(n.Topics) == 0 {
		return false
	}
	n.At = b.now()
	for _, s := range subs {
		s.deliver(n)
	}
	b.logger.Debug("broadcast", "topics", n.Topics, "publishes", n.Count, "subscribers", len(subs))
	return true
}

// Close stops the flusher, delivers anything still pending, and closes every
// subscriber's channel. It is safe to call more than once.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.flusher.Stop(context.Background())
		return
	}
	b.closed = true
	b.mu.Unlock()
	b.flusher.Stop(context.Background()) // waits for the flusher to return
	b.Flush()
	b.mu.Lock()
	subs := b.subs
	b.subs = map[*subscriber]struct{}{}
	b.mu.Unlock()
	for s := range subs {
		s.close()
	}
}

// run is the flusher: it sleeps until a publish, delivers it at once, then
// keeps flushing once per interval until an interval passes with nothing
// published.
func (b *Bus) run(ctx context.Context) {
	for {
		b.sleeping.Store(true)
		if b.pending() {
			// Published between the last flush and going to sleep. A
			// publisher may also have sent a wake-up; it only costs one
			// empty flush later.
			b.sleeping.Store(false)
		} else {
			select {
			case <-b.wake:
			case <-ctx.Done():
				return
			}
		}
		b.Flush()
		for {
			select {
			case <-b.after(b.interval):
			case <-ctx.Done():
				return
			}
			if !b.Flush() {
				break
			}
		}
	}
}

func (b *Bus) pending() bool {
	for i := range b.counts {
		if b.counts[i].n.Load() > 0 {
			return true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.others) > 0
}

// deliver puts n in the subscriber's mailbox, merging it with a notification
// the subscriber has not taken yet. Only Flush (serialized by flushMu) sends,
// so after emptying the mailbox the send cannot block.
func (s *subscriber) deliver(n Notification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	n.Topics = slices.Clone(n.Topics)
	select {
	case s.ch <- n:
		return
	default:
	}
	select {
	case old := <-s.ch:
		n = merge(old, n)
	default: // taken in the meantime
	}
	s.ch <- n
}

func (s *subscriber) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// merge unites two notifications' topics (keeping the Notification order)
// and adds their counts.
func merge(old, n Notification) Notification {
	topics := append(old.Topics, n.Topics...)
	slices.SortFunc(topics, compareTopics)
	return Notification{
		Topics: slices.Compact(topics),
		Count:  old.Count + n.Count,
		At:     n.At,
	}
}

func compareTopics(a, b Topic) int {
	ia, ib := builtinIndex(a), builtinIndex(b)
	switch {
	case ia >= 0 && ib >= 0:
		return cmp.Compare(ia, ib)
	case ia >= 0:
		return -1
	case ib >= 0:
		return 1
	}
	return cmp.Compare(a, b)
}
