package failures

// The capture's settler: the outcomes of attempts (succeeded, or failed
// again) settle the retry states of the failures before them, in batches,
// off the lanes' path.

import (
	"context"
	"errors"

	"conveyor/data"
	"conveyor/ops/events"
)

// Close stops accepting outcomes, settles those queued and stops the
// settler. When ctx ends first, the rest are dropped and ctx's error
// returned. Call it after the lanes have stopped and before the writer and
// the database are closed.
func (c *Capture) Close(ctx context.Context) error {
	c.closeM.Lock()
	if !c.closed {
		c.closed = true
		close(c.outc)
	}
	c.closeM.Unlock()
	select {
	case <-c.settler.Done():
		return c.settler.Stop(context.Background()) // releases its context
	case <-ctx.Done():
		c.settler.Stop(context.Background()) // drop the rest, and wait
		return ctx.Err()
	}
}

func (c *Capture) queueOutcome(o data.JobOutcome) {
	if c.db == nil {
		return
	}
	c.closeM.RLock()
	defer c.closeM.RUnlock()
	if c.closed {
		c.dropped.Add(1)
		return
	}
	// queued is raised before the send so that done never passes it.
	c.progMu.Lock()
	c.queued++
	c.progMu.Unlock()
	select {
	case c.outc <- o:
		c.outcomes.Add(1)
	default:
		c.dropped.Add(1)
		c.advance(1)
	}
}

// advance counts n outcomes as done and wakes Flush.
func (c *Capture) advance(n int) {
	c.progMu.Lock()
	c.done += uint64(n)
	close(c.progress)
	c.progress = make(chan struct{})
	c.progMu.Unlock()
}

// Flush waits until the outcomes queued before the call are settled (or
// dropped), or ctx ends.
func (c *Capture) Flush(ctx context.Context) error {
	c.progMu.Lock()
	target := c.queued
	c.progMu.Unlock()
	for {
		c.progMu.Lock()
		done, ch := c.done, c.progress
		c.progMu.Unlock()
		if done >= target {
			return nil
		}
		select {
		case <-ch:
		case <-c.settler.Done():
			return errors.New("failures: capture closed before settling")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settle applies queued outcomes in batches until Close; when ctx ends
// (Close gave up) the batches left are dropped.
func (c *Capture) settle(ctx context.Context) {
	batch := make([]data.JobOutcome, 0, settleBatch)
	for o := range c.outc {
		batch = append(batch[:0], o)
	more:
		for len(batch) < settleBatch {
			select {
			case o, ok := <-c.outc:
				if !ok {
					break more
				}
				batch = append(batch, o)
			default:
				break more
			}
		}
		c.settleBatch(ctx, batch)
		c.advance(len(batch))
	}
}

func (c *Capture) settleBatch(ctx context.Context, batch []data.JobOutcome) {
	if ctx.Err() != nil {
		c.dropped.Add(uint64(len(batch)))
		return
	}
	// The failures added before these outcomes must be in the table.
	if err := c.w.Flush(ctx); err != nil {
		c.log.Warn("some failures were not recorded before settling", "error", err)
	}
	n, err := c.db.SettleFailures(ctx, batch)
	if err != nil {
		c.log.Error("retry states not settled", "outcomes", len(batch), "error", err)
		return
	}
	if n > 0 {
		c.settled.Add(uint64(n))
		if c.bus != nil {
			c.bus.Publish(events.TopicFailures)
		}
	}
}
