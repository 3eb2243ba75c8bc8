package lanes

import (
	"context"
	"testing"

	"conveyor/queue"
)

// TestQuiet: a quiet pool claims nothing, whatever the gates say; resuming
// it leaves a gate held closed as it was.
func TestQuiet(t *testing.T) {
	t.Parallel()
	topo := Topology{Lanes: []Lane{{Name: "main", Queues: []string{"default"}, Concurrency: 2},
		{Name: "ai", Queues: []string{"ai"}, Concurrency: 1}}}
	r := newRig(t, topo, Options{})
	if err := r.pool.SetGate("ai", false, "local AI down"); err != nil {
		t.Fatal(err)
	}
	r.pool.SetQuiet(true)
	if err := r.pool.Start(); err != nil {
		t.Fatal(err)
	}
	if !r.pool.Quiet() {
		t.Fatal("Quiet() is false after SetQuiet(true)")
	}
	main := r.enqueue(NoopJob, "default", "null")
	ai := r.enqueue(NoopJob, "ai", "null")
	// The writer has run a claim round since the enqueues (Flush waits for
	// it): nothing may have been claimed.
	if err := r.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{main, ai} {
		if j, _ := r.s.Get(id); j.State != queue.StateReady {
			t.Fatalf("job %d is %s while the pool is quiet", id, j.State)
		}
	}
	// Opening a gate while quiet claims nothing either.
	if err := r.pool.SetGate("ai", true, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.pool.SetGate("ai", false, "local AI down"); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j, _ := r.s.Get(ai); j.State != queue.StateReady {
		t.Fatalf("the ai job is %s", j.State)
	}
	r.pool.SetQuiet(false)
	r.waitFor(main, "done", func(j *queue.Job) bool { return j.State == queue.StateDone })
	if err := r.s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j, _ := r.s.Get(ai); j.State != queue.StateReady {
		t.Fatalf("resuming opened a held gate: the ai job is %s", j.State)
	}
	for _, st := range r.pool.Stats() {
		if st.Name == "ai" && (st.Open || st.Reason != "local AI down") {
			t.Errorf("the ai gate after resuming: %+v", st)
		}
	}
	if err := r.pool.SetGate("ai", true, ""); err != nil {
		t.Fatal(err)
	}
	r.waitFor(ai, "done", func(j *queue.Job) bool { return j.State == queue.StateDone })
}
