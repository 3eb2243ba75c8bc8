package queue

import (
	"slices"
	"sync"
)

// Change summarises what committed transactions did. Subscribers receive one
// Change per commit, or several merged into one when they fall behind: a
// subscriber never slows the writer.
type Change struct {
	Enqueued int // new jobs (duplicates not counted)
	Promoted int // scheduled or retrying jobs that became ready
	Started  int // jobs claimed by lanes
	Done     int
	Retried  int // failed attempts that will be retried
	Dead     int
	Snoozed  int
	Removed  int      // jobs deleted (clear, discard, retention)
	Queues   []string // queues touched, sorted
	Ops      []string // operator actions, e.g. "pause default" (at most 64 kept)
}

func (c *Change) touch(queue string) {
	if i, found := slices.BinarySearch(c.Queues, queue); !found {
		c.Queues = slices.Insert(c.Queues, i, queue)
	}
}

func (c *Change) op(s string) {
	if len(c.Ops) < defaultSubscriberOpsLimit {
		c.Ops = append(c.Ops, s)
	}
}

func (c *Change) empty() bool {
	return c.Enqueued == 0 && c.Promoted == 0 && c.Started == 0 && c.Done == 0 && c.Retried == 0 &&
		c.Dead == 0 && c.Snoozed == 0 && c.Removed == 0 && len(c.Queues) == 0 && len(c.Ops) == 0
}

func (c *Change) merge(o *Change) {
	c.Enqueued += o.Enqueued
	c.Promoted += o.Promoted
	c.Started += o.Started
	c.Done += o.Done
	c.Retried += o.Retried
	c.Dead += o.Dead
	c.Snoozed += o.Snoozed
	c.Removed += o.Removed
	for _, q := range o.Queues {
		c.touch(q)
	}
	for _, op := range o.Ops {
		c.op(op)
	}
}

// Subscription receives Changes until Close.
type Subscription struct {
	C <-chan Change

	subs    *subscribers
	out     chan Change
	mu      sync.Mutex
	pending Change
	has     bool
	signal  chan struct{}
	quit    chan struct{}
	once    sync.Once
}

type subscribers struct {
	mu   sync.Mutex
	list []*Subscription
}

// Subscribe returns a subscription to the store's changes. Close it when done.
func (s *Store) Subscribe() *Subscription {
	sub := &Subscription{
		subs:   &s.subs,
		out:    make(chan Change),
		signal: make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
	sub.C = sub.out
	s.subs.mu.Lock()
	s.subs.list = append(s.subs.list, sub)
	s.subs.mu.Unlock()
	go sub.forward()
	return sub
}

// forward hands merged changes to the reader, so that publish never blocks.
func (sub *Subscription) forward() {
	defer close(sub.out)
	for {
		select {
		case <-sub.quit:
			return
		case <-sub.signal:
		}
		sub.mu.Lock()
		ch, has := sub.pending, sub.has
		sub.pending, sub.has = Change{}, false
		sub.mu.Unlock()
		if !has {
			continue
		}
		select {
		case sub.out <- ch:
		case <-sub.quit:
			return
		}
	}
}

// Close ends the subscription; C is closed.
func (sub *Subscription) Close() {
	sub.once.Do(func() {
		sub.subs.mu.Lock()
		sub.subs.list = slices.DeleteFunc(sub.subs.list, func(x *Subscription) bool { return x == sub })
		sub.subs.mu.Unlock()
		close(sub.quit)
	})
}

func (ss *subscribers) publish(c *Change) {
	if c.empty() {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, sub := range ss.list {
		sub.mu.Lock()
		sub.pending.merge(c)
		sub.has = true
		sub.mu.Unlock()
		select {
		case sub.signal <- struct{}{}:
		default:
		}
	}
}

func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	list := slices.Clone(ss.list)
	ss.mu.Unlock()
	for _, sub := range list {
		sub.Close()
	}
}
