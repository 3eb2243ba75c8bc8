package data

import (
	"errors"
	"testing"
)

func TestPipelineSteps(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	ctx := t.Context()
	p := &Pipeline{Kind: "account_processing", AccountID: 42}
	if err := db.CreatePipeline(ctx, p, "capture_feed", "analyze", "engage"); err != nil {
		t.Fatal(err)
	}
	if p.ID == 0 || len(p.Steps) != 3 || p.Status != StatusRunning {
		t.Fatalf("created %+v", p)
	}
	if err := db.SetStepStatus(ctx, p.ID, "capture_feed", StatusRunning, 500); err != nil {
		t.Fatal(err)
	}
	if err := db.SetStepStatus(ctx, p.ID, "capture_feed", StatusRunning, 0); err != nil {
		t.Fatal(err)
	}
	if err := db.SetStepStatus(ctx, p.ID, "capture_feed", StatusSucceeded, 0); err != nil {
		t.Fatal(err)
	}
	got, err := db.PipelineByID(ctx, p.ID)
	if err != nil || got.Steps[0].Status != StatusSucceeded || got.Steps[0].Attempts != 2 || got.Steps[0].JobID != 500 || got.AccountID != 42 {
		t.Fatalf("pipeline = %+v %+v, %v", got, got.Steps[0], err)
	}
	for _, tc := range []struct {
		step string
		want bool
	}{{"capture_feed", true}, {"analyze", false}} {
		if term, err := db.StepTerminal(ctx, p.ID, tc.step); err != nil || term != tc.want {
			t.Errorf("StepTerminal(%s) = %v %v", tc.step, term, err)
		}
	}
	if term, _ := db.PipelineTerminal(ctx, p.ID); term {
		t.Fatal("running pipeline terminal")
	}
	if err := db.SetPipelineStatus(ctx, p.ID, StatusCancelled); err != nil {
		t.Fatal(err)
	}
	if term, _ := db.PipelineTerminal(ctx, p.ID); !term {
		t.Fatal("cancelled pipeline not terminal")
	}
	got, _ = db.PipelineByID(ctx, p.ID)
	if got.FinishedAt.IsZero() {
		t.Fatal("finished_at not set")
	}

	if _, err := db.StepTerminal(ctx, p.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing step = %v", err)
	}
	if _, err := db.PipelineTerminal(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing pipeline = %v", err)
	}
	if err := db.SetStepStatus(ctx, p.ID, "analyze", "exploded", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad status = %v", err)
	}
	if err := db.SetStepStatus(ctx, 999, "analyze", StatusFailed, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing pipeline step = %v", err)
	}
	if err := db.CreatePipeline(ctx, &Pipeline{Kind: "x"}, "a", "a"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate steps = %v", err)
	}
	if _, err := db.PipelineByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PipelineByID(missing) = %v", err)
	}
	for s, want := range map[Status]bool{StatusPending: false, StatusRunning: false, StatusSucceeded: true, StatusFailed: true, StatusCancelled: true, StatusSkipped: true} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}
