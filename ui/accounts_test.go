package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"conveyor/data"
)

type accountsRig struct {
	*rig
	db      *data.DB
	changed *atomic.Int64
}

func newAccountsRig(t *testing.T) *accountsRig {
	t.Helper()
	db := openTestDB(t)
	changed := new(atomic.Int64)
	r := newRig(t, rigOpts{cfg: func(c *Config) {
		c.AccountsConfig = AccountsConfig{AccountsDB: db, AccountsChanged: func() { changed.Add(1) }}
	}})
	return &accountsRig{rig: r, db: db, changed: changed}
}

// TestAccountsAPI: create, list with a cursor, patch; the JSON has the
// shape the /admin/accounts page is built on.
func TestAccountsAPI(t *testing.T) {
	t.Parallel()
	r := newAccountsRig(t)
	rp := r.call("POST", "/api/v1/accounts", `{"username":"ava","continuous_processing":true,"story_auto_reply":true}`)
	created := into[map[string]any](t, rp, http.StatusCreated)
	var keys []string
	for k := range created {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "avatar_sync continuous_processing created_at enabled feed_auto_engagement follow_graph_sync id last_feed_capture_at " +
		"last_sync_at last_sync_result next_feed_sync_at profile_refresh profile_scan story_auto_reply updated_at username"
	if strings.Join(keys, " ") != want {
		t.Fatalf("account keys:\n got  %s\n want %s", strings.Join(keys, " "), want)
	}
	if created["username"] != "ava" || created["enabled"] != true || created["continuous_processing"] != true ||
		created["profile_scan"] != false || created["next_feed_sync_at"] != nil || created["last_sync_result"] != "" {
		t.Fatalf("created %v", created)
	}
	if r.changed.Load() != 1 {
		t.Errorf("creating an account told the live stream %d times", r.changed.Load())
	}
	for i := range 4 {
		r.call("POST", "/api/v1/accounts", fmt.Sprintf(`{"username":"u%d","enabled":false}`, i))
	}
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		q := "/api/v1/accounts?size=2"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		page := into[accountsJSON](t, r.call("GET", q, ""), http.StatusOK)
		for _, a := range page.Accounts {
			names = append(names, a.Username)
		}
		if page.Next == nil {
			if pages != 2 {
				t.Fatalf("%d pages of two for five accounts", pages+1)
			}
			break
		}
		cursor = *page.Next
	}
	if strings.Join(names, ",") != "ava,u0,u1,u2,u3" {
		t.Fatalf("listed %v", names)
	}
	id := int64(created["id"].(float64))
	patched := into[accountJSON](t, r.call("PATCH", fmt.Sprintf("/api/v1/accounts/%d", id), `{"enabled":false,"profile_scan":true}`), http.StatusOK)
	if patched.Enabled || !patched.ProfileScan || !patched.StoryAutoReply || patched.Username != "ava" {
		t.Fatalf("patched %+v (switches left out stay as they were)", patched)
	}
	if a, _ := r.db.AccountByID(t.Context(), id); !a.Disabled || !a.ProfileScan {
		t.Fatalf("stored %+v", a)
	}
	empty := into[map[string]json.RawMessage](t, newAccountsRig(t).call("GET", "/api/v1/accounts", ""), http.StatusOK)
	if string(empty["accounts"]) != "[]" || string(empty["next"]) != "null" {
		t.Errorf("no accounts: %v", empty)
	}
}

func TestAccountsErrors(t *testing.T) {
	t.Parallel()
	r := newAccountsRig(t)
	r.call("POST", "/api/v1/accounts", `{"username":"taken"}`)
	r.call("POST", "/api/v1/accounts", `{"username":"other"}`)
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"no username", "POST", "/api/v1/accounts", `{}`, 422, "username"},
		{"empty username", "POST", "/api/v1/accounts", `{"username":"  "}`, 422, "username"},
		{"username with a space", "POST", "/api/v1/accounts", `{"username":"a b"}`, 422, "username"},
		{"username too long", "POST", "/api/v1/accounts", `{"username":"` + strings.Repeat("x", 65) + `"}`, 422, "username"},
		{"taken", "POST", "/api/v1/accounts", `{"username":"taken"}`, 409, "username"},
		{"unknown switch", "POST", "/api/v1/accounts", `{"username":"n","auto_dm":true}`, 400, "auto_dm"},
		{"switch not a boolean", "POST", "/api/v1/accounts", `{"username":"n","avatar_sync":"yes"}`, 400, "avatar_sync"},
		{"rename onto a taken one", "PATCH", "/api/v1/accounts/2", `{"username":"taken"}`, 409, "username"},
		{"unknown account", "PATCH", "/api/v1/accounts/99", `{"enabled":true}`, 404, "id"},
		{"bad id", "PATCH", "/api/v1/accounts/x", `{}`, 400, "id"},
		{"bad cursor", "GET", "/api/v1/accounts?cursor=abc", ``, 400, "cursor"},
		{"bad size", "GET", "/api/v1/accounts?size=0", ``, 422, "size"},
		{"unknown parameter", "GET", "/api/v1/accounts?page=2", ``, 400, "page"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := r.changed.Load()
			wantError(t, r.call(c.method, c.path, c.body), c.status, c.field)
			if r.changed.Load() != before {
				t.Error("a refused request told the live stream")
			}
		})
	}
	if n, _ := r.db.CountAccounts(t.Context()); n != 2 {
		t.Errorf("%d accounts after refused requests", n)
	}
	// Without a database the endpoints are unavailable.
	bare := newRig(t, rigOpts{})
	wantError(t, bare.call("GET", "/api/v1/accounts", ""), 503, "")
}

// TestJobRecords: a job's outside calls and account actions, oldest first.
func TestJobRecords(t *testing.T) {
	t.Parallel()
	r := newAccountsRig(t)
	ctx := t.Context()
	if err := r.db.RecordJobCalls(ctx, []data.JobCall{
		{JobID: 7, AccountID: 3, Endpoint: "sandbox CaptureHomeFeedJob", Status: 200},
		{JobID: 7, Endpoint: "command /bin/true", Status: 75, Error: "busy", Output: "<b>busy</b>"},
		{JobID: 8, Endpoint: "other"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.db.RecordAccountActions(ctx, []data.AccountAction{{JobID: 7, AccountID: 3, Action: "download", Target: "p1"}}); err != nil {
		t.Fatal(err)
	}
	rp := r.call("GET", "/api/v1/jobs/7/records", "")
	got := into[jobRecordsJSON](t, rp, http.StatusOK)
	if len(got.Calls) != 2 || got.Calls[0].Endpoint != "sandbox CaptureHomeFeedJob" || *got.Calls[0].AccountID != 3 ||
		got.Calls[1].AccountID != nil || got.Calls[1].Output != "<b>busy</b>" || len(got.Actions) != 1 || got.Actions[0].Target != "p1" {
		t.Fatalf("records %+v", got)
	}
	if strings.Contains(string(rp.body), "<b>") {
		t.Errorf("job output is not escaped in JSON: %s", rp.body)
	}
	empty := into[map[string]json.RawMessage](t, r.call("GET", "/api/v1/jobs/99/records", ""), http.StatusOK)
	if string(empty["outside_calls"]) != "[]" || string(empty["account_actions"]) != "[]" {
		t.Errorf("a job without records: %v", empty)
	}
	wantError(t, r.call("GET", "/api/v1/jobs/x/records", ""), 400, "id")
}
