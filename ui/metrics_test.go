package ui

import (
	"net/http"
	"strings"
	"testing"

	"conveyor/queue"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{pool: true})
	done := r.enqueue(`{"class":"NoopJob"}`)
	failed := r.enqueue(`{"class":"FailJob","max_attempts":1}`)
	r.waitState(done, queue.StateDone)
	r.waitState(failed, queue.StateDead)
	into[queueJSON](t, r.call("POST", "/api/v1/queues/maintenance/pause", ""), http.StatusOK)

	rp := r.call("GET", "/metrics", "")
	if rp.status != http.StatusOK || !strings.HasPrefix(rp.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics %d %q", rp.status, rp.header.Get("Content-Type"))
	}
	body := string(rp.body)
	for _, want := range []string{
		`conveyor_queue_size{lane="default",queue="default"} 0`,
		`conveyor_queue_latency_seconds{lane="ai",queue="ai"} 0`,
		`conveyor_queue_paused{lane="default",queue="maintenance"} 1`,
		`conveyor_jobs{queue="default",state="done"} 1`,
		`conveyor_jobs{queue="default",state="dead"} 1`,
		`conveyor_jobs{queue="frame_generation",state="ready"} 0`,
		`conveyor_lane_busy_workers{lane="default"} `, // a worker may still be leaving its job
		`conveyor_lane_concurrency{lane="default"} 16`,
		`conveyor_lane_open{lane="ai"} 1`,
		`conveyor_lane_processed_total{lane="default"} 2`,
		`conveyor_lane_failed_total{lane="default"} 1`,
		"# TYPE conveyor_lane_processed_total counter",
		"# TYPE conveyor_queue_size gauge",
		`conveyor_queue_file_bytes{kind="allocated"} `,
		`conveyor_queue_file_bytes{kind="live"} `,
		"conveyor_jobs_stuck 0",
		"go_goroutines ",
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestMetricsWithoutPool: lane stats are absent, queue metrics are not.
func TestMetricsWithoutPool(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	r.enqueue(`{"class":"NoopJob"}`)
	body := string(r.call("GET", "/metrics", "").body)
	if !strings.Contains(body, `conveyor_queue_size{lane="default",queue="default"} 1`) {
		t.Errorf("queue size missing:\n%s", body)
	}
	if strings.Contains(body, "conveyor_lane_") {
		t.Error("lane metrics without a pool")
	}
}
