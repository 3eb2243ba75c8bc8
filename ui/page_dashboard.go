package ui

import (
	"net/http"
	"slices"

	"github.com/julienschmidt/httprouter"
)

// fragmentPanels maps a page fragment to the snapshot panels it shows.
var fragmentPanels = map[string][]string{"banner": {"schedule"}, "quiet": {}}

// panelParam returns the fragment a live update asks for (?panel=name),
// or "" for the whole page; ok is false for a name the page has not.
func panelParam(r *http.Request, names ...string) (string, bool) {
	p := r.URL.Query().Get("panel")
	if p == "" {
		return "", true
	}
	return p, p == "quiet" || slices.Contains(names, p)
}

// dashboardPage serves /admin/background_jobs: the DashboardSnapshot, or
// one panel of it (?panel=name) for a live update.
func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	panel, ok := panelParam(r, append(panelNames(), "banner")...)
	if !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	names := panelNames()
	if panel != "" {
		names = []string{panel}
		if p, ok := fragmentPanels[panel]; ok {
			names = p
		}
	}
	var snap *DashboardSnapshot
	if len(names) > 0 {
		snap = s.Snapshot(r.Context(), names...)
	} else {
		snap = &DashboardSnapshot{}
	}
	frag := ""
	if panel != "" {
		frag = "panel-" + panel
	}
	s.render(w, r, http.StatusOK, "dashboard", frag, pageData{Title: "Dashboard", D: snap})
}
