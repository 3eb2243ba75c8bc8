package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"conveyor/cron"
	"conveyor/internal/lifecycle"
)

// DefaultKickoffSpread is how long after start the last fan-out of a
// Kickoff runs.
const DefaultKickoffSpread = 30 * time.Second

// KickoffOptions configure a Kickoff.
type KickoffOptions struct {
	// Scheduler holds the schedule's entries and runs them now. Required.
	Scheduler *cron.Scheduler
	// Spread is how long after start the last fan-out runs (default
	// DefaultKickoffSpread); the others are spread evenly before it, the
	// first at start.
	Spread time.Duration
	// Clock is the time source (default cron.SystemClock).
	Clock cron.Clock
	// Logger (default: discarded).
	Logger *slog.Logger
	// Ran, when set, is called after each entry's enqueue with the job's id
	// or the error.
	Ran func(entry string, job uint64, err error)
}

// KickoffStep is one entry of a Kickoff's plan: the schedule entry, its
// orchestrator class, and how long after start it runs.
type KickoffStep struct {
	Entry string
	Class string
	After time.Duration
}

// Kickoff is the demo's first minute: soon after start it runs each fan-out
// orchestrator's schedule entry once, continuous processing first, the
// others spread over the next Spread. Each run is an enqueue-now of the
// entry (cron's EnqueueNow, the path of POST /api/v1/cron/{entry}/enqueue),
// so it counts as the entry's latest tick: the fan-out's unique keys, and
// the entry's own bookkeeping, are those of any run by hand. Without it
// the hourly and daily fan-outs would first run at their next tick.
// Entries the operator disabled, or that cannot run here, are left out.
type Kickoff struct {
	sched  *cron.Scheduler
	spread time.Duration
	clock  cron.Clock
	log    *slog.Logger
	ran    func(string, uint64, error)
	loop   lifecycle.Loop
}

// NewKickoff checks opts and returns the kickoff; Start runs it.
func NewKickoff(opts KickoffOptions) (*Kickoff, error) {
	if opts.Scheduler == nil {
		return nil, errors.New("jobs: KickoffOptions.Scheduler is required")
	}
	if opts.Spread < 0 {
		return nil, errors.New("jobs: KickoffOptions.Spread must not be negative")
	}
	k := &Kickoff{sched: opts.Scheduler, spread: opts.Spread, clock: opts.Clock, log: opts.Logger, ran: opts.Ran}
	if k.spread == 0 {
		k.spread = DefaultKickoffSpread
	}
	if k.clock == nil {
		k.clock = cron.SystemClock
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	return k, nil
}

// Plan is what the kickoff runs: the first active entry of each
// orchestrator class, in the catalog's order, the first at once and the
// last Spread after start.
func (k *Kickoff) Plan() []KickoffStep {
	views := k.sched.Entries()
	var out []KickoffStep
	for _, o := range Orchestrators() {
		for _, v := range views {
			if v.Class == o.Class && v.Status == cron.StatusActive {
				out = append(out, KickoffStep{Entry: v.Name, Class: v.Class})
				break
			}
		}
	}
	for i := range out {
		if len(out) > 1 {
			out[i].After = k.spread * time.Duration(i) / time.Duration(len(out)-1)
		}
	}
	return out
}

// Start plans the runs (the scheduler has started: it knows which entries
// are active) and runs them in the background until done or Stop.
func (k *Kickoff) Start(ctx context.Context) error {
	plan := k.Plan()
	if len(plan) == 0 {
		k.log.Warn("kickoff: the schedule has no active fan-out entry to run")
		return nil
	}
	start := k.clock.Now()
	k.loop.Go(context.WithoutCancel(ctx), func(ctx context.Context) {
		for _, st := range plan {
			t := k.clock.Timer(start.Add(st.After))
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
				return
			}
			id, err := k.sched.EnqueueNow(ctx, st.Entry)
			if err != nil {
				k.log.Warn("kickoff: could not run the entry now", "entry", st.Entry, "err", err)
			} else {
				k.log.Info("kickoff: fan-out enqueued", "entry", st.Entry, "class", st.Class, "job", id)
			}
			if k.ran != nil {
				k.ran(st.Entry, id, err)
			}
		}
	})
	return nil
}

// Stop ends the runs not made yet.
func (k *Kickoff) Stop(ctx context.Context) error { return k.loop.Stop(ctx) }
