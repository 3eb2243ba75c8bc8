package data

import (
	"sync"
	"testing"

	"conveyor/ops/fault"
)

// TestInsertRecoveredFailuresOnce: a rebuilt failure is inserted, marked
// recovered, only when its attempt has no row; inserting it again (another
// pass, a concurrent one) inserts nothing.
func TestInsertRecoveredFailuresOnce(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	mk := func(job uint64, attempt int, class string) *Failure {
		return &Failure{JobID: job, Attempt: attempt, Class: class, Queue: "default", Kind: fault.Runtime,
			ErrorMessage: "boom", OccurredAt: clk.Now()}
	}
	if err := db.InsertFailures(ctx, []*Failure{mk(1, 1, "A"), mk(2, 1, "A")}); err != nil {
		t.Fatal(err)
	}
	candidates := func() []*Failure {
		return []*Failure{
			mk(1, 1, "A"),                // captured already
			mk(1, 2, "A"),                // lost
			mk(2, 1, "B"),                // another job that had id 2 (a restored queue): its own row
			mk(3, 1, "A"), mk(3, 1, "A"), // one attempt given twice
		}
	}
	missing, err := db.MissingFailures(ctx, candidates())
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 4 || missing[0].JobID != 1 || missing[0].Attempt != 2 {
		t.Fatalf("missing %+v, want job 1 attempt 2, job 2 of class B and job 3 (twice)", missing)
	}
	// Two passes at once: the rows are made once between them.
	var wg sync.WaitGroup
	got := make([][]*Failure, 2)
	for i := range got {
		wg.Go(func() {
			var err error
			if got[i], err = db.InsertRecoveredFailures(ctx, candidates()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(got[0]) + len(got[1]); n != 3 {
		t.Fatalf("the passes inserted %d and %d rows, want 3 in all", len(got[0]), len(got[1]))
	}
	for _, fs := range got {
		for _, f := range fs {
			back, err := db.FailureByID(ctx, f.ID)
			if err != nil || !back.Recovered || back.JobID != f.JobID || back.Attempt != f.Attempt {
				t.Errorf("row %d: %+v %v", f.ID, back, err)
			}
		}
	}
	if again, err := db.InsertRecoveredFailures(ctx, candidates()); err != nil || len(again) != 0 {
		t.Errorf("a third pass inserted %d rows, %v", len(again), err)
	}
	if n, _, _ := db.CountFailures(ctx, FailureFilter{}); n != 5 {
		t.Errorf("%d failures, want 5", n)
	}
	if f, _ := db.FailureByID(ctx, 1); f.Recovered {
		t.Error("a captured failure reads as recovered")
	}
	// Invalid: nothing written.
	if _, err := db.InsertRecoveredFailures(ctx, []*Failure{mk(9, 1, "A"), {JobID: 10}}); err == nil {
		t.Error("an invalid failure was accepted")
	}
	if missing, _ := db.MissingFailures(ctx, []*Failure{mk(9, 1, "A")}); len(missing) != 1 {
		t.Error("a refused batch wrote a row")
	}
}
