package ui

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// Sizes of the accounts screen.
const (
	accountsShown = 500
	profilesShown = 100
)

// accountsPageData is the accounts screen's own data.
type accountsPageData struct {
	Accounts      []accountRow
	Profiles      []*data.Profile
	ProfilesTotal int
	Error         string
}

// accountRow is an account as GET /api/v1/accounts shows it, with its
// switches in the table's order.
type accountRow struct {
	accountJSON
	Switches []accountSwitch
}

// accountSwitch is one switch cell of the accounts table: its name is the
// field PATCH /api/v1/accounts/{id} takes.
type accountSwitch struct {
	ID   int64
	Name string
	On   bool
}

// accountSwitches are the table's switch columns.
var accountSwitches = []string{"enabled", "continuous_processing", "story_auto_reply", "feed_auto_engagement",
	"profile_scan", "follow_graph_sync", "avatar_sync", "profile_refresh"}

func newAccountRow(a *data.Account) accountRow {
	v := accountView(a)
	on := map[string]bool{"enabled": v.Enabled, "continuous_processing": v.ContinuousProcessing, "story_auto_reply": v.StoryAutoReply,
		"feed_auto_engagement": v.FeedAutoEngagement, "profile_scan": v.ProfileScan, "follow_graph_sync": v.FollowGraphSync,
		"avatar_sync": v.AvatarSync, "profile_refresh": v.ProfileRefresh}
	row := accountRow{accountJSON: v}
	for _, name := range accountSwitches {
		row.Switches = append(row.Switches, accountSwitch{ID: v.ID, Name: name, On: on[name]})
	}
	return row
}

// accountsPage serves /admin/accounts: the accounts with their automation
// switches and continuous-processing state, and the profiles table, which
// profiles_table_changed refreshes.
func (s *Server) accountsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	panel, ok := panelParam(r, "accounts", "profiles")
	if !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	var d accountsPageData
	db, err := s.accountsDB()
	if err != nil {
		_, _, d.Error = classify(err)
	} else {
		ctx := r.Context()
		if panel == "" || panel == "accounts" {
			as, err := db.AccountsAfter(ctx, 0, accountsShown)
			if err != nil {
				s.log.Error("accounts page", "err", err)
				_, _, d.Error = classify(err)
			}
			for _, a := range as {
				d.Accounts = append(d.Accounts, newAccountRow(a))
			}
		}
		if panel == "" || panel == "profiles" {
			if d.Profiles, d.ProfilesTotal, err = db.FindProfiles(ctx, data.ProfileFilter{Limit: profilesShown}); err != nil {
				s.log.Error("accounts page: profiles", "err", err)
				_, _, d.Error = classify(err)
			}
		}
	}
	frag := ""
	if panel != "" {
		frag = "panel-" + panel
	}
	s.render(w, r, http.StatusOK, "accounts", frag, pageData{Title: "Accounts", D: d})
}
