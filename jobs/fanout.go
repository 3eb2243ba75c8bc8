package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"conveyor/cron"
	"conveyor/lanes"
	"conveyor/queue"
)

// The fan-out is the seed's ScheduledAccountBatching, here rather than in
// cron/: it walks accounts and their switches (data) and enqueues the
// catalog's per-account classes, while cron/ only knows ticks. The
// orchestrator learns its tick from the context cron gives each run
// (cron.CtxTick, cron.CtxNext), which keeps the two apart.

const (
	// minHold is the least time a per-account job's unique key is held,
	// for a fan-out that runs past its entry's next tick.
	minHold = time.Minute
	// DefaultHold is how long the keys of a fan-out without an entry (an
	// orchestrator enqueued through the jobs API) are held.
	DefaultHold = time.Hour
)

// FanOutArgs are an orchestrator's args. A schedule's run has none; the
// continuation an orchestrator enqueues when its batch has more carries
// where to go on: the last account id done, the fan-out's start, the slot
// of the next account, and the tick (with the entry's next tick) that
// started the fan-out.
type FanOutArgs struct {
	Cursor int64  `json:"cursor,omitempty"`
	Start  int64  `json:"start,omitempty"` // Unix seconds
	Slot   int    `json:"slot,omitempty"`
	Tick   string `json:"tick,omitempty"` // RFC 3339
	Next   string `json:"next,omitempty"` // RFC 3339
}

// Validate checks the ranges and times.
func (a *FanOutArgs) Validate() error {
	switch {
	case a.Cursor < 0:
		return &lanes.ArgsError{Field: "cursor", Reason: "must not be negative"}
	case a.Start < 0:
		return &lanes.ArgsError{Field: "start", Reason: "must not be negative"}
	case a.Slot < 0:
		return &lanes.ArgsError{Field: "slot", Reason: "must not be negative"}
	}
	for _, f := range []struct{ name, v string }{{"tick", a.Tick}, {"next", a.Next}} {
		if _, err := parseTime(f.v); err != nil {
			return &lanes.ArgsError{Field: f.name, Reason: err.Error()}
		}
	}
	return nil
}

func parseTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time (got %q)", v)
	}
	return t, nil
}

// AccountArgs are the args of a per-account job.
type AccountArgs struct {
	AccountID int64 `json:"account_id"`
}

// Validate checks the id.
func (a *AccountArgs) Validate() error {
	if a.AccountID <= 0 {
		return &lanes.ArgsError{Field: "account_id", Reason: "must be a positive account id"}
	}
	return nil
}

// Jitter is an account's deterministic jitter in a fan-out of class: whole
// seconds in [0, max], a function of the class and the account id only.
func Jitter(class string, accountID int64, max time.Duration) time.Duration {
	n := int64(max / time.Second)
	if n <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(class))
	h.Write([]byte{':'})
	h.Write([]byte(strconv.FormatInt(accountID, 10)))
	return time.Duration(h.Sum64()%uint64(n+1)) * time.Second
}

// UniqueKey is a per-account job's unique key: <class>:<account id>:<tick
// in Unix seconds>.
func UniqueKey(class string, accountID int64, tick time.Time) string {
	return class + ":" + strconv.FormatInt(accountID, 10) + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// Batch is what one run of an orchestrator did.
type Batch struct {
	// Accounts is how many per-account jobs it asked for; Enqueued how
	// many were new (the rest were held by their unique key).
	Accounts, Enqueued int
	// HasMore says a continuation was enqueued, with Cursor (the last id
	// of this batch) and due at ContinueAt.
	HasMore    bool
	Cursor     int64
	ContinueAt time.Time
}

// fanOut runs one batch of orchestrator o for job.
func (c *Catalog) fanOut(ctx context.Context, o Orchestrator, job *queue.Job, args FanOutArgs) (Batch, error) {
	b := c.set.Batching[o.Class]
	now := c.now()
	tick, next := c.fanOutTick(job, args)
	start := time.Unix(args.Start, 0).UTC()
	if args.Start == 0 {
		start = now.Truncate(time.Second).UTC()
	}
	hold := DefaultHold
	if !next.IsZero() {
		hold = max(next.Sub(now), minHold)
	}
	accts, err := c.db.AccountsForFanOut(ctx, o.Switch, args.Cursor, b.BatchSize+1)
	if err != nil {
		return Batch{}, err
	}
	out := Batch{HasMore: len(accts) > b.BatchSize}
	if out.HasMore {
		accts = accts[:b.BatchSize]
	}
	reqs := make([]lanes.JobRequest, 0, len(accts)+1)
	for i, a := range accts {
		k := args.Slot + i
		id := strconv.FormatInt(a.ID, 10)
		reqs = append(reqs, lanes.JobRequest{
			Class:     o.Target,
			Args:      json.RawMessage(`{"account_id":` + id + `}`),
			RunAt:     start.Add(time.Duration(k)*b.Stagger + Jitter(o.Class, a.ID, b.Jitter)),
			UniqueKey: UniqueKey(o.Target, a.ID, tick),
			UniqueFor: hold,
			Context:   map[string]string{queue.CtxAccountID: id},
		})
	}
	out.Accounts = len(accts)
	if out.HasMore {
		out.Cursor = accts[len(accts)-1].ID
		slot := args.Slot + len(accts)
		out.ContinueAt = start.Add(time.Duration(slot) * b.Stagger)
		cont := FanOutArgs{Cursor: out.Cursor, Start: start.Unix(), Slot: slot, Tick: tick.UTC().Format(time.RFC3339)}
		if !next.IsZero() {
			cont.Next = next.UTC().Format(time.RFC3339)
		}
		raw, _ := json.Marshal(cont)
		ctxMap := map[string]string{}
		for _, k := range []string{cron.CtxEntry, cron.CtxTrigger, cron.CtxTick, cron.CtxNext} {
			if v := job.Context[k]; v != "" {
				ctxMap[k] = v
			}
		}
		reqs = append(reqs, lanes.JobRequest{
			Class: o.Class, Queue: job.Queue, Args: raw, RunAt: out.ContinueAt,
			UniqueKey: o.Class + ":" + strconv.FormatInt(tick.Unix(), 10) + ":after:" + strconv.FormatInt(out.Cursor, 10),
			UniqueFor: hold, Context: ctxMap,
		})
	}
	if len(reqs) == 0 {
		return out, nil
	}
	res, err := c.enqueue(ctx, reqs)
	if err != nil {
		return Batch{}, err
	}
	for _, r := range res[:len(accts)] {
		if !r.Duplicate {
			out.Enqueued++
		}
	}
	return out, nil
}

// fanOutTick is the tick that started the fan-out and the entry's next
// tick: from a continuation's args, else from the context cron gives a
// run (a run by hand counts as the entry's latest tick), else — an
// orchestrator enqueued through the jobs API — the job's own enqueue time
// (its keys then held DefaultHold).
func (c *Catalog) fanOutTick(job *queue.Job, args FanOutArgs) (tick, next time.Time) {
	tick, _ = parseTime(args.Tick)
	next, _ = parseTime(args.Next)
	if !tick.IsZero() {
		return tick, next
	}
	if t, err := parseTime(job.Context[cron.CtxTick]); err == nil && !t.IsZero() {
		n, _ := parseTime(job.Context[cron.CtxNext])
		return t, n
	}
	return job.CreatedAt.Truncate(time.Second), time.Time{}
}

// orchestratorClass is o's class: one batch per run.
func (c *Catalog) orchestratorClass(o Orchestrator) lanes.Class {
	return lanes.Class{Name: o.Class, Queue: o.Queue, Timeout: 5 * time.Minute,
		Handler: lanes.Typed(func(ctx context.Context, job *queue.Job, args FanOutArgs) error {
			b, err := c.fanOut(ctx, o, job, args)
			if err != nil {
				return err
			}
			c.log.Info("fan-out batch", "class", o.Class, "job", job.ID, "accounts", b.Accounts, "enqueued", b.Enqueued,
				"has_more", b.HasMore, "cursor", b.Cursor)
			return nil
		})}
}
