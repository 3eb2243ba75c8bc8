package ui

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"conveyor/data"
)

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
// another parameter, a repeated one, an index out of range or written with
// a leading zero (so that filter[0] and filter[00] cannot merge), an unknown
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
		if leadingZero(m[2]) || leadingZero(strings.Trim(m[4], "[]")) {
			// filter[0] and filter[00] would be one index: take each
			// index in one spelling only.
			return ff, malformed(key, "an index must not have a leading zero (write filter[1], not filter[01])")
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
	if page > 1 && (page-1) > data.MaxFailureOffset/size {
		return ff, malformed("page", "too far: pages starting beyond row %d are not served; narrow the filter instead", data.MaxFailureOffset)
	}
	ff.Offset, ff.Limit = (page-1)*size, size
	if err := ff.Validate(); err != nil {
		return ff, filterError(err)
	}
	return ff, nil
}

// leadingZero reports whether the index digits s have a leading zero ("01",
// "00"; not "0").
func leadingZero(s string) bool { return len(s) > 1 && s[0] == '0' }

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
