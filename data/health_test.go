package data

import (
	"testing"
	"time"
)

func TestHealthChecks(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	start := clk.Now()
	for i := range 5 {
		for _, svc := range []string{"local_ai", "ollama", "queue:sync"} {
			hc := &HealthCheck{Service: svc, OK: i%2 == 0, Status: "ok", Latency: time.Duration(i) * time.Millisecond}
			if err := db.RecordHealthCheck(ctx, hc); err != nil {
				t.Fatal(err)
			}
		}
		clk.Add(time.Minute)
	}
	// ollama stops being probed after the first round.
	latest, err := db.LatestHealth(ctx)
	if err != nil || len(latest) != 3 {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	for _, hc := range latest {
		if !hc.CheckedAt.Equal(start.Add(4*time.Minute)) || hc.Latency != 4*time.Millisecond || !hc.OK {
			t.Errorf("latest %s = %+v", hc.Service, hc)
		}
	}
	if err := db.RecordHealthCheck(ctx, &HealthCheck{Service: "local_ai", OK: false, Error: "connection refused"}); err != nil {
		t.Fatal(err)
	}
	n, err := db.PruneHealthChecks(ctx, clk.Add(time.Hour))
	if err != nil || n != 13 {
		t.Fatalf("pruned %d, %v; want 13 (all but the newest of each service)", n, err)
	}
	latest, _ = db.LatestHealth(ctx)
	if len(latest) != 3 || latest[0].Service != "local_ai" || latest[0].OK || latest[0].Error != "connection refused" {
		t.Fatalf("after prune = %+v", latest)
	}
	if err := db.RecordHealthCheck(ctx, &HealthCheck{}); err == nil {
		t.Fatal("empty service accepted")
	}
}
