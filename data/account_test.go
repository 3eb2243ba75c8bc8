package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestAccounts(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	var accs []*Account
	for i := range 25 {
		a := &Account{Username: fmt.Sprintf("acct%02d", i), ContinuousProcessing: i%2 == 0, StoryAutoReply: i%3 == 0}
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		accs = append(accs, a)
	}
	if err := db.CreateAccount(ctx, &Account{Username: "acct00"}); err == nil {
		t.Fatal("duplicate username accepted")
	}
	if err := db.CreateAccount(ctx, &Account{Username: "x", Settings: json.RawMessage(`[1]`)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("array settings = %v", err)
	}

	// Ascending-id batches cover every account once.
	var seen []int64
	for after := int64(0); ; {
		batch, err := db.AccountsAfter(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, a := range batch {
			seen = append(seen, a.ID)
		}
		after = batch[len(batch)-1].ID
	}
	if len(seen) != 25 || seen[0] != accs[0].ID || seen[24] != accs[24].ID {
		t.Fatalf("batches saw %v", seen)
	}

	a := accs[3]
	a.FeedAutoEngagement, a.Settings = true, json.RawMessage(`{"feed_sync_interval":"2h"}`)
	clk.Add(time.Minute)
	if err := db.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := db.AccountByID(ctx, a.ID)
	if err != nil || !got.FeedAutoEngagement || string(got.Settings) != `{"feed_sync_interval":"2h"}` || !got.UpdatedAt.Equal(clk.Now()) || got.CreatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("updated account = %+v, %v", got, err)
	}
	if err := db.UpdateAccount(ctx, &Account{ID: 999, Username: "ghost"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing = %v", err)
	}

	// Feed sync scheduling: never-set and past-due accounts with continuous
	// processing are due, oldest first.
	now := clk.Now()
	for i, acc := range accs {
		if i >= 6 {
			if err := db.SetNextFeedSync(ctx, acc.ID, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.SetNextFeedSync(ctx, accs[4].ID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueFeedSyncs(ctx, now, 100)
	if err != nil {
		t.Fatal(err)
	}
	var dueIDs []int64
	for _, d := range due {
		dueIDs = append(dueIDs, d.ID)
	}
	want := []int64{accs[0].ID, accs[2].ID, accs[4].ID} // never set (NULL) sorts first, then by time
	if fmt.Sprint(dueIDs) != fmt.Sprint(want) {
		t.Fatalf("due = %v, want %v", dueIDs, want)
	}
	if err := db.RecordSync(ctx, accs[0].ID, now, "ok: 3 pages"); err != nil {
		t.Fatal(err)
	}
	got, _ = db.AccountByID(ctx, accs[0].ID)
	if got.LastSyncResult != "ok: 3 pages" || !got.LastSyncAt.Equal(now) {
		t.Fatalf("sync record = %+v", got)
	}
	if err := db.SetNextFeedSync(ctx, 999, now); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetNextFeedSync(missing) = %v", err)
	}
	if _, err := db.AccountsAfter(ctx, 0, 0); err == nil {
		t.Fatal("AccountsAfter accepted limit 0")
	}
}

func TestProfilesUpsertAndFind(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	a := &Account{Username: "owner"}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	refreshed := clk.Now()
	ps := []*Profile{
		{AccountID: a.ID, Username: "alice", DisplayName: "Alice", FollowersCount: 500, Following: true, LastRefreshedAt: refreshed},
		{AccountID: a.ID, Username: "bob", FollowersCount: 20, FollowedBy: true, AvatarURL: "https://example.invalid/b.png", LastRefreshedAt: refreshed},
		{AccountID: a.ID, Username: "carol"},
	}
	if err := db.UpsertProfiles(ctx, ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == 0 {
			t.Fatal("profile id not set")
		}
	}
	clk.Add(time.Minute)
	// A follow-list page knows only usernames: it must not wipe what a
	// refresh stored, nor clear any flag.
	page := []*Profile{{AccountID: a.ID, Username: "alice", FollowedBy: true}, {AccountID: a.ID, Username: "bob"}}
	if err := db.UpsertProfiles(ctx, page); err != nil {
		t.Fatal(err)
	}
	if page[0].ID != ps[0].ID {
		t.Fatal("upsert created a second alice")
	}
	alice, _ := db.ProfileByID(ctx, ps[0].ID)
	if alice.DisplayName != "Alice" || alice.FollowersCount != 500 || !alice.Following || !alice.FollowedBy || !alice.LastRefreshedAt.Equal(refreshed) {
		t.Fatalf("alice after a partial page = %+v", alice)
	}
	bob, _ := db.ProfileByID(ctx, ps[1].ID)
	if !bob.FollowedBy || bob.AvatarURL == "" || bob.FollowersCount != 20 {
		t.Fatalf("bob after a partial page = %+v", bob)
	}
	// A refresh replaces the counts.
	if err := db.UpsertProfiles(ctx, []*Profile{{AccountID: a.ID, Username: "bob", FollowersCount: 21, FollowingCount: 3, LastRefreshedAt: clk.Now()}}); err != nil {
		t.Fatal(err)
	}
	bob, _ = db.ProfileByID(ctx, ps[1].ID)
	if bob.FollowersCount != 21 || bob.FollowingCount != 3 {
		t.Fatalf("bob after refresh = %+v", bob)
	}

	yes := true
	got, total, err := db.FindProfiles(ctx, ProfileFilter{AccountID: a.ID, FollowedBy: &yes, Sort: ProfilesByUsername})
	if err != nil || total != 2 || got[0].Username != "alice" || got[1].Username != "bob" {
		t.Fatalf("followed-by = %d %v", total, err)
	}
	got, total, _ = db.FindProfiles(ctx, ProfileFilter{Q: "ALI"})
	if total != 1 || got[0].Username != "alice" {
		t.Fatalf("q=ALI found %d", total)
	}
	got, _, _ = db.FindProfiles(ctx, ProfileFilter{AccountID: a.ID, Sort: ProfilesByFollowers, Limit: 1})
	if len(got) != 1 || got[0].Username != "alice" {
		t.Fatalf("most followed = %+v", got)
	}
	if _, _, err := db.FindProfiles(ctx, ProfileFilter{Sort: "random"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad sort = %v", err)
	}
	if err := db.UpsertProfiles(ctx, []*Profile{{AccountID: 999, Username: "x"}}); err == nil {
		t.Fatal("profile of a missing account accepted")
	}
	if _, err := db.ProfileByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ProfileByID(missing) = %v", err)
	}
}
