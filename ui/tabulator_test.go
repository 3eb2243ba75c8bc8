package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"conveyor/data"
)

func TestParseTabulator(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		query string
		want  data.FailureFilter
	}{
		{"", data.FailureFilter{Limit: 50}},
		{"page=3&size=20&q=timeout+503", data.FailureFilter{Q: "timeout 503", Offset: 40, Limit: 20}},
		{"sort[0][field]=class&sort[0][dir]=asc&sort[1][field]=occurred_at&sort[1][dir]=desc", data.FailureFilter{Limit: 50,
			Sort: []data.SortKey{{Field: "class", Param: "sort[0][field]"}, {Field: "occurred_at", Desc: true, Param: "sort[1][field]"}}}},
		{"filter[1][field]=kind&filter[1][type]=in&filter[1][value][]=transient&filter[1][value][]=runtime" +
			"&filter[0][field]=class&filter[0][type]=like&filter[0][value]=Sync", data.FailureFilter{Limit: 50, Conds: []data.Cond{
			{Field: "class", Op: data.OpLike, Value: "Sync", Param: "filter[0][value]"},
			{Field: "kind", Op: data.OpIn, Value: []string{"transient", "runtime"}, Param: "filter[1][value]"}}}},
		{"filter[0][field]=account_id&filter[0][value]=7", data.FailureFilter{Limit: 50, Conds: []data.Cond{
			{Field: "account_id", Op: data.OpEq, Value: "7", Param: "filter[0][value]"}}}},
		{"filter[0][field]=occurred_at&filter[0][type]=>=&filter[0][value]=2026-05-01", data.FailureFilter{Limit: 50, Conds: []data.Cond{
			{Field: "occurred_at", Op: data.OpGe, Value: "2026-05-01", Param: "filter[0][value]"}}}},
		{"filter[0][field]=class&filter[0][type]=in&filter[0][value][0]=A&filter[0][value][1]=B", data.FailureFilter{Limit: 50,
			Conds: []data.Cond{{Field: "class", Op: data.OpIn, Value: []string{"A", "B"}, Param: "filter[0][value]"}}}},
		{"filter[0][field]=class&filter[0][value]=x%27%3B+DROP+TABLE+failures%3B+--", data.FailureFilter{Limit: 50, Conds: []data.Cond{
			{Field: "class", Op: data.OpEq, Value: "x'; DROP TABLE failures; --", Param: "filter[0][value]"}}}},
	} {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseTabulator(q)
		if err != nil {
			t.Errorf("%q: %v", c.query, err)
			continue
		}
		// The list of an in may come in any order of its keys.
		if !reflect.DeepEqual(got, c.want) && fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.query, got, c.want)
		}
	}
}

func TestParseTabulatorNamesTheParameter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ query, param string }{
		{"page=0", "page"},
		{"page=x", "page"},
		{"page=1&page=2", "page"},
		{"size=1001", "size"},
		{"page=102&size=1000&sort[0][field]=class&sort[1][field]=queue&sort[2][field]=kind&sort[3][field]=attempt", "page"},
		{"page=2002", "page"},
		{"limit=5", "limit"},
		{"sort[0][field]=args", "sort[0][field]"},
		{"sort[0][field]=error_message", "sort[0][field]"},
		{"sort[0][field]=class&sort[0][dir]=sideways", "sort[0][dir]"},
		{"sort[0][type]=x", "sort[0][type]"},
		{"sort[9][field]=class", "sort[9][field]"},
		{"filter[0][field]=backtrace&filter[0][value]=x", "filter[0][field]"},
		{"filter[0][field]=class&filter[0][type]=regex&filter[0][value]=.*", "filter[0][type]"},
		{"filter[0][field]=occurred_at&filter[0][type]==&filter[0][value]=1", "filter[0][type]"},
		{"filter[0][field]=class&filter[0][type]==", "filter[0][value]"},
		{"filter[0][field]=account_id&filter[0][value]=seven", "filter[0][value]"},
		{"filter[0][field]=kind&filter[0][value]=weird", "filter[0][value]"},
		{"filter[0][field]=retryable&filter[0][value]=maybe", "filter[0][value]"},
		{"filter[0][field]=class&filter[0][value][]=a&filter[0][value][]=b", "filter[0][value]"},
		{"filter[0][field]=class&filter[0][type]=in&filter[0][value]=a&filter[0][value][]=b", "filter[0][value][]"},
		{"filter[0][dir]=asc", "filter[0][dir]"},
		{"filter[99][field]=class", "filter[99][field]"},
		{"filter[0][field][x]=class", "filter[0][field][x]"},
		{"q=" + strings.Repeat("w+", 9), "q"},
		// One index written two ways used to merge silently.
		{"filter[0][field]=class&filter[0][value]=a&filter[00][field]=queue&filter[00][value]=b", "filter[00][field]"},
		{"filter[00][field]=class&filter[00][value]=x", "filter[00][field]"},
		{"sort[1][field]=class&sort[01][dir]=desc", "sort[01][dir]"},
		{"sort[0][field]=class&sort[00][field]=queue", "sort[00][field]"},
		{"filter[0][field]=class&filter[0][type]=in&filter[0][value][1]=a&filter[0][value][01]=b", "filter[0][value][01]"},
		// A NUL in a substring search matched every row.
		{"filter[0][field]=class&filter[0][type]=like&filter[0][value]=%00", "filter[0][value]"},
		{"q=%00", "q"},
	} {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseTabulator(q)
		var fe *fieldError
		if !errors.As(err, &fe) || fe.Field != c.param || !errors.Is(err, errMalformed) {
			t.Errorf("%q: %v, want a 400 naming %s", c.query, err, c.param)
		}
	}
}

// FuzzParseTabulator: whatever the query, parseTabulator does not panic, and
// either refuses it with a 400 that names a parameter of the query, or gives
// a filter the store accepts.
func FuzzParseTabulator(f *testing.F) {
	for _, seed := range []string{
		"", "page=2&size=10", "q=timeout", "sort[0][field]=class&sort[0][dir]=desc",
		"filter[0][field]=kind&filter[0][type]=in&filter[0][value][]=transient",
		"filter[0][field]=occurred_at&filter[0][type]=<&filter[0][value]=2026-05-01T00:00:00Z",
		"filter[0][field]=job_id&filter[0][value]=18446744073709551615",
		"filter[0][field]=retryable&filter[0][value]=true", "filter[0][field]=class&filter[0][value]=%00",
		"filter[0][field]=error_message&filter[0][type]=like&filter[0][value]=%25_", "page=999999&size=1000",
		"sort[0][field]=id&sort[0][field]=id", "filter[00][field]=class&filter[0][value]=x", "q=%ff%fe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		ff, err := parseTabulator(q)
		if err != nil {
			status, field, msg := classify(err)
			if status != http.StatusBadRequest || msg == "" {
				t.Fatalf("%q: %v maps to %d %q %q", raw, err, status, field, msg)
			}
			if _, ok := q[field]; !ok && !strings.HasPrefix(field, "filter[") && !strings.HasPrefix(field, "sort[") {
				t.Fatalf("%q: the error names %q, which is not in the query", raw, field)
			}
			return
		}
		if err := ff.Validate(); err != nil {
			t.Fatalf("%q: accepted a filter the store refuses: %v", raw, err)
		}
		if ff.Limit < 1 || ff.Limit > data.MaxFailureLimit || ff.Offset < 0 {
			t.Fatalf("%q: page %d+%d", raw, ff.Offset, ff.Limit)
		}
	})
}
