package ui

import (
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// Sizes of the accounts screen.
const (
	accountsShown = 500
	profilesShown = 50 // profiles a page of the profiles table
)

// accountsPageData is the accounts screen's own data.
type accountsPageData struct {
	Accounts      []accountRow
	Profiles      []*data.Profile
	ProfilesTotal int
	ProfilesPage  pager
	Error         string
}

// pager is a page of a table paged by the server: rows From to To (from
// 1) of Total, and the numbers of the pages before and after (0: none).
type pager struct {
	From, To, Total int
	Prev, Next      int
}

func newPager(page, size, shown, total int) pager {
	p := pager{Total: total}
	if shown > 0 {
		p.From, p.To = (page-1)*size+1, (page-1)*size+shown
	}
	if page > 1 {
		p.Prev = page - 1
	}
	if page*size < total {
		p.Next = page + 1
	}
	return p
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

// maxProfilesPage bounds ?profiles_page= (an offset SQLite walks).
const maxProfilesPage = 100_000

// accountsPage serves /admin/accounts: the accounts with their automation
// switches and continuous-processing state, and the profiles table, paged
// (?profiles_page=N, newest updated first), which profiles_table_changed
// refreshes in place on the page the operator is on.
func (s *Server) accountsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	panel, ok := panelParam(r, "accounts", "profiles")
	if !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	pageNo := 1
	if v := r.URL.Query().Get("profiles_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxProfilesPage {
			s.writeError(w, r, malformed("profiles_page", "want a page number from 1 to %d (got %q)", maxProfilesPage, v))
			return
		}
		pageNo = n
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
			f := data.ProfileFilter{Limit: profilesShown, Offset: (pageNo - 1) * profilesShown}
			if d.Profiles, d.ProfilesTotal, err = db.FindProfiles(ctx, f); err != nil {
				s.log.Error("accounts page: profiles", "err", err)
				_, _, d.Error = classify(err)
			}
			d.ProfilesPage = newPager(pageNo, profilesShown, len(d.Profiles), d.ProfilesTotal)
		}
	}
	frag := ""
	if panel != "" {
		frag = "panel-" + panel
	}
	s.render(w, r, http.StatusOK, "accounts", frag, pageData{Title: "Accounts", D: d})
}
