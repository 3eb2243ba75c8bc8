package localai

import (
	"context"
	"sync"
	"testing"
	"time"

	"conveyor/internal/testlog"
)

type atomicCounter struct {
	mu sync.Mutex
	n  int32
}

func (c *atomicCounter) add() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

func (c *atomicCounter) load() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestWatchReportsFlips(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	micro := newHealthServer(t, 200, nil)
	f.cfg.URL = micro.URL
	s := f.supervisor()
	type event struct {
		healthy bool
		n       int
	}
	events := make(chan event, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, 5*time.Millisecond, func(healthy bool, results []HealthResult) {
			events <- event{healthy, len(results)}
		})
	}()
	next := func() event {
		select {
		case e := <-events:
			return e
		case <-time.After(waitLimit):
			t.Fatal("no callback")
		}
		return event{}
	}
	if e := next(); !e.healthy || e.n != 2 {
		t.Fatalf("first callback %+v", e)
	}
	micro.status.Store(503)
	if e := next(); e.healthy {
		t.Fatalf("after going down: %+v", e)
	}
	micro.status.Store(200)
	if e := next(); !e.healthy {
		t.Fatalf("after coming back: %+v", e)
	}
	cancel()
	<-done
	select {
	case e := <-events:
		t.Errorf("callback without a flip: %+v", e)
	default:
	}
}

func TestWatchNotRequired(t *testing.T) {
	t.Parallel()
	s := NewSupervisor(Config{}, t.TempDir(), testlog.New(t))
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, time.Millisecond, func(healthy bool, results []HealthResult) {
			calls++
			if healthy || results != nil {
				t.Errorf("callback(%v, %v)", healthy, results)
			}
		})
	}()
	cancel()
	<-done
	if calls != 1 {
		t.Errorf("%d callbacks, want 1", calls)
	}
}
