package ui

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// jobRecordsJSON answers GET /api/v1/jobs/{id}/records: the outside calls
// a job made and the actions it took on accounts, oldest first (what the
// seed's job-details enricher links to a job). Both are capped per job and
// trimmed by age.
type jobRecordsJSON struct {
	Calls   []jobCallJSON   `json:"outside_calls"`
	Actions []jobActionJSON `json:"account_actions"`
}

type jobCallJSON struct {
	Endpoint  string `json:"endpoint"`
	Status    int    `json:"status"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error"`
	Output    string `json:"output"`
	AccountID *int64 `json:"account_id"`
	At        stamp  `json:"at"`
}

type jobActionJSON struct {
	Action    string `json:"action"`
	Target    string `json:"target"`
	Detail    string `json:"detail"`
	AccountID int64  `json:"account_id"`
	At        stamp  `json:"at"`
}

// jobRecordsRoutes is GET /api/v1/jobs/{id}/records (served from the
// accounts' database).
func (s *Server) jobRecordsRoutes() []Route {
	return []Route{{Method: http.MethodGet, Path: "/api/v1/jobs/:id/records", Auth: true, handle: s.endpoint(s.jobRecords)}}
}

func (s *Server) jobRecords(r *http.Request, ps httprouter.Params) (int, any, error) {
	id, err := jobID(ps)
	if err != nil {
		return 0, nil, err
	}
	db, err := s.accountsDB()
	if err != nil {
		return 0, nil, err
	}
	calls, err := db.JobCalls(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	acts, err := db.AccountActions(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	out := jobRecordsJSON{Calls: make([]jobCallJSON, 0, len(calls)), Actions: make([]jobActionJSON, 0, len(acts))}
	for _, c := range calls {
		out.Calls = append(out.Calls, callView(c))
	}
	for _, a := range acts {
		out.Actions = append(out.Actions, actionView(a))
	}
	return http.StatusOK, out, nil
}

func actionView(a data.AccountAction) jobActionJSON {
	return jobActionJSON{Action: a.Action, Target: a.Target, Detail: a.Detail, AccountID: a.AccountID, At: stamp(a.At)}
}

func callView(c data.JobCall) jobCallJSON {
	v := jobCallJSON{Endpoint: c.Endpoint, Status: c.Status, LatencyMS: c.Latency.Milliseconds(), Error: c.Error, Output: c.Output, At: stamp(c.At)}
	if c.AccountID != 0 {
		id := c.AccountID
		v.AccountID = &id
	}
	return v
}
