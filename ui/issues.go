package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// issueJSON is an issue as the API shows it; times are null when unset and
// last_context is the JSON the latest occurrence left (null when none).
type issueJSON struct {
	ID            int64           `json:"id"`
	Fingerprint   string          `json:"fingerprint"`
	Source        string          `json:"source"`
	Kind          string          `json:"kind"`
	Title         string          `json:"title"`
	Class         string          `json:"class"`
	Queue         string          `json:"queue"`
	Occurrences   int64           `json:"occurrences"`
	FirstSeen     stamp           `json:"first_seen"`
	LastSeen      stamp           `json:"last_seen"`
	LastContext   json.RawMessage `json:"last_context"`
	Status        string          `json:"status"`
	ResolvedAt    stamp           `json:"resolved_at"`
	ResolvedBy    *string         `json:"resolved_by"`
	ReopenedCount int             `json:"reopened_count"`
}

// issueView builds an issue's JSON.
func issueView(is *data.Issue) issueJSON {
	v := issueJSON{ID: is.ID, Fingerprint: is.Fingerprint, Source: string(is.Source), Kind: is.Kind, Title: is.Title,
		Class: is.Class, Queue: is.Queue, Occurrences: is.Occurrences, FirstSeen: stamp(is.FirstSeen),
		LastSeen: stamp(is.LastSeen), LastContext: is.LastContext, Status: string(is.Status),
		ResolvedAt: stamp(is.ResolvedAt), ReopenedCount: is.ReopenedCount}
	if len(v.LastContext) == 0 {
		v.LastContext = json.RawMessage("null")
	}
	if is.ResolvedBy != "" {
		by := string(is.ResolvedBy)
		v.ResolvedBy = &by
	}
	return v
}

// issuePageJSON answers GET /api/v1/issues, in Tabulator's remote shape.
type issuePageJSON struct {
	LastPage int         `json:"last_page"`
	Total    int         `json:"total"`
	Data     []issueJSON `json:"data"`
}

// listIssues serves GET /api/v1/issues?status=open|resolved&source=&page=&size=,
// most recently seen first.
func (s *Server) listIssues(r *http.Request, _ httprouter.Params) (int, any, error) {
	db, err := s.failuresDB()
	if err != nil {
		return 0, nil, err
	}
	f, err := parseIssueQuery(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	is, total, err := db.FindIssues(r.Context(), f)
	if err != nil {
		return 0, nil, dataError(err, "issue")
	}
	out := issuePageJSON{Total: total, LastPage: max(1, (total+f.Limit-1)/f.Limit), Data: make([]issueJSON, 0, len(is))}
	for _, i := range is {
		out.Data = append(out.Data, s.issueOut(issueView(i)))
	}
	return http.StatusOK, out, nil
}

// parseIssueQuery reads GET /api/v1/issues' parameters: status (open or
// resolved), source (an issue source), page and size (1-based, size at most
// 1000, default 50). Anything else is a client error naming the parameter.
func parseIssueQuery(q url.Values) (data.IssueFilter, error) {
	var f data.IssueFilter
	page, size := 1, 50
	keys := make([]string, 0, len(q))
	for key := range q {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		vs := q[key]
		if len(vs) != 1 {
			return f, malformed(key, "given %d times: give it once", len(vs))
		}
		v := vs[0]
		switch key {
		case "status":
			if v != string(data.IssueOpen) && v != string(data.IssueResolved) {
				return f, malformed(key, "want open or resolved, got %q", v)
			}
			f.Status = data.IssueStatus(v)
		case "source":
			if !data.IssueSource(v).Valid() {
				return f, malformed(key, "want job_failure, queue_health, ai_outage or scheduler, got %q", v)
			}
			f.Source = data.IssueSource(v)
		case "page", "size":
			hi := maxTabulatorPage
			if key == "size" {
				hi = 1000
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > hi {
				return f, malformed(key, "want a whole number from 1 to %d, got %q", hi, v)
			}
			if key == "page" {
				page = n
			} else {
				size = n
			}
		default:
			return f, malformed(key, "unknown parameter (want status, source, page or size)")
		}
	}
	if page > 1 && (page-1) > maxTabulatorPage/size {
		return f, malformed("page", "too far: narrow the filter instead")
	}
	f.Offset, f.Limit = (page-1)*size, size
	return f, nil
}

// resolveIssue serves POST /api/v1/issues/{id}/resolve: an operator marks
// the issue resolved; its next occurrence reopens it.
func (s *Server) resolveIssue(r *http.Request, ps httprouter.Params) (int, any, error) {
	db, err := s.failuresDB()
	if err != nil {
		return 0, nil, err
	}
	if s.cfg.IssueTracker == nil {
		return 0, nil, &fieldError{kind: errUnavailable, Msg: "this server does not resolve issues"}
	}
	id, err := idParam(ps)
	if err != nil {
		return 0, nil, err
	}
	if err := s.cfg.IssueTracker.Resolve(r.Context(), id); err != nil {
		return 0, nil, dataError(err, "issue")
	}
	is, err := db.IssueByID(r.Context(), id)
	if err != nil {
		return 0, nil, dataError(err, "issue")
	}
	return http.StatusOK, s.issueOut(issueView(is)), nil
}

// issueOut redacts an issue's last context.
func (s *Server) issueOut(v issueJSON) issueJSON {
	v.LastContext = s.redact.json(v.LastContext)
	return v
}
