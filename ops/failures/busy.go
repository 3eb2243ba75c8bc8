package failures

import (
	"time"

	"conveyor/lanes"
)

// DefaultBusyJobsPerSecond is the lanes' throughput above which LanesBusy
// reports them busy: beyond it the lanes need the CPU that writing
// failures would take (a job costs the queue and the lanes several
// microseconds of CPU, a failure row several tens).
const DefaultBusyJobsPerSecond = 5000

// LanesBusy returns a data.FailureWriterOptions.Busy for pool: true while
// its lanes finished more than perSecond attempts a second
// (DefaultBusyJobsPerSecond when 0) since the previous call. The writer
// then holds failures until the burst is over, or for at most its
// BusyInterval. It is not safe for concurrent use: only the writer calls
// it.
func LanesBusy(pool *lanes.Pool, perSecond int) func() bool {
	if perSecond <= 0 {
		perSecond = DefaultBusyJobsPerSecond
	}
	var (
		last   int64
		lastAt time.Time
	)
	return func() bool {
		var n int64
		for _, l := range pool.Stats() {
			n += l.Processed
		}
		now := time.Now()
		busy := !lastAt.IsZero() && float64(n-last) > float64(perSecond)*now.Sub(lastAt).Seconds()
		last, lastAt = n, now
		return busy
	}
}
