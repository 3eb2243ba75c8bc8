package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
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

// BenchmarkEnqueueServe is the server's own work for one single enqueue,
// without the network: ServeHTTP on a recorded response, 64 callers at
// once (their enqueues share commits), fsync off so that the figure is the
// request path's CPU and allocations rather than the disk's.
func BenchmarkEnqueueServe(b *testing.B) {
	r := newRig(b, rigOpts{cfg: quiet.cfg, store: queue.Options{NoSync: true}})
	body := `{"class":"NoopJob","args":{"pad":"` + strings.Repeat("x", 64) + `"}}`
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/api/v1/jobs", strings.NewReader(body))
			req.Host = r.host
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			r.srv.ServeHTTP(w, req)
			if w.Code != http.StatusCreated {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}

// BenchmarkDecodeEnqueue decodes bench's single enqueue body the one-pass
// way and the general way.
func BenchmarkDecodeEnqueue(b *testing.B) {
	body := []byte(`{"class":"NoopJob","args":{"pad":"` + strings.Repeat("x", 64) + `"}}`)
	b.Run("one-pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeEnqueueFast(body); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req enqueueRequest
			if err := decodeJSON(body, &req, ""); err != nil {
				b.Fatal(err)
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
