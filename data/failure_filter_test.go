package data

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// Every operator offered to clients is one the store accepts on that
// field, and every field offers something: the API's whitelist cannot drift
// from the store's.
func TestOfferedOpsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, f := range FailureFields() {
		offered := f.Offered()
		if len(offered) == 0 {
			t.Errorf("%s offers no operator", f)
		}
		for _, op := range offered {
			if !slices.Contains(failureFields[f].typ.ops(), op) {
				t.Errorf("%s offers %s, which the store refuses", f, op)
			}
		}
	}
	if ops := Field("nope").Offered(); ops != nil {
		t.Errorf("an unknown field offers %v", ops)
	}
	// Offered hands out a copy: a caller cannot widen the whitelist.
	FieldKind.Offered()[0] = OpLike
	if FieldKind.Offered()[0] == OpLike {
		t.Error("Offered returned the whitelist itself")
	}
}

// TestFilterRefusesNUL: SQLite's LIKE stops at a NUL byte, so a like value or
// a q word holding one matched every row. Such a filter is refused, naming
// the parameter; an equality filter compares the whole value and may hold
// one.
func TestFilterRefusesNUL(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	if err := db.InsertFailures(t.Context(), genFailures(20, 3, clk.Now())); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ff    FailureFilter
		param string
	}{
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "\x00", Param: "filter[0][value]"}}}, "filter[0][value]"},
		{FailureFilter{Conds: []Cond{{Field: FieldErrorMessage, Op: OpLike, Value: "timeout\x00zzz"}}}, "error_message"},
		{FailureFilter{Q: "\x00"}, "q"},
		{FailureFilter{Q: "read \x00nothing"}, "q"},
	} {
		got, n, err := db.FindFailures(t.Context(), tc.ff)
		var fe *FilterError
		if !errors.As(err, &fe) || fe.Param != tc.param || !strings.Contains(fe.Reason, "NUL") {
			t.Errorf("FindFailures(%q) = %d rows, total %d, %v; want a FilterError naming %q and the NUL byte",
				fmt.Sprint(tc.ff), len(got), n, err, tc.param)
		}
		if _, err := db.FailureIDs(t.Context(), tc.ff, 0, 100); !errors.As(err, &fe) {
			t.Errorf("FailureIDs(%q) = %v, want a FilterError", fmt.Sprint(tc.ff), err)
		}
	}
	got, n, err := db.FindFailures(t.Context(), FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpEq, Value: "Avatar\x00SyncJob"}}})
	if err != nil || n != 0 || len(got) != 0 {
		t.Errorf("equality with a NUL = %d rows, total %d, %v; want none", len(got), n, err)
	}
}

// TestTimeBoundsNearTheLimits: occurred_at bounds near int64's limits used to
// overflow the hour rounding of the roll-up counts (a total of every row with
// an empty page). Every bound counts exactly what the table holds.
func TestTimeBoundsNearTheLimits(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	fs := genFailures(50, 4, clk.Now())
	if err := db.InsertFailures(t.Context(), fs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op   Op
		v    int64
		want int
	}{
		{OpGe, math.MaxInt64 - 800, 0},
		{OpGt, math.MaxInt64 - 3_599_999, 0},
		{OpGe, math.MaxInt64 - 3_600_001, 0},
		{OpGt, math.MaxInt64, 0},
		{OpGe, math.MaxInt64, 0},
		{OpLt, math.MaxInt64 - 800, 50},
		{OpLe, math.MaxInt64, 50},
		{OpLt, math.MinInt64 + 800, 0},
		{OpLe, math.MinInt64 + 3_599_999, 0},
		{OpLt, math.MinInt64, 0},
		{OpGe, math.MinInt64 + 800, 50},
		{OpGt, math.MinInt64, 50},
		{OpLt, -1, 0},
		{OpGe, -3_600_001, 50},
	} {
		ff := FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: tc.op, Value: tc.v}}, Limit: 100}
		got, total, err := db.FindFailures(t.Context(), ff)
		n, exact, cerr := db.CountFailures(t.Context(), ff)
		if err != nil || cerr != nil || total != tc.want || len(got) != tc.want || n != tc.want || !exact {
			t.Errorf("occurred_at %s %d: %d rows, total %d, count %d (exact %v), %v %v; want %d",
				tc.op, tc.v, len(got), total, n, exact, err, cerr, tc.want)
		}
		// A later page takes its total from the count.
		ff.Offset = 100
		if _, total, err := db.FindFailures(t.Context(), ff); err != nil || total != tc.want {
			t.Errorf("occurred_at %s %d, second page: total %d, %v; want %d", tc.op, tc.v, total, err, tc.want)
		}
	}
	// The same bounds with a roll-up condition beside them.
	kind := Cond{Field: FieldKind, Op: OpEq, Value: "transient"}
	n, _, err := db.CountFailures(t.Context(), FailureFilter{Conds: []Cond{kind, {Field: FieldOccurredAt, Op: OpGe, Value: int64(math.MaxInt64 - 5)}}})
	if err != nil || n != 0 {
		t.Errorf("kind and a bound near the top: count %d, %v; want 0", n, err)
	}
}
