package ui

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"conveyor/lanes"
	"conveyor/queue"
)

func TestQueues(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	for range 3 {
		r.enqueue(`{"class":"NoopJob"}`)
	}
	r.enqueue(`{"class":"NoopJob","queue":"sync","in_seconds":600}`)
	// Queues the store knows but no lane serves come last, by name.
	for _, q := range []string{"zeta_legacy", "alpha_legacy"} {
		if _, err := r.store.Enqueue(context.Background(), queue.NewJob{Class: "OldJob", Queue: q}); err != nil {
			t.Fatal(err)
		}
	}

	list := into[[]queueJSON](t, r.call("GET", "/api/v1/queues", ""), http.StatusOK)
	var names []string
	byName := map[string]queueJSON{}
	for _, q := range list {
		names = append(names, q.Name)
		byName[q.Name] = q
	}
	want := append(r.topo.Queues(), "alpha_legacy", "zeta_legacy")
	if !slices.Equal(names, want) {
		t.Fatalf("queues %v, want %v", names, want)
	}
	if d := byName["default"]; d.Lane != "default" || d.Size != 3 || d.Counts["ready"] != 3 || d.Paused || len(d.Counts) != len(queue.States) {
		t.Errorf("default %+v", d)
	}
	if s := byName["sync"]; s.Size != 0 || s.Counts["scheduled"] != 1 {
		t.Errorf("sync %+v", s)
	}
	if f := byName["frame_generation"]; f.Lane != "frame_generation" || f.Size != 0 || f.Counts["dead"] != 0 {
		t.Errorf("a queue the store never saw: %+v", f)
	}
	if l := byName["alpha_legacy"]; l.Lane != "" || l.Size != 1 {
		t.Errorf("a queue no lane serves: %+v", l)
	}

	p := into[queueJSON](t, r.call("POST", "/api/v1/queues/default/pause", ""), http.StatusOK)
	if !p.Paused || p.Name != "default" || p.Size != 3 {
		t.Errorf("pause reply %+v", p)
	}
	if qi, _ := r.store.Queue("default"); !qi.Paused {
		t.Error("store does not show the pause")
	}
	if p := into[queueJSON](t, r.call("POST", "/api/v1/queues/default/resume", ""), http.StatusOK); p.Paused {
		t.Errorf("resume reply %+v", p)
	}
	// A topology queue the store never saw can be paused (the store learns it).
	if p := into[queueJSON](t, r.call("POST", "/api/v1/queues/avatars/pause", ""), http.StatusOK); !p.Paused || p.Lane != "default" {
		t.Errorf("pause avatars %+v", p)
	}
	if p := into[queueJSON](t, r.call("POST", "/api/v1/queues/alpha_legacy/pause", ""), http.StatusOK); !p.Paused || p.Lane != "" {
		t.Errorf("pause a legacy queue %+v", p)
	}

	c := into[clearedJSON](t, r.call("POST", "/api/v1/queues/default/clear", ""), http.StatusOK)
	if c.Name != "default" || c.Cleared != 3 {
		t.Errorf("clear reply %+v", c)
	}
	if c := into[clearedJSON](t, r.call("POST", "/api/v1/queues/sync/clear", ""), http.StatusOK); c.Cleared != 0 {
		t.Errorf("clear keeps scheduled jobs: %+v", c)
	}
	if qi, _ := r.store.Queue("sync"); qi.Counts[queue.StateScheduled] != 1 {
		t.Errorf("sync lost its scheduled job: %+v", qi)
	}

	before := len(r.store.Queues())
	for _, action := range []string{"pause", "resume", "clear"} {
		wantError(t, r.call("POST", "/api/v1/queues/defualt/"+action, ""), http.StatusNotFound, "name")
		wantError(t, r.call("POST", "/api/v1/queues/a%20b/"+action, ""), http.StatusNotFound, "name")
	}
	if after := len(r.store.Queues()); after != before {
		t.Errorf("actions on unknown queues created %d queues", after-before)
	}
}

// TestQueuesFollowLaneOrder uses a configured topology: lanes in their order,
// queues in each lane's order (not by name).
func TestQueuesFollowLaneOrder(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{topo: func(lanes.Topology) lanes.Topology {
		return lanes.Topology{Lanes: []lanes.Lane{
			{Name: "slow", Queues: []string{"zz", "default"}, Concurrency: 1},
			{Name: "fast", Queues: []string{"mm", "aa"}, Concurrency: 1},
		}}
	}})
	var names []string
	for _, q := range into[[]queueJSON](t, r.call("GET", "/api/v1/queues", ""), http.StatusOK) {
		names = append(names, q.Name+"@"+q.Lane)
	}
	if want := []string{"zz@slow", "default@slow", "mm@fast", "aa@fast"}; !slices.Equal(names, want) {
		t.Errorf("queues %v, want %v", names, want)
	}
}
