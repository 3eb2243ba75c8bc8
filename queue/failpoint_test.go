//go:build failpoints

package queue

import (
	"context"
	"sync"
	"testing"
)

// holdAt stops e's store at the next pass of the failpoint: reached closes
// there, and the writer waits until release is closed. The failpoint tests are
// not parallel: the hook is the package's.
func holdAt(t *testing.T, e *env, name string) (reached, release chan struct{}) {
	t.Helper()
	reached, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	SetFailpoint(func(s *Store, at string) {
		if s == e.s && at == name {
			once.Do(func() {
				close(reached)
				<-release
			})
		}
	})
	t.Cleanup(func() { SetFailpoint(nil) })
	return reached, release
}

// TestReaderSeesANewQueueRightAfterItsCommit: between the commit that creates a
// queue with its first job and the writer's update of its memory, a reader
// finds the job ready (it used to find it in no index).
func TestReaderSeesANewQueueRightAfterItsCommit(t *testing.T) {
	e := setup(t)
	reached, release := holdAt(t, e, FailpointAfterCommit)
	done := make(chan Result, 1)
	go func() { done <- e.enqueue(NewJob{Queue: "fresh"}) }()
	<-reached
	j, err := e.s.Get(1)
	if err != nil || j.State != StateReady || j.Queue != "fresh" {
		t.Errorf("job of a queue committed a moment ago: %+v %v", j, err)
	}
	page, err := e.s.List(ListFilter{State: StateReady, Queue: "fresh"})
	if err != nil || len(page.Jobs) != 1 {
		t.Errorf("list of a queue committed a moment ago: %+v %v", page, err)
	}
	close(release)
	if r := <-done; r.ID != 1 {
		t.Fatalf("enqueued %+v", r)
	}
	e.s.Flush(context.Background())
}
