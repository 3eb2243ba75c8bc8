package data

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	a := &Account{Username: "a"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	c, err := db.Cursor(ctx, a.ID, CursorFollowers)
	if err != nil || c.Cursor != "" || c.StartedFromStart || !c.UpdatedAt.IsZero() || c.AccountID != a.ID || c.Kind != CursorFollowers {
		t.Fatalf("unsaved cursor = %+v, %v", c, err)
	}
	c = SyncCursor{AccountID: a.ID, Kind: CursorFollowers, Cursor: "QVFE123", StartedFromStart: true, StartedAt: clk.Now()}
	clk.Add(time.Second)
	if err := db.SetCursor(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Cursor(ctx, a.ID, CursorFollowers)
	if got.Cursor != "QVFE123" || !got.StartedFromStart || !got.StartedAt.Equal(c.StartedAt) || !got.UpdatedAt.Equal(clk.Now()) {
		t.Fatalf("saved cursor = %+v", got)
	}
	if err := db.SetCursor(ctx, SyncCursor{AccountID: 999, Kind: "x"}); err == nil {
		t.Fatal("cursor for a missing account accepted")
	}
	if err := db.SetCursor(ctx, SyncCursor{AccountID: a.ID}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cursor without kind = %v", err)
	}
}

// followPass runs one follow-graph pass over pages, as the sync job does:
// it resumes from the saved cursor, marks the profiles of each page, saves
// the next cursor, and completes the snapshot after the last page. stopAfter
// ends the run early (a partial run) after that many pages.
func followPass(t *testing.T, db *DB, clk *clock, acct int64, pages [][]string, stopAfter int) (cleared int64, err error) {
	t.Helper()
	ctx := t.Context()
	clk.Add(time.Second) // runs start at distinct times
	c, err := db.Cursor(ctx, acct, CursorFollowing)
	if err != nil {
		t.Fatal(err)
	}
	start := 0
	if c.Cursor == "" {
		c.StartedFromStart, c.StartedAt = true, clk.Now()
	} else {
		fmt.Sscanf(c.Cursor, "page-%d", &start)
	}
	for i := start; i < len(pages); i++ {
		if stopAfter == 0 {
			return 0, nil // the run ends; the cursor stays where it is
		}
		stopAfter--
		clk.Add(time.Second)
		var ps []*Profile
		for _, u := range pages[i] {
			ps = append(ps, &Profile{AccountID: acct, Username: u, Following: true})
		}
		if err := db.UpsertProfiles(ctx, ps); err != nil {
			t.Fatal(err)
		}
		c.Cursor = fmt.Sprintf("page-%d", i+1)
		if err := db.SetCursor(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return db.CompleteFollowSnapshot(ctx, acct, CursorFollowing)
}

func following(t *testing.T, db *DB, acct int64) map[string]bool {
	t.Helper()
	yes := true
	ps, _, err := db.FindProfiles(t.Context(), ProfileFilter{AccountID: acct, Following: &yes, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range ps {
		out[p.Username] = true
	}
	return out
}

func TestFollowSnapshotClearsOnlyAfterAFullPass(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	a := &Account{Username: "a"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	// First full pass: everyone on the pages is followed.
	if _, err := followPass(t, db, clk, a.ID, [][]string{{"u1", "u2"}, {"u3", "u4"}}, -1); err != nil {
		t.Fatal(err)
	}
	if got := following(t, db, a.ID); len(got) != 4 {
		t.Fatalf("after the first pass: %v", got)
	}

	// u2 and u4 unfollowed. A run that stops after one page is partial:
	// nothing is cleared.
	pages := [][]string{{"u1", "u3"}, {"u5"}}
	if _, err := followPass(t, db, clk, a.ID, pages, 1); err != nil {
		t.Fatal(err)
	}
	if got := following(t, db, a.ID); len(got) != 4 || !got["u2"] || !got["u4"] {
		t.Fatalf("a partial run changed flags: %v", got)
	}
	// The next run resumes mid-list; reaching the end completes a pass that
	// started from the start, so stale flags go.
	cleared, err := followPass(t, db, clk, a.ID, pages, -1)
	if err != nil || cleared != 2 {
		t.Fatalf("completing the pass cleared %d, %v; want 2", cleared, err)
	}
	if got := following(t, db, a.ID); len(got) != 3 || got["u2"] || got["u4"] || !got["u5"] {
		t.Fatalf("after the full pass: %v", got)
	}
	c, _ := db.Cursor(ctx, a.ID, CursorFollowing)
	if c.Cursor != "" || c.StartedFromStart {
		t.Fatalf("cursor after completion = %+v, want reset to the start", c)
	}

	// A pass that resumed from a cursor saved by an older, unfinished pass
	// that did not start from the start is partial: completing it clears
	// nothing and resets the cursor.
	if err := db.SetCursor(ctx, SyncCursor{AccountID: a.ID, Kind: CursorFollowing, Cursor: "page-1"}); err != nil {
		t.Fatal(err)
	}
	cleared, err = followPass(t, db, clk, a.ID, [][]string{{"u1"}, {"u9"}}, -1)
	if !errors.Is(err, ErrPartialSnapshot) || cleared != 0 {
		t.Fatalf("completing a partial pass = %d, %v; want ErrPartialSnapshot", cleared, err)
	}
	if got := following(t, db, a.ID); len(got) != 4 || !got["u3"] {
		t.Fatalf("a partial pass cleared flags: %v", got)
	}
	if c, _ := db.Cursor(ctx, a.ID, CursorFollowing); c.Cursor != "" {
		t.Fatalf("cursor after a partial completion = %+v, want the start", c)
	}
	if _, err := db.CompleteFollowSnapshot(ctx, a.ID, "likes"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kind = %v", err)
	}
}
