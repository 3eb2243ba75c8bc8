package failures

import (
	"testing"

	"conveyor/lanes"
	"conveyor/queue"
)

// TestLanesBusy: the lanes are busy when they finished more attempts since
// the previous look than the threshold allows for the time between.
func TestLanesBusy(t *testing.T) {
	t.Parallel()
	r := newFailRig(t, failRigOpts{realClock: true, pool: true})
	busy := LanesBusy(r.pool, 1) // one attempt a second
	if busy() {
		t.Error("busy at the first look, with nothing to compare with")
	}
	var ids []uint64
	for range 200 {
		ids = append(ids, r.enqueue(queue.NewJob{Class: lanes.NoopJob, Queue: "default"}))
	}
	for _, id := range ids {
		r.waitJob(id, queue.StateDone)
	}
	// 200 attempts: busy unless the look came 200 s after the first.
	if !busy() {
		t.Error("not busy after 200 attempts")
	}
	if busy() {
		t.Error("busy with no attempt since the previous look")
	}
}
