package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

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
	// Backup brings the replica and the queue snapshot up to date now
	// (POST /api/v1/backup); nil when replication is off.
	Backup func(ctx context.Context) (BackupReport, error)
}

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
	api := func(method, path string, h apiFunc) Route {
		return Route{Method: method, Path: path, Auth: true, handle: s.api(h)}
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

// tabulatorKey matches sort[i][field|dir] and filter[i][field|type|value],
// with an optional trailing [] or [k] on a filter's value (a list, for in).
var tabulatorKey = regexp.MustCompile(`^(sort|filter)\[(\d{1,2})\]\[(field|dir|type|value)\](\[\d{0,3}\])?$`)

// tabulatorOps maps Tabulator's filter types to the store's operators.
var tabulatorOps = map[string]data.Op{
	"=": data.OpEq, "!=": data.OpNe, "like": data.OpLike, "<": data.OpLt, "<=": data.OpLe,
	">": data.OpGt, ">=": data.OpGe, "in": data.OpIn,
}

// tabulatorTypes are the filter types field f takes: the operators the
// store offers clients on it (data.Field.Offered, the one whitelist), as
// Tabulator names them. None for an unknown field.
func tabulatorTypes(f data.Field) []string {
	var types []string
	for _, op := range f.Offered() {
		for typ, o := range tabulatorOps {
			if o == op {
				types = append(types, typ)
			}
		}
	}
	return types
}

type sortParam struct{ field, dir string }

type filterParam struct {
	field, typ string
	value      []string       // one value, or the list of an in
	list       bool           // value came as value[] or value[k]
	indexed    map[int]string // value[k], put in order of k at the end
}

// parseTabulator reads Tabulator's remote pagination, sort and filter
// parameters and the free-text q into a failure filter:
//
//	page, size                          1-based page and its size (default 1 and 50, size at most 1000)
//	sort[i][field], sort[i][dir]        sort keys in order of i; dir asc (default) or desc
//	filter[i][field], filter[i][type]   conditions, all of which must hold; types =, !=, like,
//	filter[i][value]                    <, <=, >, >=, in (with filter[i][value][] repeated)
//	q                                   words that must each appear in the class, queue, error message or args
//
// Fields and types are whitelisted (data.Field.Offered); anything else —
// another parameter, a repeated one, an index out of range, an unknown
// field or type, a value of the wrong kind — is a client error naming the
// parameter. Values are handed to the store as values, which binds them:
// nothing of the request becomes SQL.
func parseTabulator(q url.Values) (data.FailureFilter, error) {
	var ff data.FailureFilter
	page, size := 1, defaultFailureRow
	sorts := map[int]*sortParam{}
	filters := map[int]*filterParam{}
	one := func(key string, vs []string) (string, error) {
		if len(vs) != 1 {
			return "", malformed(key, "given %d times: give it once", len(vs))
		}
		return vs[0], nil
	}
	// Keys in order, so that of several mistakes the same one is named.
	keys := make([]string, 0, len(q))
	for key := range q {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		vs := q[key]
		switch key {
		case "page", "size":
			v, err := one(key, vs)
			if err != nil {
				return ff, err
			}
			hi := maxTabulatorPage
			if key == "size" {
				hi = data.MaxFailureLimit
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > hi {
				return ff, malformed(key, "want a whole number from 1 to %d, got %q", hi, v)
			}
			if key == "page" {
				page = n
			} else {
				size = n
			}
			continue
		case "q":
			v, err := one(key, vs)
			if err != nil {
				return ff, err
			}
			ff.Q = v
			continue
		}
		m := tabulatorKey.FindStringSubmatch(key)
		if m == nil {
			return ff, malformed(key, "unknown parameter (want page, size, q, sort[i][field|dir] or filter[i][field|type|value])")
		}
		i, _ := strconv.Atoi(m[2])
		part, list := m[3], m[4] != ""
		if m[1] == "sort" {
			if i >= maxSortKeys || part == "type" || part == "value" || list {
				return ff, malformed(key, "unknown parameter (want sort[0..%d][field|dir])", maxSortKeys-1)
			}
			v, err := one(key, vs)
			if err != nil {
				return ff, err
			}
			sp := sorts[i]
			if sp == nil {
				sp = &sortParam{}
				sorts[i] = sp
			}
			if part == "field" {
				sp.field = v
			} else {
				sp.dir = v
			}
			continue
		}
		if i >= maxFilters || part == "dir" || (list && part != "value") {
			return ff, malformed(key, "unknown parameter (want filter[0..%d][field|type|value])", maxFilters-1)
		}
		fp := filters[i]
		if fp == nil {
			fp = &filterParam{}
			filters[i] = fp
		}
		if part == "value" && list {
			if len(fp.value) > 0 && !fp.list {
				return ff, malformed(key, "give the value either once or as a list, not both")
			}
			fp.list = true
			if m[4] == "[]" {
				if len(fp.indexed) > 0 {
					return ff, malformed(key, "give the list either as value[] or as value[0], value[1], …, not both")
				}
				fp.value = append(fp.value, vs...)
				continue
			}
			v, err := one(key, vs)
			if err != nil {
				return ff, err
			}
			if len(fp.value) > 0 {
				return ff, malformed(key, "give the list either as value[] or as value[0], value[1], …, not both")
			}
			k, _ := strconv.Atoi(strings.Trim(m[4], "[]"))
			if fp.indexed == nil {
				fp.indexed = map[int]string{}
			}
			if _, dup := fp.indexed[k]; dup {
				return ff, malformed(key, "list index %d given twice", k)
			}
			fp.indexed[k] = v
			continue
		}
		v, err := one(key, vs)
		if err != nil {
			return ff, err
		}
		switch part {
		case "field":
			fp.field = v
		case "type":
			fp.typ = v
		default:
			if fp.list {
				return ff, malformed(key, "give the value either once or as a list, not both")
			}
			fp.value = []string{v}
		}
	}

	for _, i := range sortedKeys(sorts) {
		sp := sorts[i]
		fieldKey, dirKey := fmt.Sprintf("sort[%d][field]", i), fmt.Sprintf("sort[%d][dir]", i)
		f := data.Field(sp.field)
		if len(f.Offered()) == 0 {
			return ff, malformed(fieldKey, "unknown field %q (want one of %s)", sp.field, failureFieldList(false))
		}
		if !f.Sortable() {
			return ff, malformed(fieldKey, "cannot sort by %s (sortable: %s)", f, failureFieldList(true))
		}
		desc := false
		switch strings.ToLower(sp.dir) {
		case "", "asc":
		case "desc":
			desc = true
		default:
			return ff, malformed(dirKey, "want asc or desc, got %q", sp.dir)
		}
		ff.Sort = append(ff.Sort, data.SortKey{Field: f, Desc: desc, Param: fieldKey})
	}
	for _, i := range sortedKeys(filters) {
		fp := filters[i]
		for _, k := range sortedKeys(fp.indexed) {
			fp.value = append(fp.value, fp.indexed[k])
		}
		fieldKey, typeKey, valueKey := fmt.Sprintf("filter[%d][field]", i), fmt.Sprintf("filter[%d][type]", i), fmt.Sprintf("filter[%d][value]", i)
		f := data.Field(fp.field)
		allowed := tabulatorTypes(f)
		if len(allowed) == 0 {
			return ff, malformed(fieldKey, "unknown field %q (want one of %s)", fp.field, failureFieldList(false))
		}
		typ := fp.typ
		if typ == "" {
			typ = "="
		}
		if !slices.Contains(allowed, typ) {
			return ff, malformed(typeKey, "type %q is not allowed on %s (want one of %s)", typ, f, strings.Join(allowed, ", "))
		}
		if len(fp.value) == 0 {
			return ff, malformed(valueKey, "is required")
		}
		c := data.Cond{Field: f, Op: tabulatorOps[typ], Param: valueKey}
		switch {
		case typ == "in":
			c.Value = fp.value
		case fp.list:
			return ff, malformed(valueKey, "a list of values is only taken by type in")
		default:
			c.Value = fp.value[0]
		}
		ff.Conds = append(ff.Conds, c)
	}
	if page > 1 && (page-1) > maxTabulatorPage/size {
		return ff, malformed("page", "too far: narrow the filter instead")
	}
	ff.Offset, ff.Limit = (page-1)*size, size
	if err := ff.Validate(); err != nil {
		return ff, filterError(err)
	}
	return ff, nil
}

// filterError turns the store's refusal of a filter into a client error
// naming the parameter.
func filterError(err error) error {
	var fe *data.FilterError
	if errors.As(err, &fe) {
		return malformed(fe.Param, "%s", fe.Reason)
	}
	return err
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func failureFieldList(sortable bool) string {
	var names []string
	for _, f := range data.FailureFields() {
		if !sortable || f.Sortable() {
			names = append(names, string(f))
		}
	}
	return strings.Join(names, ", ")
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
// null when absent. Args, Backtrace and ArgsTruncated are in the detail
// only; lists cut the error message to listMessageBytes.
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
	fs, total, err := db.FindFailures(r.Context(), ff)
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
	return http.StatusOK, failureView(f, true), nil
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
// next_after_id to go on.
type retryAllJSON struct {
	Examined int            `json:"examined"`
	Queued   int            `json:"queued"`
	Refused  int            `json:"refused"`
	Reasons  map[string]int `json:"reasons"`
	Errors   int            `json:"errors"`
	Next     int64          `json:"next_after_id"`
	More     bool           `json:"more"`
}

// retryFailures serves POST /api/v1/failures/retry: it retries the failures
// matching the same filter parameters as the list (in the query string or
// a form body; page, size and sort are ignored), in id order after
// after_id, at most RetryAllLimit of them per request.
func (s *Server) retryFailures(r *http.Request, _ httprouter.Params) (int, any, error) {
	rt, err := s.retrier()
	if err != nil {
		return 0, nil, err
	}
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return 0, nil, err
		}
		return 0, nil, malformed("", "cannot read the parameters: %v", err)
	}
	params := url.Values{}
	for k, v := range r.Form {
		params[k] = v
	}
	var after int64
	if vs, ok := params["after_id"]; ok {
		n, err := strconv.ParseInt(strings.Join(vs, ","), 10, 64)
		if err != nil || n < 0 {
			return 0, nil, malformed("after_id", "want a failure id (a whole number), got %q", strings.Join(vs, ","))
		}
		after = n
		delete(params, "after_id")
	}
	ff, err := parseTabulator(params)
	if err != nil {
		return 0, nil, err
	}
	res, err := rt.RetryMatching(r.Context(), ff, after, s.cfg.RetryAllLimit)
	if err != nil {
		return 0, nil, dataError(err, "failure")
	}
	out := retryAllJSON{Examined: res.Examined, Queued: res.Queued, Refused: res.Refused, Reasons: map[string]int{},
		Errors: res.Errors, Next: res.Next, More: res.More}
	for reason, n := range res.Reasons {
		out.Reasons[string(reason)] = n
	}
	return http.StatusOK, out, nil
}

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
		out.Data = append(out.Data, issueView(i))
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
	return http.StatusOK, issueView(is), nil
}
