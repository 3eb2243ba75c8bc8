package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"conveyor/queue"
)

// quiet leaves the per-request debug log out of benchmarks.
var quiet = rigOpts{cfg: func(c *Config) { c.Logger = nil }}

// BenchmarkEnqueueHTTP is one job per request over loopback, 16 clients
// at once, each request waiting for its fsync (concurrent ones share commits).
func BenchmarkEnqueueHTTP(b *testing.B) {
	r := newRig(b, quiet)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", r.ts.URL+"/api/v1/jobs", strings.NewReader(`{"class":"NoopJob","args":{"n":1}}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := r.ts.Client().Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkBatchHTTP enqueues 1,000 jobs per request; it reports jobs/s.
func BenchmarkBatchHTTP(b *testing.B) {
	r := newRig(b, quiet)
	var sb strings.Builder
	sb.WriteString(`{"jobs":[`)
	for i := range 1000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"class":"NoopJob","args":{"account_id":%d}}`, i)
	}
	sb.WriteString(`]}`)
	body := sb.String()
	b.ResetTimer()
	for b.Loop() {
		if rp := r.call("POST", "/api/v1/jobs/batch", body); rp.status != http.StatusCreated {
			b.Fatalf("status %d %s", rp.status, rp.body)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkJobView shapes a job with three errors and its timeline.
func BenchmarkJobView(b *testing.B) {
	c := goldenJobs[5]
	var j queue.Job = c.job
	for b.Loop() {
		_ = jobView(&j, c.lane, c.now)
	}
}
