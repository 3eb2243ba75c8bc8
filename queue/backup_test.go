package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// blockingWriter holds the first Write until release is closed.
type blockingWriter struct {
	entered, release chan struct{}
	buf              bytes.Buffer
	first            bool
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if !w.first {
		w.first = true
		close(w.entered)
		<-w.release
	}
	return w.buf.Write(p)
}

// TestBackupDoesNotHoldCommits: while a snapshot is streamed to a slow reader,
// the file grows past its mapping and every enqueue commits (the old Backup
// held a read transaction for the whole stream, and bbolt's remap waits for it:
// every commit stalled until the reader was done). The snapshot is the store
// as it was when taken, checked.
func TestBackupDoesNotHoldCommits(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.NoSync = true; o.InitialMmapSize = 1 << 16 })
	ctx := context.Background()
	before := e.enqueue(NewJob{Args: rawJSON(`{"n":"before"}`)})
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	backup := make(chan error, 1)
	go func() {
		_, err := e.s.Backup(ctx, w)
		backup <- err
	}()
	<-w.entered
	pad := rawJSON(`{"pad":"` + strings.Repeat("x", 16<<10) + `"}`)
	batch := make([]NewJob, 64)
	for i := range batch {
		batch[i] = NewJob{Class: "C", Queue: "later", Args: pad}
	}
	for range 8 { // 8 MiB: the file outgrows its first mapping many times over
		if _, err := e.s.EnqueueMany(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	close(w.release)
	if err := <-backup; err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snapshot.bolt")
	if err := os.WriteFile(snap, w.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(snap); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	restored := setupAt(t, snap)
	restored.wantState(before.ID, StateReady)
	if q, ok := restored.s.Queue("later"); ok && q.Size != 0 {
		t.Fatalf("the snapshot holds %d jobs enqueued after it was taken", q.Size)
	}
}

// TestCompaction: a burst's peak stays allocated in the file; FileStats tells
// live from allocated, a snapshot has the live size, and a start-up compacts a
// file whose free pages dominate.
func TestCompaction(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *Options) { o.NoSync = true; o.DoneLimit = 10; o.CompactAt = 1 << 20 })
	ctx := context.Background()
	pad := rawJSON(`{"pad":"` + strings.Repeat("x", 4<<10) + `"}`)
	batch := make([]NewJob, 500)
	for i := range batch {
		batch[i] = NewJob{Class: "C", Queue: "default", Args: pad}
	}
	if _, err := e.s.EnqueueMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	kept := e.enqueue(NewJob{Queue: "kept", Args: rawJSON(`{"n":1}`)})
	c := e.s.mustConsume(t, ConsumerConfig{Name: "c", Queues: []string{"default"}, Concurrency: 100})
	for range batch {
		if err := take(t, c).Finish(Ack()); err != nil {
			t.Fatal(err)
		}
	}
	e.flush()
	fs := e.s.FileStats()
	if fs.Allocated < 2<<20 || fs.Live*2 >= fs.Allocated {
		t.Fatalf("after the burst: %+v, want a file of 2 MiB or more, mostly free", fs)
	}
	var snap bytes.Buffer
	n, err := e.s.Backup(ctx, &snap)
	if err != nil {
		t.Fatal(err)
	}
	if n >= fs.Allocated/2 {
		t.Fatalf("snapshot of %d bytes for a file of %+v: not compacted", n, fs)
	}
	c.Close(ctx)
	e.reopen() // the start-up compacts: free pages dominate
	after := e.s.FileStats()
	if after.Allocated >= fs.Allocated/2 {
		t.Fatalf("after the start-up: %+v (before: %+v): not compacted", after, fs)
	}
	e.wantState(kept.ID, StateReady)
	if n := e.s.Counts()[StateDone]; n != 10 {
		t.Fatalf("done after compaction: %d", n)
	}
}
