package cron

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// Defaults of Options.
const (
	// DefaultLateAfter is how far behind the scheduler may fall before it
	// counts as unhealthy (readiness fails and a scheduler issue opens):
	// half of Grace, so that a stalled scheduler is reported while its
	// ticks can still fire on time.
	DefaultLateAfter = Grace / 2
	// DefaultRecheck is the longest the scheduler sleeps: it wakes at least
	// this often to read the wall clock again (a clock set forward or a
	// resumed machine does not bring timers forward) and to show it is
	// alive.
	DefaultRecheck = time.Minute
	// DefaultFireRetention is how long fire records and missed ranges are
	// kept in SQLite (each entry's newest are always kept).
	DefaultFireRetention = 14 * 24 * time.Hour
)

// Keys the scheduler sets in the Context of the jobs it enqueues.
const (
	CtxEntry   = "cron_entry"   // the entry's name
	CtxTick    = "cron_tick"    // the tick's scheduled instant, RFC 3339 UTC; for an enqueue-now, the entry's latest tick
	CtxNext    = "cron_next"    // the entry's next tick after it, RFC 3339 UTC (absent when it has none)
	CtxTrigger = "cron_trigger" // "schedule" or "manual"
)

// Trigger values of CtxTrigger and View.LastTrigger.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

const (
	keepMisses   = 5                // missed ranges a View shows
	maxRetryWait = 30 * time.Second // longest wait between enqueue retries
	pruneEvery   = time.Hour
	maxUnsaved   = 10_000 // runs kept in memory while SQLite refuses them
)

// ErrUnknownEntry is returned by Entry, EnqueueNow and SetEnabled when no
// entry of the schedule has the name.
var ErrUnknownEntry = errors.New("cron: no schedule entry has this name")

// ErrUnavailable is returned (wrapped, with the reason) by EnqueueNow for
// an entry that cannot run here: its class is not registered, no lane
// serves its queue, or its args are refused.
var ErrUnavailable = errors.New("cron: entry cannot run in this Conveyor")

// ErrNotRunning is returned by EnqueueNow and SetEnabled before Start and
// after Stop.
var ErrNotRunning = errors.New("cron: scheduler is not running")

// Options configures a Scheduler.
type Options struct {
	// Entries is the schedule (Parse, ParseFile or Default). Names must be
	// unique.
	Entries []Entry
	// Store receives the ticks' jobs. Required.
	Store *queue.Store
	// DB keeps each entry's history, overrides and fires. Required.
	DB *data.DB
	// Registry and Topology say which classes and queues can run: an entry
	// whose class is not registered, or whose queue no lane serves, never
	// enqueues and shows why. They are read at Start. Registry is required.
	Registry *lanes.Registry
	Topology lanes.Topology
	// Bus receives events.TopicSchedule when something changes (and,
	// through the tracker, events.TopicIssues). Optional.
	Bus *events.Bus
	// Tracker raises and clears the scheduler's liveness issue. Nil: a
	// tracker on DB and Bus.
	Tracker *failures.Tracker
	// Clock is the time source (default SystemClock).
	Clock Clock
	// Logger receives fires at debug level, missed ticks, late ticks and
	// errors (default: discarded).
	Logger *slog.Logger
	// LateAfter is the liveness threshold (default DefaultLateAfter).
	LateAfter time.Duration
	// Recheck is the longest the loop sleeps (default DefaultRecheck).
	Recheck time.Duration
	// FireRetention is how long fire and miss records are kept (default
	// DefaultFireRetention).
	FireRetention time.Duration
	// AfterEnqueue is a test hook: when set, it runs right after a pass's
	// enqueue is durable and before the fires are recorded in SQLite. The
	// end-to-end crash test SIGKILLs the process there. Nil in production.
	AfterEnqueue func()
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.LateAfter = cmp.Or(o.LateAfter, DefaultLateAfter)
	o.Recheck = cmp.Or(o.Recheck, DefaultRecheck)
	o.FireRetention = cmp.Or(o.FireRetention, DefaultFireRetention)
	return o
}

func (o Options) validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("cron: Options.%s %s", field, fmt.Sprintf(format, a...))
	}
	switch {
	case o.Store == nil:
		return bad("Store", "is required")
	case o.DB == nil:
		return bad("DB", "is required")
	case o.Registry == nil:
		return bad("Registry", "is required")
	case o.LateAfter < 0:
		return bad("LateAfter", "must not be negative")
	case o.Recheck < 0:
		return bad("Recheck", "must not be negative")
	case o.FireRetention < 0:
		return bad("FireRetention", "must not be negative")
	}
	seen := map[string]bool{}
	for i, e := range o.Entries {
		if e.Name == "" {
			return bad(fmt.Sprintf("Entries[%d].Name", i), "is required")
		}
		if seen[e.Name] {
			return bad(fmt.Sprintf("Entries[%d].Name", i), "%q is used twice", e.Name)
		}
		seen[e.Name] = true
		if e.Class == "" {
			return bad(fmt.Sprintf("Entries[%d].Class", i), "is required (entry %q)", e.Name)
		}
		if _, err := e.schedule(); err != nil {
			return bad(fmt.Sprintf("Entries[%d]", i), "%v", err)
		}
	}
	return nil
}

// Scheduler runs a schedule: it enqueues each tick of each enabled entry
// once, keeps every entry's history in SQLite, and reports its own health.
// See the package documentation for the promise. It is safe for concurrent
// use.
type Scheduler struct {
	opts  Options
	clock Clock
	log   *slog.Logger
	store *queue.Store
	db    *data.DB
	// issues raises and clears the liveness issue (Options.Tracker).
	issues *failures.Tracker

	toggle sync.Mutex // serialises SetEnabled

	mu       sync.Mutex
	slots    []*slot // in schedule order
	byName   map[string]*slot
	due      dueHeap // active entries by next tick
	state    runState
	running  bool   // the loop goroutine is alive
	stopWhy  string // why the loop ended on its own
	started  time.Time
	inPass   bool
	passFrom time.Time // the clock when the current pass began
	passAt   time.Time // the clock when the last finished pass began
	passes   uint64    // finished passes
	wakeAt   time.Time // when the loop's sleep ends
	replan   bool      // the heap changed since the loop planned its sleep
	storeErr string    // fires enqueued but not recorded in SQLite
	errSince time.Time
	health   Health
	obs      observation // the watchdog's
	reported HealthState // the verdict last reported (issue opened or resolved)
	judged   uint64      // the passes the watchdog has judged
	stats    stats
	changed  chan struct{} // closed and replaced on every change

	kick   chan struct{} // wakes the loop to plan again
	wdKick chan struct{} // wakes the watchdog
	// passes runs loop and watchdog runs watch; Stop cancels both with
	// lifecycle.ErrStopped.
	passLoop lifecycle.Loop
	watchdog lifecycle.Loop
	unsaved  []data.CronRun // loop goroutine only
	prunedAt time.Time      // loop goroutine only

	// Test hooks (nil in production).
	beforePass func()
	onFire     func(entry string, tick, firedAt time.Time)
}

type runState int

const (
	stateNew runState = iota
	stateStarting
	stateRunning
	stateStopped
)

type stats struct {
	fires, misses, late uint64
	lastLate, maxLate   time.Duration
}

// slot is one entry and what the scheduler knows about it.
type slot struct {
	e           Entry
	queue       string // the queue its jobs go to
	maxAttempts int
	unavailable string // why it cannot run here; "" when it can
	ended       string // why it has no more ticks; "" while it has
	override    *bool  // the operator's enabled, if any
	h           History
	next        time.Time // the tick the loop waits for; zero when not scheduled
	idx         int       // index in the heap; -1 when not in it
	busy        bool      // a pass is enqueueing its tick
	epoch       uint64    // bumped by SetEnabled
	lastFiredAt time.Time
	lastJobID   uint64
	manualJobID uint64
	manualAt    time.Time
	misses      []Missed // newest first
	err         string   // the last enqueue error, while its tick is unfired
	errSince    time.Time
	retries     int
}

func (sl *slot) enabled() bool {
	if sl.override != nil {
		return *sl.override
	}
	return sl.e.Enabled
}

func (sl *slot) active() bool { return sl.enabled() && sl.unavailable == "" && sl.ended == "" }

// decide is Decide for an active entry: the operator's switch, not the
// file's status, says it is enabled.
func (sl *slot) decide(now time.Time) (Decision, error) {
	e := sl.e
	e.Enabled = true
	return Decide(e, sl.h, now)
}

// NewScheduler validates opts and returns a scheduler that has not started.
func NewScheduler(opts Options) (*Scheduler, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	issues := opts.Tracker
	if issues == nil {
		var err error
		// Never closed: its context serves only RecordFailures, which the
		// scheduler does not call.
		if issues, err = failures.NewTracker(failures.TrackerOptions{DB: opts.DB, Bus: opts.Bus, Logger: opts.Logger}); err != nil {
			return nil, err
		}
	}
	s := &Scheduler{
		opts: opts, clock: opts.Clock, log: opts.Logger, store: opts.Store, db: opts.DB, issues: issues,
		byName:  make(map[string]*slot, len(opts.Entries)),
		changed: make(chan struct{}),
		kick:    make(chan struct{}, 1),
		wdKick:  make(chan struct{}, 1),
		health:  Health{State: HealthStarting, Detail: "the scheduler has not started"},
	}
	for _, e := range opts.Entries {
		sl := &slot{e: e, idx: -1}
		s.slots = append(s.slots, sl)
		s.byName[e.Name] = sl
	}
	return s, nil
}

// uniqueFor is how long a tick's unique key is held: longer than any tick
// of the entry can still fire late, so that a crash after its job finished
// but before the fire was recorded cannot run the tick twice. The queue
// holds the key until its wall clock passes the enqueue time plus this, and
// Decide offers a tick only while the wall clock is within the window after
// it; as the job was enqueued at or after its tick, the key is held
// whenever the tick can be offered again, even after the clock was set
// back.
func uniqueFor(e Entry) time.Duration {
	window := Grace
	if e.Policy == RunOnce {
		window = max(Grace, cmp.Or(e.CatchUpWindow, DefaultCatchUpWindow))
	}
	return window + time.Minute
}

// lastTickEver is the latest time the queue stores, for the longest args
// ArgsAt can make.
var lastTickEver = time.Date(2199, 12, 31, 23, 59, 59, 0, time.UTC)

// resolve finds where an entry's jobs go and whether they can run here:
// the class must be registered, and the registry's NewJob (the one place
// that turns a class, args and options into a job) must accept the entry's
// job: a lane serves its queue and its args are the class's.
func (s *Scheduler) resolve(sl *slot) {
	e := sl.e
	cls, ok := s.opts.Registry.Lookup(e.Class)
	if !ok {
		sl.queue = e.Queue
		sl.unavailable = fmt.Sprintf("class %s is not registered in this Conveyor: no handler would run it", e.Class)
		return
	}
	sl.queue = cmp.Or(e.Queue, cls.Queue)
	if len(s.opts.Topology.Lanes) > 0 {
		if _, served := s.opts.Topology.LaneOf(sl.queue); !served {
			sl.unavailable = fmt.Sprintf("queue %s is not served by any lane: no worker would run its jobs", sl.queue)
			return
		}
	}
	args, err := e.ArgsAt(lastTickEver)
	if err != nil {
		sl.unavailable = err.Error()
		return
	}
	nj, err := s.opts.Registry.NewJob(s.opts.Topology, s.request(e, args))
	if err != nil {
		sl.unavailable = refused(err)
		return
	}
	sl.maxAttempts = nj.MaxAttempts
	if limit := s.store.MaxArgsBytes(); len(args) > limit {
		sl.unavailable = fmt.Sprintf("args of %d bytes are over the queue's limit of %d", len(args), limit)
	}
}

// request is the job request of one of e's runs: its class, queue, args
// and, from sidekiq-cron's retry, max attempts (0: the class's).
func (s *Scheduler) request(e Entry, args json.RawMessage) lanes.JobRequest {
	req := lanes.JobRequest{Class: e.Class, Queue: e.Queue, Args: args}
	if e.Retry != nil {
		req.MaxAttempts = min(*e.Retry+1, queue.MaxAttemptsLimit)
	}
	return req
}

// refused says why the registry refused an entry's job.
func refused(err error) string {
	var ve *queue.ValidationError
	if errors.As(err, &ve) {
		return fmt.Sprintf("its job is refused: %s: %s", ve.Field, ve.Reason)
	}
	return "its job is refused: " + err.Error()
}

// Start loads every entry's state, takes the entries into the scheduler's
// care (an entry seen for the first time, re-enabled, or whose cron line
// changed gets a new Since: nothing from before it is caught up), and starts
// the loop and the liveness watchdog. ctx bounds the loading and the life of
// both goroutines: they end when ctx ends or Stop is called.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return errors.New("cron: Start called twice")
	}
	s.state = stateStarting
	for _, sl := range s.slots {
		s.resolve(sl)
	}
	s.mu.Unlock()
	started := false
	defer func() {
		if !started {
			s.mu.Lock()
			s.state = stateNew
			s.mu.Unlock()
		}
	}()

	states, err := s.db.CronStates(ctx)
	if err != nil {
		return err
	}
	misses, err := s.db.CronMisses(ctx, keepMisses)
	if err != nil {
		return err
	}
	stored := make(map[string]data.CronState, len(states))
	for _, st := range states {
		stored[st.Name] = st
	}
	now := s.clock.Now()

	s.mu.Lock()
	syncs := make([]data.CronSync, 0, len(s.slots))
	for _, sl := range s.slots {
		st, seen := stored[sl.e.Name]
		sl.override = st.Enabled
		sl.h = History{Since: st.Since, Last: st.LastTick, Missed: st.Missed}
		sl.lastFiredAt, sl.lastJobID = st.LastFiredAt, st.LastJobID
		sl.manualJobID, sl.manualAt = st.ManualJobID, st.ManualAt
		active := sl.active()
		sync := data.CronSync{Name: sl.e.Name, Line: sl.e.Line, Active: active}
		if !seen || st.Since.IsZero() || st.Line != sl.e.Line || (active && !st.Active) {
			sl.h.Since = now
			sync.Since = now
		}
		syncs = append(syncs, sync)
	}
	for _, m := range misses {
		if sl := s.byName[m.Entry]; sl != nil {
			sl.misses = append(sl.misses, Missed{First: m.First, Last: m.Last, ReportedAt: m.ReportedAt})
		}
	}
	s.mu.Unlock()

	if err := s.db.SyncCron(ctx, syncs); err != nil {
		return err
	}

	started = true
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sl := range s.slots {
		switch {
		case sl.unavailable != "" && sl.enabled():
			s.log.Warn("schedule entry cannot run here; it will not enqueue", "entry", sl.e.Name, "reason", sl.unavailable)
		case sl.active():
			s.plan(sl, now)
		}
	}
	s.state, s.running, s.started = stateRunning, true, now
	s.wakeAt = now
	s.health = Health{State: HealthStarting, Detail: "the scheduler is starting", Since: now}
	s.passLoop.Go(ctx, s.loop)
	s.watchdog.Go(ctx, s.watch)
	s.log.Info("schedule started", "entries", len(s.slots), "active", len(s.due))
	return nil
}

// Stop ends the loop and the watchdog, after the pass in progress, and
// waits for them until ctx ends. Stopping a scheduler that is not running
// does nothing.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateRunning {
		s.mu.Unlock()
		return nil
	}
	s.state = stateStopped
	s.passLoop.Cancel()
	s.watchdog.Cancel()
	s.mu.Unlock()
	if err := errors.Join(s.passLoop.Stop(ctx), s.watchdog.Stop(ctx)); err != nil {
		return fmt.Errorf("cron: stop: %w", ctx.Err())
	}
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// plan decides an active entry's next wake-up at now and puts it in the
// heap: at now when a tick is due or missed (the loop's next pass handles
// it), else at the tick Decide waits for. Called with s.mu held.
func (s *Scheduler) plan(sl *slot, now time.Time) {
	if sl.idx >= 0 {
		heap.Remove(&s.due, sl.idx)
	}
	sl.next = time.Time{}
	d, err := sl.decide(now)
	if err != nil || d.Next.IsZero() {
		s.retire(sl, err)
		return
	}
	sl.next = d.Next
	if !d.Fire.IsZero() || !d.MissedLast.IsZero() {
		sl.next = now
	}
	heap.Push(&s.due, sl)
	s.replan = true
}

// retire takes an entry whose spec has no more ticks out of the schedule.
// Called with s.mu held.
func (s *Scheduler) retire(sl *slot, err error) {
	if err == nil {
		err = errors.New("no next tick")
	}
	sl.ended = err.Error()
	sl.next = time.Time{}
	s.log.Error("schedule entry has no more ticks; it will not enqueue again", "entry", sl.e.Name, "err", err)
}

// notifyLocked wakes everyone waiting for a change. Called with s.mu held.
func (s *Scheduler) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Scheduler) publish(topics ...events.Topic) {
	if s.opts.Bus == nil {
		return
	}
	for _, t := range topics {
		s.opts.Bus.Publish(t)
	}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Sync waits until the scheduler has handled everything due at or before t
// on its clock: the loop finished a pass that began at t or later, or it is
// asleep until after t with nothing left to plan; and the watchdog has
// judged the loop's latest pass. Tests that move a FakeClock call it
// instead of sleeping. It returns at once when the scheduler is not
// running.
func (s *Scheduler) Sync(ctx context.Context, t time.Time) error {
	for {
		s.mu.Lock()
		idle := !s.running || s.state != stateRunning ||
			(!s.inPass && !s.replan && s.judged == s.passes && (!s.passAt.Before(t) || s.wakeAt.After(t)))
		ch := s.changed
		s.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// dueHeap orders active entries by their next wake-up.
type dueHeap []*slot

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if h[i].next.Equal(h[j].next) {
		return h[i].e.Name < h[j].e.Name
	}
	return h[i].next.Before(h[j].next)
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *dueHeap) Push(x any) {
	sl := x.(*slot)
	sl.idx = len(*h)
	*h = append(*h, sl)
}
func (h *dueHeap) Pop() any {
	old := *h
	sl := old[len(old)-1]
	old[len(old)-1] = nil
	sl.idx = -1
	*h = old[:len(old)-1]
	return sl
}
