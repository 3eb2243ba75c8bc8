package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ConsumerConfig describes a consumer: the worker pool of one lane as the store
// sees it.
type ConsumerConfig struct {
	// Name identifies the consumer in logs.
	Name string
	// Queues the consumer takes jobs from.
	Queues []string
	// Weights, one per queue, make the order weighted-random (Sidekiq's weighted
	// queues): each claim shares the room among queues with ready jobs in
	// proportion to their weights. Nil means strict order: a queue is served only
	// when every queue listed before it has no ready job.
	Weights []int
	// Concurrency is the number of workers that take jobs from Claims().
	Concurrency int
	// MaxPrefetch caps the jobs claimed beyond Concurrency so that fast workers
	// never wait for a commit. The prefetch adapts to how fast jobs finish; slow
	// lanes hold almost none. Default 1024.
	MaxPrefetch int
	// MaxPrefetchBytes caps the memory the claimed-but-unfinished jobs of the
	// consumer hold (their args, plus a fixed cost each), so that fast jobs
	// with large args do not fill memory; Concurrency jobs are always allowed.
	// Default 16 MiB.
	MaxPrefetchBytes int64
	// Closed starts the consumer with its gate closed (see SetOpen).
	Closed bool
}

// Defaults of ConsumerConfig.
const (
	DefaultMaxPrefetch      = 1024
	DefaultMaxPrefetchBytes = 16 << 20
	// jobOverhead is what a claimed job costs besides its args, for the
	// byte cap (the Job and its strings).
	jobOverhead = 256
)

// Consumer hands claimed jobs to one lane's workers, each as a Claim: a
// one-time token through which the worker begins the job's attempt and hands
// back its outcome (claim.go).
type Consumer struct {
	s           *Store
	name        string
	queueNames  []string
	weights     []int
	concurrency int
	maxPrefetch int
	ch          chan *Claim

	inflight      atomic.Int64 // claimed and not yet finished
	inflightBytes atomic.Int64 // their args and overhead
	maxBytes      int64
	avgRun        atomic.Int64 // moving average of an attempt's run time, ns (0: none seen yet)
	open          atomic.Bool  // the lane's gate
	draining      atomic.Bool  // no more claims, for good

	// writer-only
	prefetch int
	rnd      *rand.Rand

	mu     sync.Mutex
	active map[uint64]*activeJob // begun attempts
	closed bool
}

type activeJob struct {
	begun time.Time
	lease time.Time // zero: none
}

// Consume registers a consumer, with its gate open unless cfg.Closed.
func (s *Store) Consume(cfg ConsumerConfig) (*Consumer, error) {
	if len(cfg.Queues) == 0 {
		return nil, fmt.Errorf("queue: consumer %q: no queues", cfg.Name)
	}
	if cfg.Weights != nil && len(cfg.Weights) != len(cfg.Queues) {
		return nil, fmt.Errorf("queue: consumer %q: %d weights for %d queues", cfg.Name, len(cfg.Weights), len(cfg.Queues))
	}
	for i, w := range cfg.Weights {
		if w <= 0 {
			return nil, fmt.Errorf("queue: consumer %q: weight of queue %q must be positive (got %d)", cfg.Name, cfg.Queues[i], w)
		}
	}
	if cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("queue: consumer %q: concurrency must be positive (got %d)", cfg.Name, cfg.Concurrency)
	}
	if cfg.MaxPrefetch < 0 || cfg.MaxPrefetchBytes < 0 {
		return nil, fmt.Errorf("queue: consumer %q: MaxPrefetch and MaxPrefetchBytes must not be negative", cfg.Name)
	}
	for _, q := range cfg.Queues {
		if err := validQueueName(q); err != nil {
			return nil, fmt.Errorf("queue: consumer %q: %w", cfg.Name, err)
		}
	}
	c := &Consumer{
		s:           s,
		name:        cfg.Name,
		queueNames:  slices.Clone(cfg.Queues),
		weights:     slices.Clone(cfg.Weights),
		concurrency: cfg.Concurrency,
		maxPrefetch: cmp.Or(cfg.MaxPrefetch, DefaultMaxPrefetch),
		maxBytes:    cmp.Or(cfg.MaxPrefetchBytes, DefaultMaxPrefetchBytes),
		active:      map[uint64]*activeJob{},
		rnd:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	c.ch = make(chan *Claim, c.concurrency+c.maxPrefetch)
	c.open.Store(!cfg.Closed)
	s.pmu.Lock()
	closing := s.closing
	s.pmu.Unlock()
	if closing {
		return nil, ErrClosed
	}
	s.cmu.Lock()
	s.consumers = append(s.consumers, c)
	s.cmu.Unlock()
	s.kick()
	return c, nil
}

// Claims returns the channel claimed jobs arrive on. It is closed by Close.
func (c *Consumer) Claims() <-chan *Claim { return c.ch }

// Name returns the consumer's name.
func (c *Consumer) Name() string { return c.name }

// SetOpen opens or closes the consumer's gate. While closed, no job is claimed
// for it; its jobs wait in their queues.
func (c *Consumer) SetOpen(open bool) {
	if c.open.Swap(open) != open && open {
		c.s.kick()
	}
}

// Open reports whether the gate is open.
func (c *Consumer) Open() bool { return c.open.Load() }

// Drain stops claiming for good; claims already made still arrive.
func (c *Consumer) Drain() { c.draining.Store(true) }

func (c *Consumer) accepting() bool { return c.open.Load() && !c.draining.Load() }

// target is how many claimed-and-unfinished jobs the consumer may hold.
func (c *Consumer) target() int { return c.concurrency + c.prefetch }

// prefetchHorizon is how far ahead the prefetch feeds the workers: about two
// commits, so that they never wait for the writer.
const prefetchHorizon = 4 * time.Millisecond

// free sizes the prefetch from how long attempts take (what the workers get
// through in prefetchHorizon: fast jobs prefetch up to MaxPrefetch, jobs that
// take longer than the horizon none) and returns the room left.
func (c *Consumer) free() int {
	p := c.concurrency
	if avg := c.avgRun.Load(); avg > 0 {
		p = int(min(int64(c.maxPrefetch), int64(c.concurrency)*int64(prefetchHorizon)/avg))
	}
	c.prefetch = min(p, c.maxPrefetch)
	return c.target() - int(c.inflight.Load())
}

type shareQueue struct {
	q     *queueState
	share int
}

// order returns the consumer's queues that have ready jobs and are not paused, in
// the order to claim from, each with its share of the room.
func (c *Consumer) order(t *txn) []shareQueue {
	var out []shareQueue
	var total int
	for i, name := range c.queueNames {
		q, _ := t.queueByName(name, false)
		if q == nil || t.isPaused(q) || t.readyCount(q) <= 0 {
			continue
		}
		w := 1
		if c.weights != nil {
			w = c.weights[i]
		}
		out = append(out, shareQueue{q: q, share: w})
		total += w
	}
	if c.weights == nil {
		for i := range out {
			out[i].share = math.MaxInt
		}
		return out
	}
	// Weighted random order (Efraimidis–Spirakis keys), shares in proportion.
	keys := make(map[uint16]float64, len(out))
	for _, sq := range out {
		keys[sq.q.id] = math.Pow(c.rnd.Float64(), 1/float64(sq.share))
	}
	room := c.target()
	for i := range out {
		out[i].share = max(1, (room*out[i].share+total-1)/total)
	}
	slices.SortFunc(out, func(a, b shareQueue) int { return cmp.Compare(keys[b.q.id], keys[a.q.id]) })
	return out
}

// deliver hands jobs claimed in a committed transaction to the workers. The
// channel always has room: it holds at most target claims.
func (c *Consumer) deliver(claims []*Claim) {
	c.inflight.Add(int64(len(claims)))
	var bytes int64
	for _, cl := range claims {
		bytes += cl.cost
	}
	c.inflightBytes.Add(bytes)
	for _, cl := range claims {
		select {
		case c.ch <- cl:
		default:
			// Cannot happen (inflight never exceeds the channel's capacity); if it
			// did, the job stays running in the file and is rescued on restart.
			c.s.log.Error("consumer channel full; job left for rescue", "consumer", c.name, "job", cl.id)
		}
	}
}

// attempt returns the lease of a begun attempt of job id, if this consumer
// runs one.
func (c *Consumer) attempt(id uint64) (activeJob, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.active[id]
	if !ok {
		return activeJob{}, false
	}
	return *a, true
}

// Close stops claiming, puts the claims no worker has taken back in their
// queues as they were (no attempt spent), waits until that is committed and
// closes Claims(). Workers may take claims meanwhile: a claim a worker took is
// its own to finish, before or after Close; the rest go back.
func (c *Consumer) Close(ctx context.Context) error {
	c.Drain()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var released []*Claim
	err := c.s.adminAfter(ctx, func(t *txn) error {
		released = released[:0]
		for {
			select {
			case cl := <-c.ch:
				if cl.take() {
					released = append(released, cl)
				}
				continue
			default:
			}
			break
		}
		for _, cl := range released {
			if err := t.finish(&finish{kind: finRelease, id: cl.id}); err != nil {
				return err
			}
		}
		return nil
	}, func() {
		c.inflight.Add(-int64(len(released)))
		for _, cl := range released {
			c.inflightBytes.Add(-cl.cost)
		}
		close(c.ch)
		c.s.removeConsumer(c)
	})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// jobCost is what a claimed job counts against MaxPrefetchBytes.
func jobCost(j *Job) int64 { return int64(len(j.Args)) + jobOverhead }

func (s *Store) removeConsumer(c *Consumer) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.consumers = slices.DeleteFunc(s.consumers, func(x *Consumer) bool { return x == c })
}
