package ui

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
	"conveyor/ops/failures"
)

// FailuresConfig is the failure pipeline's part of Config. Every field is
// optional: without FailuresDB the failures and issues endpoints answer 503,
// and without Retrier (or IssueTracker) the retry (or resolve) endpoints do.
type FailuresConfig struct {
	// FailuresDB holds the captured failures and the issues.
	FailuresDB *data.DB
	// Retrier retries failures (POST /api/v1/failures/{id}/retry and
	// POST /api/v1/failures/retry).
	Retrier *failures.Retrier
	// IssueTracker resolves issues for operators
	// (POST /api/v1/issues/{id}/resolve).
	IssueTracker *failures.Tracker
	// RetryAllLimit is the most failures one POST /api/v1/failures/retry
	// looks at (default failures.DefaultRetryAllLimit); the answer says where
	// to go on.
	RetryAllLimit int
	// QueryTimeout bounds one GET /api/v1/failures query
	// (DefaultFailureQueryTimeout); a query that takes longer is answered
	// 503, asking for a narrower filter.
	QueryTimeout time.Duration
	// Backup brings the replica and the queue snapshot up to date now
	// (POST /api/v1/backup); nil when replication is off.
	Backup func(ctx context.Context) (BackupReport, error)
}

// DefaultFailureQueryTimeout is FailuresConfig.QueryTimeout's default: a
// page of a million failures under any filter and sort the API takes is
// read in well under it (see data's BenchmarkFindFailures1M).
const DefaultFailureQueryTimeout = 5 * time.Second

// Limits of the Tabulator parameters.
const (
	maxTabulatorPage  = 1_000_000 // page numbers beyond it are refused
	maxSortKeys       = 4         // sort[0] … sort[3]
	maxFilters        = 16        // filter[0] … filter[15]
	listMessageBytes  = 300       // error messages in lists are cut to this
	defaultFailureRow = data.DefaultFailureLimit
)

// failureRoutes are the failures and issues endpoints.
func (s *Server) failureRoutes() []Route {
	api := func(method, path string, h endpointFunc) Route {
		return Route{Method: method, Path: path, Auth: true, handle: s.endpoint(h)}
	}
	return []Route{
		api(http.MethodGet, "/api/v1/failures", s.listFailures),
		api(http.MethodGet, "/api/v1/failures/:id", s.getFailure),
		api(http.MethodPost, "/api/v1/failures/:id/retry", s.retryFailure),
		api(http.MethodPost, "/api/v1/failures/retry", s.retryFailures),
		api(http.MethodGet, "/api/v1/issues", s.listIssues),
		api(http.MethodPost, "/api/v1/issues/:id/resolve", s.resolveIssue),
		api(http.MethodPost, "/api/v1/backup", s.backupNow),
	}
}

// retryJSON is a failure's retry state.
type retryJSON struct {
	Status        string  `json:"status"`
	Attempts      int     `json:"attempts"`
	LastRetriedAt stamp   `json:"last_retried_at"`
	JobID         *uint64 `json:"job_id"`
	Reason        string  `json:"reason"`
}

// failureJSON is a failure as the API shows it. Optional references are
// null when absent. Recovered is true for a row rebuilt from the queue's
// record of the attempt (failures.Reconciler). Args, Backtrace and
// ArgsTruncated are in the detail only; lists cut the error message to
// listMessageBytes.
type failureJSON struct {
	ID            int64           `json:"id"`
	JobID         uint64          `json:"job_id"`
	Class         string          `json:"class"`
	Queue         string          `json:"queue"`
	Kind          string          `json:"kind"`
	Retryable     bool            `json:"retryable"`
	ErrorClass    string          `json:"error_class"`
	ErrorMessage  string          `json:"error_message"`
	AccountID     *int64          `json:"account_id"`
	ProfileID     *int64          `json:"profile_id"`
	PipelineID    *int64          `json:"pipeline_id"`
	Step          string          `json:"step"`
	Attempt       int             `json:"attempt"`
	OccurredAt    stamp           `json:"occurred_at"`
	Fingerprint   string          `json:"fingerprint"`
	Retry         retryJSON       `json:"retry"`
	Recovered     bool            `json:"recovered"`
	Args          json.RawMessage `json:"args,omitempty"`
	ArgsTruncated *bool           `json:"args_truncated,omitempty"`
	Backtrace     *string         `json:"backtrace,omitempty"`
}

func optID(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

func optJob(v uint64) *uint64 {
	if v == 0 {
		return nil
	}
	return &v
}

// failureView builds a failure's JSON: the whole failure when detail is set,
// else a list row.
func failureView(f *data.Failure, detail bool) failureJSON {
	v := failureJSON{
		ID: f.ID, JobID: f.JobID, Class: f.Class, Queue: f.Queue, Kind: string(f.Kind),
		Retryable: f.Retryable, ErrorClass: f.ErrorClass, ErrorMessage: f.ErrorMessage,
		AccountID: optID(f.AccountID), ProfileID: optID(f.ProfileID), PipelineID: optID(f.PipelineID), Step: f.Step,
		Attempt: f.Attempt, OccurredAt: stamp(f.OccurredAt), Fingerprint: f.Fingerprint,
		Retry: retryJSON{Status: string(f.Retry.Status), Attempts: f.Retry.Attempts, LastRetriedAt: stamp(f.Retry.LastRetriedAt),
			JobID: optJob(f.Retry.JobID), Reason: f.Retry.Reason},
		Recovered: f.Recovered,
	}
	if !detail {
		v.ErrorMessage = cutText(f.ErrorMessage, listMessageBytes)
		return v
	}
	v.Args = f.Args
	if len(v.Args) == 0 {
		v.Args = json.RawMessage("null")
	}
	truncated := failures.ArgsTruncated(f.Args)
	v.ArgsTruncated = &truncated
	bt := f.Backtrace
	v.Backtrace = &bt
	return v
}

// cutText cuts s to at most n bytes on a character boundary, marking the cut.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// failurePageJSON answers GET /api/v1/failures in Tabulator's remote shape.
// Total is the store's count (a lower bound beyond its count cap or search
// window; see data.CountFailures).
type failurePageJSON struct {
	LastPage int           `json:"last_page"`
	Total    int           `json:"total"`
	Data     []failureJSON `json:"data"`
}

func (s *Server) failuresDB() (*data.DB, error) {
	if s.cfg.FailuresDB == nil {
		return nil, &fieldError{kind: errUnavailable, Msg: "this server does not record failures"}
	}
	return s.cfg.FailuresDB, nil
}

// dataError maps the store's errors to client errors; what is an id is
// named by what.
func dataError(err error, what string) error {
	var fe *data.FilterError
	switch {
	case errors.As(err, &fe):
		return malformed(fe.Param, "%s", fe.Reason)
	case errors.Is(err, data.ErrNotFound):
		return &fieldError{kind: errNoRoute, Field: "id", Msg: "no " + what + " has this id"}
	}
	return err
}

// listFailures serves GET /api/v1/failures (see parseTabulator).
func (s *Server) listFailures(r *http.Request, _ httprouter.Params) (int, any, error) {
	db, err := s.failuresDB()
	if err != nil {
		return 0, nil, err
	}
	ff, err := parseTabulator(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	limit := cmp.Or(s.cfg.QueryTimeout, DefaultFailureQueryTimeout)
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	fs, total, err := db.FindFailures(ctx, ff)
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		return 0, nil, &fieldError{kind: errUnavailable,
			Msg: fmt.Sprintf("the query took longer than %s: narrow the filter (a time range, a class, a queue) or sort by time", limit)}
	}
	if err != nil {
		return 0, nil, dataError(err, "failure")
	}
	out := failurePageJSON{Total: total, LastPage: max(1, (total+ff.Limit-1)/ff.Limit), Data: make([]failureJSON, 0, len(fs))}
	for _, f := range fs {
		out.Data = append(out.Data, failureView(f, false))
	}
	return http.StatusOK, out, nil
}

// idParam reads the :id parameter as a positive row id.
func idParam(ps httprouter.Params) (int64, error) {
	v := ps.ByName("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, malformed("id", "want an id (a positive whole number), got %q", v)
	}
	return id, nil
}

// getFailure serves GET /api/v1/failures/{id}.
func (s *Server) getFailure(r *http.Request, ps httprouter.Params) (int, any, error) {
	db, err := s.failuresDB()
	if err != nil {
		return 0, nil, err
	}
	id, err := idParam(ps)
	if err != nil {
		return 0, nil, err
	}
	f, err := db.FailureByID(r.Context(), id)
	if err != nil {
		return 0, nil, dataError(err, "failure")
	}
	v := failureView(f, true)
	v.Args = s.redact.json(v.Args)
	return http.StatusOK, v, nil
}

// retriedJSON answers a retry that was made.
type retriedJSON struct {
	FailureID int64  `json:"failure_id"`
	Status    string `json:"status"`
	JobID     uint64 `json:"job_id"`
	Revived   bool   `json:"revived"`
	Attempts  int    `json:"attempts"`
}

// refusedJSON answers a refused retry (409): the error shape plus the
// refusal's reason code (one of failures.RefusalReasons).
type refusedJSON struct {
	Error  string `json:"error"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (s *Server) retrier() (*failures.Retrier, error) {
	if s.cfg.Retrier == nil {
		return nil, &fieldError{kind: errUnavailable, Msg: "this server does not retry failures"}
	}
	return s.cfg.Retrier, nil
}

// retryFailure serves POST /api/v1/failures/{id}/retry.
func (s *Server) retryFailure(r *http.Request, ps httprouter.Params) (int, any, error) {
	rt, err := s.retrier()
	if err != nil {
		return 0, nil, err
	}
	id, err := idParam(ps)
	if err != nil {
		return 0, nil, err
	}
	res, err := rt.Retry(r.Context(), id)
	var re *failures.RefusedError
	switch {
	case errors.As(err, &re):
		return http.StatusConflict, refusedJSON{Error: "retry refused: " + re.Detail, Field: "id", Reason: string(re.Reason)}, nil
	case err != nil:
		return 0, nil, dataError(err, "failure")
	}
	return http.StatusOK, retriedJSON{FailureID: res.FailureID, Status: string(data.RetryQueued),
		JobID: res.JobID, Revived: res.Revived, Attempts: res.Attempts}, nil
}

// retryAllJSON answers POST /api/v1/failures/retry. Reasons counts the
// refusals by reason; when More is true, post again with after_id =
// next_after_id and until_id = until_id to go on.
type retryAllJSON struct {
	Examined int            `json:"examined"`
	Queued   int            `json:"queued"`
	Refused  int            `json:"refused"`
	Reasons  map[string]int `json:"reasons"`
	Errors   int            `json:"errors"`
	Next     int64          `json:"next_after_id"`
	Until    int64          `json:"until_id"`
	More     bool           `json:"more"`
}

// retryFailures serves POST /api/v1/failures/retry: it retries the failures
// matching the same filter parameters as the list (page, size and sort are
// ignored), in id order after after_id and up to until_id, at most
// RetryAllLimit of them per request. The parameters come in the query
// string, a form body or a JSON body (retryAllBody); a body of another type
// is refused with 415, so that a filter is never dropped and the action
// widened to every failure.
//
// until_id is the highest failure id the walk covers: the first request
// leaves it out and the answer says it; going on (after_id > 0) needs it
// back, or the walk would take in the failures its own retries caused.
func (s *Server) retryFailures(r *http.Request, _ httprouter.Params) (int, any, error) {
	rt, err := s.retrier()
	if err != nil {
		return 0, nil, err
	}
	params, err := retryAllParams(r)
	if err != nil {
		return 0, nil, err
	}
	var after, until int64
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"after_id", &after}, {"until_id", &until}} {
		vs, ok := params[p.name]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.Join(vs, ","), 10, 64)
		if err != nil || n < 0 {
			return 0, nil, malformed(p.name, "want a failure id (a whole number), got %q", strings.Join(vs, ","))
		}
		*p.dst = n
		delete(params, p.name)
	}
	if after > 0 && until == 0 {
		return 0, nil, malformed("until_id", "is required with after_id: pass back the until_id of the previous answer")
	}
	ff, err := parseTabulator(params)
	if err != nil {
		return 0, nil, err
	}
	res, err := rt.RetryMatching(r.Context(), ff, after, until, s.cfg.RetryAllLimit)
	if err != nil {
		return 0, nil, dataError(err, "failure")
	}
	out := retryAllJSON{Examined: res.Examined, Queued: res.Queued, Refused: res.Refused, Reasons: map[string]int{},
		Errors: res.Errors, Next: res.Next, Until: res.Until, More: res.More}
	for reason, n := range res.Reasons {
		out.Reasons[string(reason)] = n
	}
	return http.StatusOK, out, nil
}

// retryAllBody is the JSON body POST /api/v1/failures/retry takes: the list's
// parameters as Tabulator sends them in JSON (page, size and sort are
// accepted and ignored), and where to go on.
type retryAllBody struct {
	Filter []struct {
		Field string          `json:"field"`
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"filter"`
	Sort []struct {
		Field string `json:"field"`
		Dir   string `json:"dir"`
	} `json:"sort"`
	Q       *string `json:"q"`
	Page    *int    `json:"page"`
	Size    *int    `json:"size"`
	AfterID *int64  `json:"after_id"`
	UntilID *int64  `json:"until_id"`
}

// retryAllParams gathers POST /api/v1/failures/retry's parameters: the query
// string's, and the body's when there is one (a form or JSON; any other
// type is a 415). A parameter given in both is given twice, which the
// parser refuses.
func retryAllParams(r *http.Request) (url.Values, error) {
	params := url.Values{}
	for k, v := range r.URL.Query() {
		params[k] = v
	}
	if r.ContentLength == 0 {
		return params, nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			var mb *http.MaxBytesError
			if errors.As(err, &mb) {
				return nil, err
			}
			return nil, malformed("", "cannot read the form: %v", err)
		}
		for k, v := range r.PostForm {
			params[k] = append(params[k], v...)
		}
		return params, nil
	case err == nil && mt == "application/json":
		var body retryAllBody
		if err := decodeBody(r.Body, &body, ""); err != nil {
			return nil, err
		}
		return body.merge(params)
	}
	return nil, &fieldError{kind: errMediaType, Field: "Content-Type",
		Msg: "send the filter in the query string, as application/x-www-form-urlencoded or as application/json"}
}

// merge adds the body's parameters to params under the list's names
// (filter[i][field], …).
func (b *retryAllBody) merge(params url.Values) (url.Values, error) {
	add := func(k, v string) { params[k] = append(params[k], v) }
	for i, f := range b.Filter {
		key := fmt.Sprintf("filter[%d]", i)
		add(key+"[field]", f.Field)
		if f.Type != "" {
			add(key+"[type]", f.Type)
		}
		v := bytes.TrimSpace(f.Value)
		if len(v) > 0 && v[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, malformed(key+"[value]", "want a value or a list of values")
			}
			for _, e := range list {
				s, err := jsonScalar(e)
				if err != nil {
					return nil, malformed(key+"[value]", "%v", err)
				}
				add(key+"[value][]", s)
			}
			continue
		}
		if len(v) == 0 {
			continue // no value: the parser says it is required
		}
		s, err := jsonScalar(v)
		if err != nil {
			return nil, malformed(key+"[value]", "%v", err)
		}
		add(key+"[value]", s)
	}
	for i, k := range b.Sort {
		key := fmt.Sprintf("sort[%d]", i)
		add(key+"[field]", k.Field)
		if k.Dir != "" {
			add(key+"[dir]", k.Dir)
		}
	}
	if b.Q != nil {
		add("q", *b.Q)
	}
	for _, n := range []struct {
		name string
		v    *int
	}{{"page", b.Page}, {"size", b.Size}} {
		if n.v != nil {
			add(n.name, strconv.Itoa(*n.v))
		}
	}
	for _, n := range []struct {
		name string
		v    *int64
	}{{"after_id", b.AfterID}, {"until_id", b.UntilID}} {
		if n.v != nil {
			add(n.name, strconv.FormatInt(*n.v, 10))
		}
	}
	return params, nil
}

// jsonScalar is a JSON string, number or boolean as the list's parameters
// spell it.
func jsonScalar(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", errors.New("want a string, a number or true/false")
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", errors.New("want a string, a number or true/false")
}
