package ui

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// failuresPageData is the failures screen's own data: the issue groups of
// job failures, the filter choices, and the issue a link narrowed to.
type failuresPageData struct {
	Groups      *issuesPanelJSON
	GroupsError string
	Classes     []string
	Queues      []string
	Statuses    []string
	Fingerprint string
}

// failureGroups is how many issue groups the failures screen lists.
const failureGroups = 25

// failuresPage serves /admin/background_jobs/failures: the open issues of
// job failures on top (2,000 failures that are 3 errors read as 3 rows),
// the failure table below (its rows come from GET /api/v1/failures).
func (s *Server) failuresPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	panel, ok := panelParam(r, "groups")
	if !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	d := failuresPageData{Fingerprint: r.URL.Query().Get("fingerprint"), Classes: s.reg.Names(), Queues: s.topo.Queues()}
	for _, st := range []data.RetryStatus{data.RetryNone, data.RetryQueued, data.RetrySucceeded, data.RetrySuperseded, data.RetryRefused} {
		d.Statuses = append(d.Statuses, string(st))
	}
	if panel == "" || panel == "groups" {
		if db, err := s.failuresDB(); err != nil {
			_, _, d.GroupsError = classify(err)
		} else {
			is, total, err := db.FindIssues(r.Context(), data.IssueFilter{Status: data.IssueOpen, Source: data.SourceJobFailure, Limit: failureGroups})
			if err != nil {
				s.log.Error("failures page: issues", "err", err)
				_, _, d.GroupsError = classify(err)
			} else {
				d.Groups = &issuesPanelJSON{Open: total}
				for _, i := range is {
					d.Groups.Issues = append(d.Groups.Issues, s.issueOut(issueView(i)))
				}
			}
		}
	}
	frag := ""
	if panel != "" {
		frag = "panel-" + panel
	}
	s.render(w, r, http.StatusOK, "failures", frag, pageData{Title: "Failures", D: d})
}
