package data

import (
	"testing"
	"time"
)

// TestUpsertIssueFirst: an event standing for several occurrences sets
// first_seen to the earliest of them, on create and on update.
func TestUpsertIssueFirst(t *testing.T) {
	t.Parallel()
	db, c := setup(t)
	t0 := c.Now()
	ev := IssueEvent{Fingerprint: "fp", Source: SourceJobFailure, Title: "x", At: t0.Add(time.Minute), First: t0, Count: 3}
	is, _, err := db.UpsertIssue(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if !is.FirstSeen.Equal(t0) || !is.LastSeen.Equal(t0.Add(time.Minute)) || is.Occurrences != 3 {
		t.Errorf("created %+v", is)
	}
	ev.At, ev.First = t0.Add(2*time.Minute), t0.Add(-time.Minute)
	if is, _, err = db.UpsertIssue(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if !is.FirstSeen.Equal(t0.Add(-time.Minute)) || !is.LastSeen.Equal(t0.Add(2*time.Minute)) || is.Occurrences != 6 {
		t.Errorf("updated %+v", is)
	}
	// A First after At is ignored.
	ev.At, ev.First, ev.Fingerprint = t0, t0.Add(time.Hour), "fp2"
	if is, _, err = db.UpsertIssue(t.Context(), ev); err != nil || !is.FirstSeen.Equal(t0) {
		t.Errorf("first after at: %+v %v", is, err)
	}
}
