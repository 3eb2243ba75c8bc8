package data

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"conveyor/ops/fault"
)

// Field names a failure column a FailureFilter may filter or sort on. Only
// these constants are accepted; they double as the public parameter names
// (Tabulator's field names).
type Field string

// Filterable failure fields.
const (
	FieldID           Field = "id"
	FieldOccurredAt   Field = "occurred_at"
	FieldClass        Field = "class"
	FieldQueue        Field = "queue"
	FieldKind         Field = "kind"
	FieldErrorClass   Field = "error_class"
	FieldErrorMessage Field = "error_message"
	FieldAccountID    Field = "account_id"
	FieldProfileID    Field = "profile_id"
	FieldRetryStatus  Field = "retry_status"
	FieldRetryable    Field = "retryable"
	FieldAttempt      Field = "attempt"
	FieldJobID        Field = "job_id"
	FieldFingerprint  Field = "fingerprint"
)

// Op is a comparison a Cond applies.
type Op string

// Operators. Like matches a substring, case-insensitively for ASCII (its
// value is not a pattern: % and _ match themselves). In takes a slice.
const (
	OpEq   Op = "="
	OpNe   Op = "!="
	OpLike Op = "like"
	OpLt   Op = "<"
	OpLe   Op = "<="
	OpGt   Op = ">"
	OpGe   Op = ">="
	OpIn   Op = "in"
)

// Limits of a FailureFilter.
const (
	DefaultFailureLimit = 50   // page size when Limit is 0
	MaxFailureLimit     = 1000 // largest page
	// MaxFailureOffset is the deepest page start served: a page that deep
	// under a sort no index serves sorts every matching row, so deeper ones
	// are refused (narrow the filter instead).
	MaxFailureOffset = 100_000
	MaxFilterText    = 1000 // longest text value, in bytes
	MaxInValues      = 500  // most values of one in
	MaxQWords        = 8    // most words in Q
)

// Cond is one condition: Field Op Value. Value is converted to the field's
// type: a string, any integer, float64 holding an integer, or json.Number
// for numeric fields; a time.Time, RFC 3339 text, a 2006-01-02 date (UTC) or
// unix milliseconds for occurred_at; a bool or "true"/"false"/"1"/"0" for
// retryable; a slice of those for in. Param, when set, names the request
// parameter the condition came from and is what a *FilterError reports.
type Cond struct {
	Field Field
	Op    Op
	Value any
	Param string
}

// SortKey orders by one field. Param is as for Cond.
type SortKey struct {
	Field Field
	Desc  bool
	Param string
}

// FailureFilter selects failures: every Cond must hold (AND), and every word
// of Q must appear in the class, queue, error message or args. Values are
// always bound as parameters, never spliced into SQL.
//
// Conditions on indexed fields are exact and served by an index. Substring
// conditions — Q, and any condition on error_message — cannot use an index;
// they are evaluated over the newest Options.SearchWindow failures (by
// occurred_at) that match the other conditions, which bounds their cost.
// CountFailures says whether a count was cut by that window.
type FailureFilter struct {
	Conds  []Cond
	Q      string
	Sort   []SortKey // default: occurred_at descending
	Offset int
	Limit  int // default DefaultFailureLimit, at most MaxFailureLimit
}

type valueType int

const (
	vText valueType = iota
	vInt
	vTime
	vBool
	vKind
	vRetryStatus
)

type fieldSpec struct {
	typ      valueType
	dim      bool // a column of the failure_counts roll-up
	sortable bool
	window   bool // every condition on it is a substring-style scan
	nullable bool
	offered  []Op // what a client-facing filter offers (Field.Offered)
}

// The operator sets offered to clients, by the kind of field.
var (
	offerText = []Op{OpEq, OpNe, OpLike, OpIn}
	offerNum  = []Op{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpIn}
	offerEnum = []Op{OpEq, OpNe, OpIn}
)

// failureFields is the one whitelist of failure fields: what the store
// accepts (by value type), what it sorts by, and what a client-facing
// filter offers.
var failureFields = map[Field]fieldSpec{
	FieldID:           {typ: vInt, sortable: true, offered: offerNum},
	FieldOccurredAt:   {typ: vTime, sortable: true, offered: []Op{OpLt, OpLe, OpGt, OpGe}},
	FieldClass:        {typ: vText, dim: true, sortable: true, offered: offerText},
	FieldQueue:        {typ: vText, dim: true, sortable: true, offered: offerText},
	FieldKind:         {typ: vKind, dim: true, sortable: true, offered: offerEnum},
	FieldErrorClass:   {typ: vText, dim: true, sortable: true, offered: offerText},
	FieldErrorMessage: {typ: vText, window: true, offered: []Op{OpLike}},
	FieldAccountID:    {typ: vInt, sortable: true, nullable: true, offered: offerNum},
	FieldProfileID:    {typ: vInt, sortable: true, nullable: true, offered: offerNum},
	FieldRetryStatus:  {typ: vRetryStatus, dim: true, sortable: true, offered: offerEnum},
	FieldRetryable:    {typ: vBool, dim: true, offered: []Op{OpEq}},
	FieldAttempt:      {typ: vInt, sortable: true, offered: offerNum},
	FieldJobID:        {typ: vInt, sortable: true, offered: offerNum},
	FieldFingerprint:  {typ: vText, sortable: true, offered: offerText},
}

// FailureFields lists every field a FailureFilter accepts, in a stable order.
func FailureFields() []Field {
	return []Field{FieldID, FieldOccurredAt, FieldClass, FieldQueue, FieldKind, FieldErrorClass,
		FieldErrorMessage, FieldAccountID, FieldProfileID, FieldRetryStatus, FieldRetryable,
		FieldAttempt, FieldJobID, FieldFingerprint}
}

// Sortable reports whether f may be used in a SortKey.
func (f Field) Sortable() bool { return failureFields[f].sortable }

// Offered returns the operators a client-facing filter offers on f (the
// failures API's filter types), in a stable order, or nil when f is not a
// failure field. FindFailures accepts more (Like on a kind, Eq on a time):
// internal callers may use them, clients are offered these.
func (f Field) Offered() []Op { return slices.Clone(failureFields[f].offered) }

func (t valueType) ops() []Op {
	switch t {
	case vText:
		return []Op{OpEq, OpNe, OpLike, OpIn, OpLt, OpLe, OpGt, OpGe}
	case vInt:
		return []Op{OpEq, OpNe, OpIn, OpLt, OpLe, OpGt, OpGe}
	case vTime:
		return []Op{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe}
	case vBool:
		return []Op{OpEq, OpNe}
	default: // vKind, vRetryStatus
		return []Op{OpEq, OpNe, OpLike, OpIn}
	}
}

// Validate checks the filter as FindFailures does, without a database, and
// returns the *FilterError FindFailures would return, or nil.
func (ff FailureFilter) Validate() error {
	_, err := ff.compile()
	return err
}

// failureQuery is a compiled FailureFilter.
type failureQuery struct {
	where   []string // index-friendly conditions, unqualified columns
	args    []any
	dims    []string // the where conditions on roll-up columns
	dimArgs []any
	timeLo  int64 // the occurred_at conditions as [timeLo, timeHi) in unix ms
	timeHi  int64
	other   bool     // a where condition neither on a roll-up column nor a time bound
	subs    []string // windowed conditions, columns qualified with f.
	subArgs []any
	order   []orderTerm
	limit   int
	offset  int
}

type orderTerm struct {
	col  string
	desc bool
}

func (q *failureQuery) whereSQL() string {
	if len(q.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.where, " AND ")
}

func (q *failureQuery) orderSQL(prefix string) string {
	parts := make([]string, len(q.order))
	for i, t := range q.order {
		parts[i] = prefix + t.col
		if t.desc {
			parts[i] += " DESC"
		}
	}
	return " ORDER BY " + strings.Join(parts, ", ")
}

func paramOr(param string, field Field) string {
	if param != "" {
		return param
	}
	if field == "" {
		return "field"
	}
	return string(field)
}

// compile checks the filter against the whitelist and turns it into SQL
// fragments with bound arguments.
func (ff FailureFilter) compile() (*failureQuery, error) {
	q := &failureQuery{timeLo: math.MinInt64, timeHi: math.MaxInt64}
	for _, c := range ff.Conds {
		param := paramOr(c.Param, c.Field)
		spec, ok := failureFields[c.Field]
		if !ok {
			return nil, &FilterError{Param: param, Reason: fmt.Sprintf("unknown field %q", c.Field)}
		}
		if !allowed(spec.typ.ops(), c.Op) {
			return nil, &FilterError{Param: param, Reason: fmt.Sprintf("operator %q is not allowed on %s (use one of %s)", c.Op, c.Field, opList(spec.typ.ops()))}
		}
		col := string(c.Field)
		window := spec.window || (c.Op == OpLike && !spec.dim)
		if window {
			col = "f." + col
		}
		expr, args, err := condSQL(col, c, spec)
		if err != nil {
			return nil, &FilterError{Param: param, Reason: err.Error()}
		}
		if window {
			q.subs = append(q.subs, expr)
			q.subArgs = append(q.subArgs, args...)
			continue
		}
		q.where = append(q.where, expr)
		q.args = append(q.args, args...)
		switch {
		case spec.dim:
			q.dims = append(q.dims, expr)
			q.dimArgs = append(q.dimArgs, args...)
		case c.Field == FieldOccurredAt && c.Op != OpNe:
			q.narrowTime(c.Op, args[0].(int64))
		default:
			q.other = true
		}
	}

	if s := strings.TrimSpace(ff.Q); s != "" {
		if len(s) > MaxFilterText || !utf8.ValidString(s) {
			return nil, &FilterError{Param: "q", Reason: fmt.Sprintf("must be valid text of at most %d bytes", MaxFilterText)}
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, &FilterError{Param: "q", Reason: errLikeNUL.Error()}
		}
		words := strings.Fields(s)
		if len(words) > MaxQWords {
			return nil, &FilterError{Param: "q", Reason: fmt.Sprintf("at most %d words", MaxQWords)}
		}
		for _, w := range words {
			p := likePattern(w)
			q.subs = append(q.subs, `(f.class LIKE ? ESCAPE '\' OR f.queue LIKE ? ESCAPE '\' OR f.error_message LIKE ? ESCAPE '\' OR f.args LIKE ? ESCAPE '\')`)
			q.subArgs = append(q.subArgs, p, p, p, p)
		}
	}

	keys := ff.Sort
	if len(keys) == 0 {
		keys = []SortKey{{Field: FieldOccurredAt, Desc: true}}
	}
	seen := map[string]bool{}
	for _, k := range keys {
		spec, ok := failureFields[k.Field]
		if !ok {
			return nil, &FilterError{Param: paramOr(k.Param, k.Field), Reason: fmt.Sprintf("unknown sort field %q", k.Field)}
		}
		if !spec.sortable {
			return nil, &FilterError{Param: paramOr(k.Param, k.Field), Reason: fmt.Sprintf("cannot sort by %s", k.Field)}
		}
		if seen[string(k.Field)] {
			continue
		}
		seen[string(k.Field)] = true
		q.order = append(q.order, orderTerm{col: string(k.Field), desc: k.Desc})
	}
	// Ties follow the first key's direction so that one index serves the
	// whole ORDER BY, and id makes the order total (stable pages).
	for _, col := range []string{"occurred_at", "id"} {
		if !seen[col] {
			seen[col] = true
			q.order = append(q.order, orderTerm{col: col, desc: q.order[0].desc})
		}
	}

	switch {
	case ff.Limit < 0 || ff.Limit > MaxFailureLimit:
		return nil, &FilterError{Param: "limit", Reason: fmt.Sprintf("must be between 1 and %d", MaxFailureLimit)}
	case ff.Offset < 0:
		return nil, &FilterError{Param: "offset", Reason: "must not be negative"}
	case ff.Offset > MaxFailureOffset:
		return nil, &FilterError{Param: "offset", Reason: fmt.Sprintf("pages starting beyond row %d are not served: narrow the filter", MaxFailureOffset)}
	}
	q.limit = ff.Limit
	if q.limit == 0 {
		q.limit = DefaultFailureLimit
	}
	q.offset = ff.Offset
	return q, nil
}

// narrowTime intersects the time interval with one occurred_at bound.
// MaxInt64 stands for "no upper bound", and next saturates there.
func (q *failureQuery) narrowTime(op Op, v int64) {
	next := v + 1
	if v == math.MaxInt64 {
		next = v
	}
	lo, hi := q.timeLo, q.timeHi
	switch op {
	case OpEq:
		lo, hi = max(lo, v), min(hi, next)
	case OpGt:
		lo = max(lo, next)
	case OpGe:
		lo = max(lo, v)
	case OpLt:
		hi = min(hi, v)
	case OpLe:
		hi = min(hi, next)
	}
	q.timeLo, q.timeHi = lo, hi
}

func allowed(ops []Op, op Op) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func opList(ops []Op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}

// condSQL renders one condition on col.
func condSQL(col string, c Cond, spec fieldSpec) (string, []any, error) {
	switch c.Op {
	case OpLike:
		s, ok := c.Value.(string)
		if !ok {
			return "", nil, fmt.Errorf("like needs a text value, got %T", c.Value)
		}
		if len(s) > MaxFilterText || !utf8.ValidString(s) {
			return "", nil, fmt.Errorf("value must be valid text of at most %d bytes", MaxFilterText)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return "", nil, errLikeNUL
		}
		return col + ` LIKE ? ESCAPE '\'`, []any{likePattern(s)}, nil
	case OpIn:
		vals, err := sliceValues(c.Value)
		if err != nil {
			return "", nil, err
		}
		if len(vals) == 0 || len(vals) > MaxInValues {
			return "", nil, fmt.Errorf("in needs between 1 and %d values", MaxInValues)
		}
		args := make([]any, len(vals))
		for i, v := range vals {
			a, err := convert(c.Field, spec.typ, v)
			if err != nil {
				return "", nil, fmt.Errorf("value %d: %w", i, err)
			}
			args[i] = a
		}
		return col + " IN (" + strings.TrimSuffix(strings.Repeat("?,", len(args)), ",") + ")", args, nil
	default:
		a, err := convert(c.Field, spec.typ, c.Value)
		if err != nil {
			return "", nil, err
		}
		op := string(c.Op)
		if c.Op == OpNe && spec.nullable {
			op = "IS NOT" // failures without an account are "not account 5"
		}
		return col + " " + op + " ?", []any{a}, nil
	}
}

// errLikeNUL refuses a substring condition holding a NUL byte: SQLite's
// LIKE stops reading its pattern there, so "%a\x00b%" would match every row
// holding an a.
var errLikeNUL = errors.New("a substring search must not contain a NUL byte")

// likePattern makes a LIKE pattern that matches s as a plain substring.
func likePattern(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
	return "%" + s + "%"
}

func sliceValues(v any) ([]any, error) {
	switch s := v.(type) {
	case []any:
		return s, nil
	case []string:
		out := make([]any, len(s))
		for i := range s {
			out[i] = s[i]
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, fmt.Errorf("in needs a list of values, got %T", v)
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, nil
}

// convert turns a filter value into the bound argument for a field type.
func convert(field Field, t valueType, v any) (any, error) {
	switch t {
	case vText:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("needs a text value, got %T", v)
		}
		if len(s) > MaxFilterText || !utf8.ValidString(s) {
			return nil, fmt.Errorf("value must be valid text of at most %d bytes", MaxFilterText)
		}
		return s, nil
	case vKind:
		s, ok := v.(string)
		if !ok || !fault.Kind(s).Valid() {
			return nil, fmt.Errorf("%v is not a failure kind (authentication, transient, runtime)", v)
		}
		return s, nil
	case vRetryStatus:
		s, ok := v.(string)
		if !ok || !RetryStatus(s).Valid() {
			return nil, fmt.Errorf("%v is not a retry status (none, queued, refused, succeeded, superseded)", v)
		}
		return s, nil
	case vBool:
		switch b := v.(type) {
		case bool:
			return boolInt(b), nil
		case string:
			switch strings.ToLower(strings.TrimSpace(b)) {
			case "true", "1", "yes":
				return 1, nil
			case "false", "0", "no":
				return 0, nil
			}
		}
		if n, err := toInt(v, false); err == nil && (n == 0 || n == 1) {
			return n, nil
		}
		return nil, fmt.Errorf("%v is not a boolean", v)
	case vTime:
		return toMillis(v)
	default: // vInt
		return toInt(v, field == FieldJobID)
	}
}

// toInt converts an integer-valued v. unsigned allows the full uint64 range
// (job ids), stored bit-for-bit as int64.
func toInt(v any, unsigned bool) (int64, error) {
	switch n := v.(type) {
	case int:
		return int64(n), nil
	case int8:
		return int64(n), nil
	case int16:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case int64:
		return n, nil
	case uint:
		return fromUint(uint64(n), unsigned)
	case uint8:
		return int64(n), nil
	case uint16:
		return int64(n), nil
	case uint32:
		return int64(n), nil
	case uint64:
		return fromUint(n, unsigned)
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.IsNaN(n) || math.Abs(n) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", n)
		}
		return int64(n), nil
	case json.Number:
		return toInt(string(n), unsigned)
	case string:
		s := strings.TrimSpace(n)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if unsigned {
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return int64(u), nil
			}
		}
		return 0, fmt.Errorf("%q is not an integer", n)
	}
	return 0, fmt.Errorf("needs an integer, got %T", v)
}

func fromUint(u uint64, unsigned bool) (int64, error) {
	if u > math.MaxInt64 && !unsigned {
		return 0, fmt.Errorf("%d is out of range", u)
	}
	return int64(u), nil
}

// toMillis converts a time value to stored unix milliseconds.
func toMillis(v any) (int64, error) {
	switch t := v.(type) {
	case time.Time:
		if t.IsZero() {
			return 0, fmt.Errorf("zero time")
		}
		return t.UnixMilli(), nil
	case string:
		s := strings.TrimSpace(t)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
			if tm, err := time.Parse(layout, s); err == nil {
				return tm.UnixMilli(), nil
			}
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02, or unix milliseconds)", t)
	}
	n, err := toInt(v, false)
	if err != nil {
		return 0, fmt.Errorf("needs a time, got %T", v)
	}
	return n, nil
}

// windowSQL selects the ids of the newest SearchWindow failures matching the
// index-friendly conditions.
func (db *DB) windowSQL(q *failureQuery) (string, []any) {
	args := append(append([]any{}, q.args...), db.searchWindow)
	return `SELECT id FROM failures` + q.whereSQL() + ` ORDER BY occurred_at DESC, id DESC LIMIT ?`, args
}

var failureColumnsF = "f." + strings.Join(strings.Split(strings.Join(strings.Fields(failureColumns), " "), ", "), ", f.")

// FindFailures returns one page of failures matching the filter and the
// total number that match, as CountFailures counts it (a lower bound when
// CountFailures would say it is not exact). Page and total are read from the
// same snapshot.
func (db *DB) FindFailures(ctx context.Context, ff FailureFilter) ([]*Failure, int, error) {
	q, err := ff.compile()
	if err != nil {
		return nil, 0, err
	}
	var (
		out   []*Failure
		total int
	)
	err = db.read(ctx, func(tx *sql.Tx) error {
		if len(q.subs) > 0 {
			out, total, err = db.findWindowed(ctx, tx, q)
			return err
		}
		// The page's ids first, then its rows: a sort that no index
		// serves then sorts (id and sort keys) instead of whole rows with
		// their messages, args and backtraces.
		pageIDs, err := queryIDs(ctx, tx, `SELECT id FROM failures`+q.whereSQL()+q.orderSQL("")+` LIMIT ? OFFSET ?`,
			append(append([]any{}, q.args...), q.limit, q.offset)...)
		if err != nil {
			return fmt.Errorf("data: find failures: %w", err)
		}
		if out, err = failuresByID(ctx, tx, pageIDs); err != nil {
			return fmt.Errorf("data: find failures: %w", err)
		}
		// A short first page is its own count.
		if q.offset == 0 && len(out) < q.limit {
			total = len(out)
			return nil
		}
		total, _, err = db.countFailures(ctx, tx, q)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// findWindowed answers a filter with substring conditions in one pass over
// the search window: the ids of every match, sorted, give both the total and
// the page, whose rows are then read by id.
func (db *DB) findWindowed(ctx context.Context, tx *sql.Tx, q *failureQuery) ([]*Failure, int, error) {
	win, winArgs := db.windowSQL(q)
	matched, err := queryIDs(ctx, tx, `SELECT f.id FROM (`+win+`) w JOIN failures f ON f.id = w.id WHERE `+
		strings.Join(q.subs, " AND ")+q.orderSQL("f."), append(winArgs, q.subArgs...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("data: search failures: %w", err)
	}
	pageIDs := matched[min(q.offset, len(matched)):min(q.offset+q.limit, len(matched))]
	out, err := failuresByID(ctx, tx, pageIDs)
	if err != nil {
		return nil, 0, fmt.Errorf("data: search failures: %w", err)
	}
	return out, len(matched), nil
}

// queryIDs runs a query of one integer column and returns its values.
func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, errors.Join(rows.Err(), rows.Close())
}

// failuresByID reads the failures with the given ids, in the order of ids
// (which must be distinct and exist).
func failuresByID(ctx context.Context, tx *sql.Tx, ids []int64) ([]*Failure, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	pos := make(map[int64]int, len(ids))
	for i, id := range ids {
		args[i], pos[id] = id, i
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+failureColumns+` FROM failures WHERE id IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(args)), ",")+`)`, args...)
	if err != nil {
		return nil, err
	}
	out := make([]*Failure, len(ids))
	for rows.Next() {
		f, err := scanFailure(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out[pos[f.ID]] = f
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	return out, nil
}

// CountFailures counts the failures matching the filter (Sort, Offset and
// Limit are ignored) and says whether the count is exact. Three cases:
//
//   - Conditions only on class, queue, kind, error_class, retry_status,
//     retryable and occurred_at bounds (<, <=, >, >=, =): exact, read from
//     the roll-ups plus the partial hours at the ends of a time range, so it
//     costs about the same at any table size.
//   - Other conditions without substring ones (account_id, attempt,
//     fingerprint, …): counted with the best index up to Options.CountCap; a
//     larger count returns CountCap with exact false ("10,000 or more").
//   - Substring conditions (Q, error_message): the matches among the search
//     window (see FailureFilter); exact is false when the window was full.
func (db *DB) CountFailures(ctx context.Context, ff FailureFilter) (n int, exact bool, err error) {
	q, err := ff.compile()
	if err != nil {
		return 0, false, err
	}
	err = db.read(ctx, func(tx *sql.Tx) error {
		n, exact, err = db.countFailures(ctx, tx, q)
		return err
	})
	return n, exact, err
}

const hourMS = int64(time.Hour / time.Millisecond)

func (db *DB) countFailures(ctx context.Context, tx *sql.Tx, q *failureQuery) (int, bool, error) {
	var n int
	switch {
	case len(q.subs) == 0 && !q.other && q.timeLo == math.MinInt64 && q.timeHi == math.MaxInt64:
		err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM failure_counts`+andWhere(q.dims), q.dimArgs...).Scan(&n)
		if err != nil {
			return 0, false, fmt.Errorf("data: count failures: %w", err)
		}
		return n, true, nil
	case len(q.subs) == 0 && !q.other:
		n, err := db.countRange(ctx, tx, q)
		return n, err == nil, err
	case len(q.subs) == 0:
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM failures`+q.whereSQL()+` LIMIT ?)`,
			append(append([]any{}, q.args...), db.countCap+1)...).Scan(&n)
		if err != nil {
			return 0, false, fmt.Errorf("data: count failures: %w", err)
		}
		if n > db.countCap {
			return db.countCap, false, nil
		}
		return n, true, nil
	default:
		win, winArgs := db.windowSQL(q)
		var scanned int
		args := append(append([]any{}, q.subArgs...), winArgs...)
		err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(`+strings.Join(q.subs, " AND ")+`), 0), count(*) FROM (`+
			win+`) w JOIN failures f ON f.id = w.id`, args...).Scan(&n, &scanned)
		if err != nil {
			return 0, false, fmt.Errorf("data: count failures: %w", err)
		}
		return n, scanned < db.searchWindow, nil
	}
}

// countRange counts failures matching roll-up conditions within
// [timeLo, timeHi): whole hours from failure_hours, the partial hours at the
// ends from the table.
func (db *DB) countRange(ctx context.Context, tx *sql.Tx, q *failureQuery) (int, error) {
	lo, hi := q.timeLo, q.timeHi
	if lo >= hi {
		return 0, nil
	}
	exact := func(a, b int64) (int, error) {
		var n int
		where := append([]string{"occurred_at >= ?", "occurred_at < ?"}, q.dims...)
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM failures WHERE `+strings.Join(where, " AND "),
			append([]any{a, b}, q.dimArgs...)...).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("data: count failures: %w", err)
		}
		return n, nil
	}
	hLo, hHi := lo, hi
	if lo != math.MinInt64 {
		hLo = ceilHour(lo)
	}
	if hi != math.MaxInt64 {
		hHi = floorHour(hi)
	}
	if hLo >= hHi {
		return exact(lo, hi)
	}
	var where []string
	var args []any
	if hLo != math.MinInt64 {
		where, args = append(where, "hour >= ?"), append(args, hLo)
	}
	if hHi != math.MaxInt64 {
		where, args = append(where, "hour < ?"), append(args, hHi)
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM failure_hours`+andWhere(append(where, q.dims...)),
		append(args, q.dimArgs...)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("data: count failures: %w", err)
	}
	if lo != math.MinInt64 && lo < hLo {
		k, err := exact(lo, hLo)
		if err != nil {
			return 0, err
		}
		n += k
	}
	if hi != math.MaxInt64 && hHi < hi {
		k, err := exact(hHi, hi)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// floorHour and ceilHour round unix milliseconds to whole hours. They
// saturate at int64's limits instead of overflowing: floorHour of a time in
// the first hour above math.MinInt64 is math.MinInt64, ceilHour of one in
// the last hour below math.MaxInt64 is math.MaxInt64.
func floorHour(ms int64) int64 {
	h := ms / hourMS * hourMS // rounds towards zero
	if h > ms {
		if h < math.MinInt64+hourMS {
			return math.MinInt64
		}
		h -= hourMS
	}
	return h
}

func ceilHour(ms int64) int64 {
	h := floorHour(ms)
	if h < ms {
		if h > math.MaxInt64-hourMS {
			return math.MaxInt64
		}
		h += hourMS
	}
	return h
}

func andWhere(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// LastFailureID returns the highest failure id, or 0 when there is none. A
// batch over the failures that bounds itself by it never reaches the
// failures written after it began.
func (db *DB) LastFailureID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.r.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM failures`).Scan(&id); err != nil {
		return 0, fmt.Errorf("data: last failure id: %w", err)
	}
	return id, nil
}

// FailureIDs returns the ids of up to limit failures matching the filter
// with id > afterID, ascending: call it again with the last id to walk every
// match in bounded batches (retry-all). Sort, Offset and Limit of the filter
// are ignored. Unlike FindFailures it is exact for substring conditions too:
// each call scans forward until it has limit matches.
func (db *DB) FailureIDs(ctx context.Context, ff FailureFilter, afterID int64, limit int) ([]int64, error) {
	if limit <= 0 || limit > 100_000 {
		return nil, &FilterError{Param: "limit", Reason: "must be between 1 and 100000"}
	}
	ff.Sort, ff.Offset, ff.Limit = nil, 0, 0
	q, err := ff.compile()
	if err != nil {
		return nil, err
	}
	where := append([]string{"f.id > ?"}, q.where...)
	where = append(where, q.subs...)
	args := append(append(append([]any{afterID}, q.args...), q.subArgs...), limit)
	rows, err := db.r.QueryContext(ctx, `SELECT f.id FROM failures f WHERE `+strings.Join(where, " AND ")+` ORDER BY f.id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("data: failure ids: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("data: failure ids: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, errRows(rows, "failure ids")
}
