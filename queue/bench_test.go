package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchArgs = json.RawMessage(`{"account_id":123456,"kind":"sync","t":0,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "q.bolt"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func enqueueBatches(b *testing.B, s *Store, n, batch int, queue string) {
	b.Helper()
	jobs := make([]NewJob, 0, batch)
	for i := 0; i < n; i += batch {
		jobs = jobs[:0]
		for j := 0; j < batch && i+j < n; j++ {
			jobs = append(jobs, NewJob{Class: "NoopJob", Queue: queue, Args: benchArgs})
		}
		if _, err := s.EnqueueMany(context.Background(), jobs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueBatch1000 measures durable batch enqueue (jobs/s).
func BenchmarkEnqueueBatch1000(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	start := time.Now()
	enqueueBatches(b, s, b.N, 1000, "default")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

// BenchmarkProcess measures claim → begin → ack of no-op jobs by 34 workers.
func BenchmarkProcess(b *testing.B) {
	for _, backlog := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			s := benchStore(b)
			if backlog > 0 {
				enqueueBatches(b, s, backlog, 1000, "default")
			}
			enqueueBatches(b, s, b.N, 1000, "default")
			b.ResetTimer()
			start := time.Now()
			processN(b, s, b.N, 34)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}

// BenchmarkProcessFail is BenchmarkProcess with every attempt failing (each
// job goes to retry with a Sidekiq-like backoff).
func BenchmarkProcessFail(b *testing.B) {
	s := benchStore(b)
	enqueueBatches(b, s, b.N, 1000, "default")
	b.ResetTimer()
	start := time.Now()
	processWith(b, s, b.N, 34, func(j *Claim) {
		j.Finish(Fail(AttemptError{Class: "Error", Message: "503 from bridge"}, time.Now().Add(15*time.Second+time.Duration(rand.IntN(10_000))*time.Millisecond)))
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

func processN(b *testing.B, s *Store, n, workers int) {
	processWith(b, s, n, workers, func(j *Claim) { j.Finish(Ack()) })
}

func processWith(b *testing.B, s *Store, n, workers int, finish func(*Claim)) {
	c, err := s.Consume(ConsumerConfig{Name: "bench", Queues: []string{"default"}, Concurrency: workers})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	left := n
	done := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case j, ok := <-c.Claims():
					if !ok {
						return
					}
					j.Begin(context.Background(), 0)
					finish(j)
					mu.Lock()
					left--
					if left == 0 {
						close(done)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	c.Close(context.Background())
	s.Flush(context.Background())
}

// BenchmarkEnqueueConcurrent64 measures 64 goroutines enqueueing one job at a
// time: the writer groups them into shared commits.
func BenchmarkEnqueueConcurrent64(b *testing.B) {
	s := benchStore(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Enqueue(context.Background(), NewJob{Class: "NoopJob", Queue: "default", Args: benchArgs}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	ws := s.WriterStats()
	b.ReportMetric(float64(ws.Enqueued)/float64(ws.Commits), "jobs/commit")
}

// BenchmarkEnqueueBatch1000x4 is BenchmarkEnqueueBatch1000 with four producers
// whose batches share commits.
func BenchmarkEnqueueBatch1000x4(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N / 4
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enqueueBatches(b, s, per, 1000, "default")
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*4)/time.Since(start).Seconds(), "jobs/s")
}
