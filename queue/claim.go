package queue

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Claim is one job a consumer hands to a worker: a one-time token for the
// job's attempt. The worker calls Begin before it runs the job's handler, then
// Finish exactly once with the attempt's outcome; a claim it will not run, it
// finishes with Release() without Begin. Finish is the only way a claimed job
// leaves the running state, and a claim finishes once: a second Finish, or a
// Begin after Finish, returns ErrFinished and changes nothing.
//
// The embedded Job is the worker's own copy: a handler may change it, and
// nothing it changes reaches the store. The outcome applies to the job as it
// was claimed.
type Claim struct {
	*Job

	c       *Consumer
	id      uint64
	cost    int64 // what it counts against MaxPrefetchBytes
	suspect bool  // struck by a crash: its attempt runs alone (journal.go)

	mu      sync.Mutex
	state   claimState
	started int64 // when Begin ran, unix ns
	slot    int32 // its running journal slot while begun (-1: none)
}

type claimState uint8

const (
	claimHeld claimState = iota
	claimBeginning
	claimBegun
	claimEnded
)

// Errors of the claim protocol.
var (
	// ErrFinished is returned by Begin or Finish on a claim whose outcome was
	// already handed over (or that Consumer.Close took back); the call has no
	// effect.
	ErrFinished = errors.New("queue: the claim's outcome was already handed over")
	// ErrNotBegun is returned by Finish with an attempt's outcome (anything but
	// Release) on a claim that was not begun; the claim stays open.
	ErrNotBegun = errors.New("queue: an attempt's outcome needs the attempt's Begin")
	// ErrBeginning is returned by Finish while Begin still waits; the claim
	// stays open.
	ErrBeginning = errors.New("queue: the claim's Begin has not returned")
)

// Outcome is how an attempt ended, handed to Claim.Finish.
type Outcome struct {
	kind finishKind
	err  *AttemptError
	at   time.Time
}

// Ack is the outcome of a job that succeeded: it moves to done.
func Ack() Outcome { return Outcome{kind: finAck} }

// Fail is the outcome of a failed attempt: the job moves to retry, due at
// retryAt, or to dead when it has used its last attempt.
func Fail(e AttemptError, retryAt time.Time) Outcome {
	return Outcome{kind: finFail, err: &e, at: retryAt}
}

// Kill is the outcome of a failed attempt after which the job must not be
// retried: it moves to dead.
func Kill(e AttemptError) Outcome { return Outcome{kind: finKill, err: &e} }

// Snooze puts the job back, due at `at`, without spending the attempt.
func Snooze(at time.Time) Outcome { return Outcome{kind: finSnooze, at: at} }

// Release puts the job back in its queue as it was, without spending the
// attempt: the worker did not run it, or was stopped before it could finish.
func Release() Outcome { return Outcome{kind: finRelease} }

// Begin records, in the running journal, that the worker starts the job, so
// that if the process dies while the handler runs the job gets an orphan
// strike (and only then: jobs merely claimed, or whose handler had returned,
// are not blamed). A suspect (a job struck by an earlier crash) runs alone:
// Begin waits until no other attempt of the store runs, and holds back other
// Begins until it ends. It returns ctx's error if ctx ends first; the claim is
// then not begun, and the worker finishes it with Release().
//
// lease is how long the attempt may run (the class's timeout; 0: no bound).
// It is the job's LeaseUntil; past it, while the handler has not returned, the
// job shows as Stuck. Go cannot stop a handler that ignores its context, so a
// stuck job keeps its worker until it returns; the lease makes it visible.
func (cl *Claim) Begin(ctx context.Context, lease time.Duration) error {
	cl.mu.Lock()
	if cl.state != claimHeld {
		st := cl.state
		cl.mu.Unlock()
		if st == claimEnded {
			return ErrFinished
		}
		return errors.New("queue: the claim was begun already")
	}
	cl.state = claimBeginning
	cl.mu.Unlock()

	slot, err := cl.c.s.jn.begin(ctx, cl.id, cl.suspect)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err != nil {
		cl.state = claimHeld
		return err
	}
	now := cl.c.s.now()
	cl.state, cl.slot, cl.started = claimBegun, slot, now.UnixNano()
	cl.StartedAt = now
	a := &activeJob{begun: now}
	if lease > 0 {
		a.lease = now.Add(lease)
		cl.LeaseUntil = a.lease
	}
	cl.c.mu.Lock()
	cl.c.active[cl.id] = a
	cl.c.mu.Unlock()
	return nil
}

// Finish hands the attempt's outcome to the store, which commits it with the
// next transaction. It returns ErrFinished for a claim already finished,
// ErrNotBegun for an attempt's outcome without Begin, and ErrClosed when the
// store is closing (the job then stays running in the file and goes back to
// ready, untouched, at the next Open).
func (cl *Claim) Finish(o Outcome) error {
	cl.mu.Lock()
	switch {
	case cl.state == claimEnded:
		cl.mu.Unlock()
		return ErrFinished
	case cl.state == claimBeginning:
		cl.mu.Unlock()
		return ErrBeginning
	case cl.state == claimHeld && o.kind != finRelease:
		cl.mu.Unlock()
		return ErrNotBegun
	}
	begun := cl.state == claimBegun
	cl.state = claimEnded
	cl.mu.Unlock()

	c := cl.c
	if begun {
		// The handler has returned: whatever happens now, it did not kill the
		// process.
		c.s.jn.end(cl.slot, cl.suspect)
		c.mu.Lock()
		delete(c.active, cl.id)
		c.mu.Unlock()
		// A moving average of run times (1/8 weight), updated racily: a lost
		// update only delays the estimate.
		d := max(1, c.s.now().UnixNano()-cl.started)
		if old := c.avgRun.Load(); old == 0 {
			c.avgRun.Store(d)
		} else {
			c.avgRun.Store(old + (d-old)/8)
		}
	}
	c.inflight.Add(-1)
	c.inflightBytes.Add(-cl.cost)
	f := finish{kind: o.kind, id: cl.id, err: o.err, at: o.at}
	if begun {
		f.started = cl.started
	}
	return c.s.submit(func(p *pending) {
		if len(p.fin) == 0 {
			p.finSince = time.Now()
		}
		p.fin = append(p.fin, f)
	})
}

// take ends a claim no worker took (Consumer.Close puts it back): reports
// whether it was still open.
func (cl *Claim) take() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.state != claimHeld {
		return false
	}
	cl.state = claimEnded
	return true
}
