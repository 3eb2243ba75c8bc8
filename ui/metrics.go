package ui

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"conveyor/lanes"
	"conveyor/queue"
)

// collector reads the store's in-memory counters and the pool's lane stats at
// scrape time: nothing is kept between scrapes and nothing is scanned.
type collector struct {
	store *queue.Store
	topo  lanes.Topology
	pool  *lanes.Pool

	queueSize, queueLatency, queuePaused, jobs, fileBytes, stuck   *prometheus.Desc
	laneBusy, laneConcurrency, laneOpen, laneProcessed, laneFailed *prometheus.Desc
}

func newCollector(store *queue.Store, topo lanes.Topology, pool *lanes.Pool) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("conveyor_"+name, help, labels, nil)
	}
	return &collector{
		store: store, topo: topo, pool: pool,
		queueSize:       d("queue_size", "Ready jobs waiting in the queue.", "queue", "lane"),
		queueLatency:    d("queue_latency_seconds", "How long the queue's next job to run has been waiting.", "queue", "lane"),
		queuePaused:     d("queue_paused", "1 when the queue is paused.", "queue", "lane"),
		jobs:            d("jobs", "Jobs by queue and state.", "queue", "state"),
		fileBytes:       d("queue_file_bytes", "The queue file: allocated (its size on disk, never shrinking) and live (what its pages in use hold).", "kind"),
		stuck:           d("jobs_stuck", "Jobs whose attempt runs past its timeout: their handler ignores its context."),
		laneBusy:        d("lane_busy_workers", "Workers of the lane running a job now.", "lane"),
		laneConcurrency: d("lane_concurrency", "Workers of the lane.", "lane"),
		laneOpen:        d("lane_open", "1 when the lane's gate is open (0: held, e.g. local AI down).", "lane"),
		laneProcessed:   d("lane_processed_total", "Attempts the lane finished since start, failed ones included.", "lane"),
		laneFailed:      d("lane_failed_total", "Attempts of the lane that failed since start.", "lane"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueSize, c.queueLatency, c.queuePaused, c.jobs, c.fileBytes, c.stuck,
		c.laneBusy, c.laneConcurrency, c.laneOpen, c.laneProcessed, c.laneFailed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	seen := map[string]bool{}
	emit := func(qi queue.QueueInfo) {
		seen[qi.Name] = true
		lane, _ := c.topo.LaneOf(qi.Name)
		gauge(c.queueSize, float64(qi.Size), qi.Name, lane)
		gauge(c.queueLatency, qi.Latency.Seconds(), qi.Name, lane)
		gauge(c.queuePaused, b2f(qi.Paused), qi.Name, lane)
		for _, st := range queue.States {
			gauge(c.jobs, float64(qi.Counts[st]), qi.Name, st.String())
		}
	}
	for _, name := range c.topo.Queues() {
		qi, _ := c.store.Queue(name)
		emit(qi)
	}
	for _, qi := range c.store.Queues() {
		if !seen[qi.Name] {
			emit(qi)
		}
	}
	fs := c.store.FileStats()
	gauge(c.fileBytes, float64(fs.Allocated), "allocated")
	gauge(c.fileBytes, float64(fs.Live), "live")
	gauge(c.stuck, float64(len(c.store.Stuck())))
	if c.pool == nil {
		return
	}
	for _, l := range c.pool.Stats() {
		gauge(c.laneBusy, float64(l.Busy), l.Name)
		gauge(c.laneConcurrency, float64(l.Concurrency), l.Name)
		gauge(c.laneOpen, b2f(l.Open), l.Name)
		ch <- prometheus.MustNewConstMetric(c.laneProcessed, prometheus.CounterValue, float64(l.Processed), l.Name)
		ch <- prometheus.MustNewConstMetric(c.laneFailed, prometheus.CounterValue, float64(l.Failed), l.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metrics serves GET /metrics in the Prometheus text format from the
// configured Gatherer.
func (s *Server) metrics() httprouter.Handle {
	h := promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog:      promLog{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h.ServeHTTP(w, r) }
}

// promLog hands promhttp's errors to the logger.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Error("metrics: " + fmt.Sprint(v...)) }
