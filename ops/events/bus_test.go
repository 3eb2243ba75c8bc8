package events

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait on a channel in these tests. It is a deadlock
// guard, not a timing assertion: the waits normally end in microseconds.
const waitLimit = 20 * time.Second

func receive(t *testing.T, ch <-chan Notification) Notification {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return n
	case <-time.After(waitLimit):
		t.Fatal("no notification")
	}
	return Notification{}
}

func assertEmpty(t *testing.T, ch <-chan Notification) {
	t.Helper()
	select {
	case n := <-ch:
		t.Fatalf("unexpected notification %+v", n)
	default:
	}
}

func TestBroadcasterCoalescesManualFlush(t *testing.T) {
	t.Parallel()
	b := NewBus(Options{Manual: true})
	t.Cleanup(b.Close)
	ch, cancel := b.Subscribe()
	t.Cleanup(cancel)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Publish(TopicJobs)
			}
		})
	}
	wg.Wait()
	b.Publish(TopicIssues)
	b.Publish(TopicFailures)
	b.Publish(TopicFailures)

	if !b.Flush() {
		t.Fatal("Flush reported nothing pending")
	}
	n := receive(t, ch)
	if want := []Topic{TopicJobs, TopicFailures, TopicIssues}; !slices.Equal(n.Topics, want) {
		t.Errorf("Topics = %v, want %v", n.Topics, want)
	}
	if n.Count != 8003 {
		t.Errorf("Count = %d, want 8003", n.Count)
	}
	if !n.Has(TopicIssues) || n.Has(TopicMetrics) {
		t.Errorf("Has is wrong for %v", n.Topics)
	}
	if b.Flush() {
		t.Error("second Flush reported news")
	}
	assertEmpty(t, ch)
}

func TestBroadcasterOtherTopics(t *testing.T) {
	t.Parallel()
	b := NewBus(Options{Manual: true})
	t.Cleanup(b.Close)
	ch, cancel := b.Subscribe()
	t.Cleanup(cancel)

	b.Publish("zeta_changed")
	b.Publish(TopicSchedule)
	b.Publish("alpha_changed")
	b.Publish("alpha_changed")
	b.Publish("") // ignored
	b.Flush()
	n := receive(t, ch)
	if want := []Topic{TopicSchedule, "alpha_changed", "zeta_changed"}; !slices.Equal(n.Topics, want) {
		t.Errorf("Topics = %v, want %v", n.Topics, want)
	}
	if n.Count != 4 {
		t.Errorf("Count = %d, want 4", n.Count)
	}
}

func TestBroadcasterSlowSubscriberGetsMergedState(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 2, 21, 12, 0, 0, 0, time.UTC)
	b := NewBus(Options{Manual: true, Now: func() time.Time { return clock }})
	t.Cleanup(b.Close)
	slow, cancelSlow := b.Subscribe()
	t.Cleanup(cancelSlow)
	fast, cancelFast := b.Subscribe()
	t.Cleanup(cancelFast)

	topics := []Topic{TopicJobs, TopicMetrics, "custom_changed", TopicProfiles, TopicJobs}
	for i := range 100 {
		b.Publish(topics[i%len(topics)])
		clock = clock.Add(time.Second)
		b.Flush()
		// The fast subscriber sees every flush, unmerged.
		if n := receive(t, fast); n.Count != 1 || len(n.Topics) != 1 {
			t.Fatalf("fast subscriber got %+v", n)
		}
	}
	n := receive(t, slow)
	if want := []Topic{TopicJobs, TopicMetrics, TopicProfiles, "custom_changed"}; !slices.Equal(n.Topics, want) {
		t.Errorf("merged Topics = %v, want %v", n.Topics, want)
	}
	if n.Count != 100 {
		t.Errorf("merged Count = %d, want 100", n.Count)
	}
	if !n.At.Equal(clock) {
		t.Errorf("merged At = %v, want the latest flush %v", n.At, clock)
	}
	assertEmpty(t, slow)
}

// fakeAfter hands the flusher channels the test fires by hand, and tells the
// test each time the flusher starts waiting.
type fakeAfter struct {
	waits chan fakeTimer
}

type fakeTimer struct {
	d  time.Duration
	ch chan time.Time
}

func (f *fakeAfter) after(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.waits <- fakeTimer{d, ch}
	return ch
}

func (f *fakeAfter) next(t *testing.T) fakeTimer {
	t.Helper()
	select {
	case w := <-f.waits:
		return w
	case <-time.After(waitLimit):
		t.Fatal("flusher did not start waiting")
	}
	return fakeTimer{}
}

func TestBroadcasterFlusherThrottles(t *testing.T) {
	t.Parallel()
	fa := &fakeAfter{waits: make(chan fakeTimer)}
	b := NewBus(Options{Interval: 40 * time.Millisecond, After: fa.after})
	t.Cleanup(b.Close)
	ch, cancel := b.Subscribe()
	t.Cleanup(cancel)

	// A lone change after a quiet spell is delivered at once.
	b.Publish(TopicFailures)
	if n := receive(t, ch); !slices.Equal(n.Topics, []Topic{TopicFailures}) || n.Count != 1 {
		t.Fatalf("leading notification %+v", n)
	}
	// The flusher now waits out the interval; changes meanwhile are held.
	w := fa.next(t)
	if w.d != 40*time.Millisecond {
		t.Errorf("flusher waited %v, want the configured interval", w.d)
	}
	for range 10 {
		b.Publish(TopicJobs)
	}
	b.Publish(TopicIssues)
	assertEmpty(t, ch)
	w.ch <- time.Time{}
	if n := receive(t, ch); !slices.Equal(n.Topics, []Topic{TopicJobs, TopicIssues}) || n.Count != 11 {
		t.Fatalf("trailing notification %+v", n)
	}
	// An interval with no news sends the flusher back to sleep...
	fa.next(t).ch <- time.Time{}
	// ...and the next change is again delivered at once.
	b.Publish(TopicMetrics)
	if n := receive(t, ch); !slices.Equal(n.Topics, []Topic{TopicMetrics}) {
		t.Fatalf("notification after sleep %+v", n)
	}
	fa.next(t) // waiting again; Close must end that wait.
}

func TestBroadcasterDefaultInterval(t *testing.T) {
	t.Parallel()
	fa := &fakeAfter{waits: make(chan fakeTimer)}
	b := NewBus(Options{After: fa.after})
	t.Cleanup(b.Close)
	b.Publish(TopicJobs)
	if w := fa.next(t); w.d != DefaultInterval {
		t.Errorf("interval %v, want %v", w.d, DefaultInterval)
	}
}

func TestBroadcasterRealTimer(t *testing.T) {
	t.Parallel()
	b := NewBus(Options{Interval: time.Millisecond})
	t.Cleanup(b.Close)
	ch, cancel := b.Subscribe()
	t.Cleanup(cancel)
	total := 0
	for round := range 5 {
		for range 100 {
			b.Publish(TopicJobs)
		}
		// Everything published is eventually delivered, in however many
		// notifications the timing produced.
		for total < (round+1)*100 {
			total += receive(t, ch).Count
		}
	}
	if total != 500 {
		t.Errorf("delivered %d publishes, want 500", total)
	}
}

func TestBroadcasterCloseAndCancel(t *testing.T) {
	t.Parallel()
	b := NewBus(Options{Manual: true})
	a, cancelA := b.Subscribe()
	c, cancelC := b.Subscribe()

	cancelC()
	cancelC() // idempotent
	if _, ok := <-c; ok {
		t.Fatal("cancelled subscription still open")
	}

	b.Publish(TopicIssues)
	b.Close()
	// What was pending at Close is delivered before the channel closes.
	if n, ok := <-a; !ok || !n.Has(TopicIssues) {
		t.Fatalf("pending notification lost at Close: %+v, %v", n, ok)
	}
	if _, ok := <-a; ok {
		t.Fatal("channel open after Close")
	}
	cancelA() // after Close: harmless

	late, cancelLate := b.Subscribe()
	if _, ok := <-late; ok {
		t.Fatal("subscription after Close is open")
	}
	cancelLate()
	b.Publish(TopicJobs) // no panic
	b.Close()            // idempotent
}

// TestBroadcasterConcurrentUse runs publishers, subscribers that come and go,
// and the real flusher together, for the race detector.
func TestBroadcasterConcurrentUse(t *testing.T) {
	t.Parallel()
	b := NewBus(Options{Interval: 100 * time.Microsecond})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Go(func() {
			topics := []Topic{TopicJobs, TopicFailures, "x_changed"}
			for j := range 20000 {
				b.Publish(topics[(i+j)%len(topics)])
			}
		})
	}
	var subs sync.WaitGroup
	for range 3 {
		subs.Go(func() {
			for {
				ch, cancel := b.Subscribe()
				select {
				case <-ch:
				case <-stop:
					cancel()
					return
				}
				cancel()
			}
		})
	}
	wg.Wait()
	close(stop)
	subs.Wait()
	b.Close()
}

func TestPublishDoesNotAllocate(t *testing.T) {
	b := NewBus(Options{Manual: true})
	defer b.Close()
	if allocs := testing.AllocsPerRun(1000, func() { b.Publish(TopicJobs) }); allocs != 0 {
		t.Errorf("Publish allocates %v times per call", allocs)
	}
}

func BenchmarkPublish(b *testing.B) {
	br := NewBus(Options{})
	ch, cancel := br.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			br.Publish(TopicJobs)
		}
	})
	b.StopTimer()
	cancel()
	<-done
	br.Close()
}

func BenchmarkPublishMixedTopics(b *testing.B) {
	br := NewBus(Options{})
	defer br.Close()
	topics := []Topic{TopicJobs, TopicFailures, TopicIssues, TopicMetrics}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			br.Publish(topics[i&3])
			i++
		}
	})
}
