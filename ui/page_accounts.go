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
	Accounts      []*data.Account
	Profiles      []*data.Profile
	ProfilesTotal int
	Error         string
}

// accountSwitch is one switch cell of the accounts table.
type accountSwitch struct {
	ID   int64
	Name string
	On   bool
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
	db, err := s.failuresDB()
	if err != nil {
		_, _, d.Error = classify(err)
	} else {
		ctx := r.Context()
		if panel == "" || panel == "accounts" {
			if d.Accounts, err = db.AccountsAfter(ctx, 0, accountsShown); err != nil {
				s.log.Error("accounts page", "err", err)
				_, _, d.Error = classify(err)
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
