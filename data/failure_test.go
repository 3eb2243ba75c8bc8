package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"conveyor/ops/fault"
)

// genFailures makes n deterministic failures over small value sets, so that
// every filter below has matches and non-matches.
func genFailures(n int, seed uint64, base time.Time) []*Failure {
	r := rand.New(rand.NewPCG(seed, 7))
	kinds := []fault.Kind{fault.Transient, fault.Transient, fault.Runtime, fault.Authentication}
	classes := []string{"ProfileRefreshJob", "CaptureHomeFeedJob", "AvatarSyncJob", "StoryReplyJob", "Engage_100%Job"}
	queues := []string{"sync", "profiles", "avatars", "engagements", "default"}
	errClasses := []string{"Net::ReadTimeout", "HTTP::TooManyRequests", "AuthError", "NoMethodError"}
	msgs := []string{"read timeout after 30s", "429 Too Many Requests", "login required", "undefined method `id' for nil", "connection reset by peer"}
	out := make([]*Failure, n)
	for i := range out {
		f := &Failure{
			JobID:        uint64(1000 + i),
			Class:        classes[r.IntN(len(classes))],
			Queue:        queues[r.IntN(len(queues))],
			Kind:         kinds[r.IntN(len(kinds))],
			ErrorClass:   errClasses[r.IntN(len(errClasses))],
			ErrorMessage: msgs[r.IntN(len(msgs))],
			Backtrace:    "app/jobs/job.rb:12\nlib/runner.rb:34",
			Attempt:      r.IntN(4),
			Retryable:    r.IntN(2) == 0,
			OccurredAt:   base.Add(time.Duration(r.IntN(100_000)) * time.Second),
			Fingerprint:  fmt.Sprintf("fp%d", r.IntN(20)),
			Args:         json.RawMessage(fmt.Sprintf(`{"account_id":%d,"page":%d}`, r.IntN(9), r.IntN(30))),
		}
		if r.IntN(4) != 0 {
			f.AccountID = int64(1 + r.IntN(9))
		}
		if r.IntN(3) == 0 {
			f.ProfileID = int64(1 + r.IntN(5))
		}
		if i == 7 {
			f.JobID = math.MaxUint64 - 3 // high bit set
		}
		out[i] = f
	}
	return out
}

func TestInsertFailuresRoundTrip(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	fs := genFailures(150, 1, clk.Now())
	fs[3].OccurredAt = time.Time{} // defaults to now
	fs[4].Args = nil
	fs[5].Retry = RetryState{Status: RetryQueued, Attempts: 2, LastRetriedAt: clk.Now().Add(time.Minute), JobID: 77, Reason: "manual"}
	fs[6].PipelineID, fs[6].Step = 9, "capture"
	if err := db.InsertFailures(ctx, fs); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		if f.ID != int64(i+1) {
			t.Fatalf("failure %d got ID %d, want ascending from 1", i, f.ID)
		}
		got, err := db.FailureByID(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := *f
		if want.Retry.Status == "" {
			want.Retry.Status = RetryNone
		}
		if !equalFailure(got, &want) {
			t.Fatalf("failure %d:\n got %+v\nwant %+v", i, got, &want)
		}
	}
	if got, _ := db.FailureByID(ctx, 3+1); !got.OccurredAt.Equal(clk.Now()) {
		t.Errorf("zero OccurredAt stored as %v, want now %v", got.OccurredAt, clk.Now())
	}
	if got, _ := db.FailureByID(ctx, 8); got.JobID != math.MaxUint64-3 {
		t.Errorf("JobID with the high bit = %d", got.JobID)
	}

	// A second batch continues the ids.
	more := genFailures(3, 2, clk.Now())
	if err := db.InsertFailures(ctx, more); err != nil {
		t.Fatal(err)
	}
	if more[0].ID != 151 || more[2].ID != 153 {
		t.Fatalf("second batch ids = %d..%d", more[0].ID, more[2].ID)
	}
	if _, err := db.FailureByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FailureByID(999) = %v, want ErrNotFound", err)
	}
}

func equalFailure(a, b *Failure) bool {
	return a.ID == b.ID && a.JobID == b.JobID && a.Class == b.Class && a.Queue == b.Queue &&
		string(a.Args) == string(b.Args) && a.ErrorClass == b.ErrorClass && a.ErrorMessage == b.ErrorMessage &&
		a.Backtrace == b.Backtrace && a.AccountID == b.AccountID && a.ProfileID == b.ProfileID &&
		a.PipelineID == b.PipelineID && a.Step == b.Step && a.Attempt == b.Attempt && a.Kind == b.Kind &&
		a.Retryable == b.Retryable && a.OccurredAt.Equal(b.OccurredAt) && a.Fingerprint == b.Fingerprint &&
		a.Retry.Status == b.Retry.Status && a.Retry.Attempts == b.Retry.Attempts &&
		a.Retry.LastRetriedAt.Equal(b.Retry.LastRetriedAt) && a.Retry.JobID == b.Retry.JobID && a.Retry.Reason == b.Retry.Reason
}

func TestInsertFailuresRejectsInvalidBatchWhole(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	for _, tc := range []struct {
		mutate func(*Failure)
		field  string
	}{
		{func(f *Failure) { f.Kind = "network" }, "failures[2].Kind"},
		{func(f *Failure) { f.Class = " " }, "failures[2].Class"},
		{func(f *Failure) { f.Queue = "" }, "failures[2].Queue"},
		{func(f *Failure) { f.Args = json.RawMessage(`{"a":`) }, "failures[2].Args"},
		{func(f *Failure) { f.Retry.Status = "maybe" }, "failures[2].Retry.Status"},
	} {
		fs := genFailures(4, 3, clk.Now())
		tc.mutate(fs[2])
		err := db.InsertFailures(t.Context(), fs)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("InsertFailures = %v, want FieldError on %s", err, tc.field)
		}
	}
	if _, n, _ := db.FindFailures(t.Context(), FailureFilter{}); n != 0 {
		t.Fatalf("%d failures written from invalid batches", n)
	}
}

func TestUpdateFailureRetryAndPrune(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	fs := genFailures(40, 4, clk.Now())
	for i, f := range fs {
		f.OccurredAt = clk.Now().Add(time.Duration(i) * time.Minute)
	}
	if err := db.InsertFailures(ctx, fs); err != nil {
		t.Fatal(err)
	}
	rs := RetryState{Status: RetrySucceeded, Attempts: 1, LastRetriedAt: clk.Now(), JobID: 5555, Reason: "ok"}
	if err := db.UpdateFailureRetry(ctx, fs[0].ID, rs); err != nil {
		t.Fatal(err)
	}
	got, _ := db.FailureByID(ctx, fs[0].ID)
	if got.Retry != rs {
		t.Fatalf("retry state = %+v, want %+v", got.Retry, rs)
	}
	if err := db.UpdateFailureRetry(ctx, 12345, rs); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateFailureRetry(missing) = %v", err)
	}
	if err := db.UpdateFailureRetry(ctx, fs[0].ID, RetryState{Status: "later"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("UpdateFailureRetry(bad status) = %v", err)
	}
	n, ok, err := db.CountFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldRetryStatus, Op: OpEq, Value: "succeeded"}}})
	if err != nil || n != 1 || !ok {
		t.Fatalf("count succeeded = %d %v %v", n, ok, err)
	}

	cut := clk.Now().Add(25 * time.Minute)
	var pruned int64
	for {
		k, err := db.PruneFailures(ctx, cut, 10)
		if err != nil {
			t.Fatal(err)
		}
		pruned += k
		if k < 10 {
			break
		}
	}
	if pruned != 25 {
		t.Fatalf("pruned %d, want 25", pruned)
	}
	if _, total, _ := db.FindFailures(ctx, FailureFilter{}); total != 15 {
		t.Fatalf("%d left after prune, want 15", total)
	}
	if n, _, _ := db.CountFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldRetryStatus, Op: OpEq, Value: "succeeded"}}}); n != 0 {
		t.Fatalf("roll-up still counts the pruned succeeded failure: %d", n)
	}
}

// model is a plain-Go reference implementation of FailureFilter.
func modelMatch(f *Failure, ff FailureFilter) bool {
	for _, c := range ff.Conds {
		if !modelCond(f, c) {
			return false
		}
	}
	for _, w := range strings.Fields(ff.Q) {
		if !(ci(f.Class, w) || ci(f.Queue, w) || ci(f.ErrorMessage, w) || ci(string(f.Args), w)) {
			return false
		}
	}
	return true
}

func ci(s, sub string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(sub)) }

func fieldValue(f *Failure, field Field) (any, bool) { // value, isNull
	switch field {
	case FieldID:
		return f.ID, false
	case FieldOccurredAt:
		return f.OccurredAt.UnixMilli(), false
	case FieldClass:
		return f.Class, false
	case FieldQueue:
		return f.Queue, false
	case FieldKind:
		return string(f.Kind), false
	case FieldErrorClass:
		return f.ErrorClass, false
	case FieldErrorMessage:
		return f.ErrorMessage, false
	case FieldAccountID:
		return f.AccountID, f.AccountID == 0
	case FieldProfileID:
		return f.ProfileID, f.ProfileID == 0
	case FieldRetryStatus:
		return string(f.Retry.Status), false
	case FieldRetryable:
		return int64(boolInt(f.Retryable)), false
	case FieldAttempt:
		return int64(f.Attempt), false
	case FieldJobID:
		return int64(f.JobID), false
	case FieldFingerprint:
		return f.Fingerprint, false
	}
	panic(field)
}

func modelValue(field Field, v any) any {
	switch field {
	case FieldOccurredAt:
		if s, ok := v.(string); ok {
			tm, err := time.Parse(time.RFC3339, s)
			if err != nil {
				panic(err)
			}
			return tm.UnixMilli()
		}
		return v.(time.Time).UnixMilli()
	case FieldRetryable:
		if v == true || v == "true" {
			return int64(1)
		}
		return int64(0)
	}
	switch n := v.(type) {
	case int:
		return int64(n)
	case uint64:
		return int64(n)
	case float64:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	case string:
		if failureFields[field].typ == vInt {
			i, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				panic(err)
			}
			return i
		}
	}
	return v
}

func compare(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmpOrdered(x, b.(int64))
	case string:
		return strings.Compare(x, b.(string))
	}
	panic(a)
}

func cmpOrdered[T int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func modelCond(f *Failure, c Cond) bool {
	got, null := fieldValue(f, c.Field)
	switch c.Op {
	case OpLike:
		return ci(got.(string), c.Value.(string))
	case OpIn:
		for _, v := range c.Value.([]any) {
			if !null && compare(got, modelValue(c.Field, v)) == 0 {
				return true
			}
		}
		return false
	case OpNe:
		return null || compare(got, modelValue(c.Field, c.Value)) != 0
	}
	if null {
		return false
	}
	d := compare(got, modelValue(c.Field, c.Value))
	switch c.Op {
	case OpEq:
		return d == 0
	case OpLt:
		return d < 0
	case OpLe:
		return d <= 0
	case OpGt:
		return d > 0
	case OpGe:
		return d >= 0
	}
	panic(c.Op)
}

func modelSort(fs []*Failure, keys []SortKey) {
	if len(keys) == 0 {
		keys = []SortKey{{Field: FieldOccurredAt, Desc: true}}
	}
	keys = append(slices.Clone(keys), SortKey{Field: FieldOccurredAt, Desc: keys[0].Desc}, SortKey{Field: FieldID, Desc: keys[0].Desc})
	slices.SortStableFunc(fs, func(a, b *Failure) int {
		for _, k := range keys {
			va, na := fieldValue(a, k.Field)
			vb, nb := fieldValue(b, k.Field)
			var d int
			switch {
			case na && nb:
				d = 0
			case na:
				d = -1
			case nb:
				d = 1
			default:
				d = compare(va, vb)
			}
			if k.Desc {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return 0
	})
}

func ids(fs []*Failure) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func TestFindFailuresMatchesModel(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	ctx := t.Context()
	base := clk.Now()
	all := genFailures(400, 5, base)
	if err := db.InsertFailures(ctx, all); err != nil {
		t.Fatal(err)
	}
	// Exercise the roll-up's update trigger.
	for _, f := range all[:60] {
		st := []RetryStatus{RetryQueued, RetryRefused, RetrySuperseded}[f.ID%3]
		f.Retry = RetryState{Status: st, Attempts: 1}
		if err := db.UpdateFailureRetry(ctx, f.ID, f.Retry); err != nil {
			t.Fatal(err)
		}
	}
	mid := base.Add(50_000 * time.Second)
	cases := []FailureFilter{
		{},
		{Conds: []Cond{{Field: FieldKind, Op: OpEq, Value: "transient"}}},
		{Conds: []Cond{{Field: FieldKind, Op: OpNe, Value: "runtime"}}},
		{Conds: []Cond{{Field: FieldKind, Op: OpIn, Value: []any{"transient", "authentication"}}}},
		{Conds: []Cond{{Field: FieldKind, Op: OpLike, Value: "TRANS"}}},
		{Conds: []Cond{{Field: FieldQueue, Op: OpEq, Value: "sync"}, {Field: FieldClass, Op: OpLike, Value: "refresh"}}},
		{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "100%"}}},
		{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "_"}}},
		{Conds: []Cond{{Field: FieldErrorClass, Op: OpIn, Value: []any{"AuthError", "NoMethodError"}}}},
		{Conds: []Cond{{Field: FieldAccountID, Op: OpEq, Value: 3}}},
		{Conds: []Cond{{Field: FieldAccountID, Op: OpNe, Value: "3"}}},
		{Conds: []Cond{{Field: FieldAccountID, Op: OpIn, Value: []any{1, 2.0, "4"}}}},
		{Conds: []Cond{{Field: FieldAccountID, Op: OpGt, Value: 5}}},
		{Conds: []Cond{{Field: FieldProfileID, Op: OpLe, Value: 2}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: mid}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpLt, Value: mid.Format(time.RFC3339)}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpEq, Value: all[10].OccurredAt}}},
		{Conds: []Cond{{Field: FieldRetryable, Op: OpEq, Value: true}}},
		{Conds: []Cond{{Field: FieldRetryable, Op: OpNe, Value: "true"}}},
		{Conds: []Cond{{Field: FieldAttempt, Op: OpGe, Value: 2}}},
		{Conds: []Cond{{Field: FieldJobID, Op: OpEq, Value: uint64(math.MaxUint64 - 3)}}},
		{Conds: []Cond{{Field: FieldJobID, Op: OpIn, Value: []any{1005, "1010", json.Number("1020")}}}},
		{Conds: []Cond{{Field: FieldRetryStatus, Op: OpEq, Value: "queued"}}},
		{Conds: []Cond{{Field: FieldRetryStatus, Op: OpIn, Value: []any{"none", "refused"}}}},
		{Conds: []Cond{{Field: FieldFingerprint, Op: OpEq, Value: "fp3"}}},
		{Conds: []Cond{{Field: FieldFingerprint, Op: OpLike, Value: "fp1"}}},
		{Conds: []Cond{{Field: FieldErrorMessage, Op: OpLike, Value: "timeout"}}},
		{Conds: []Cond{{Field: FieldErrorMessage, Op: OpEq, Value: "login required"}}},
		{Conds: []Cond{{Field: FieldErrorMessage, Op: OpNe, Value: "login required"}, {Field: FieldKind, Op: OpEq, Value: "runtime"}}},
		{Conds: []Cond{{Field: FieldKind, Op: OpEq, Value: "transient"}, {Field: FieldOccurredAt, Op: OpGe, Value: base.Add(2 * time.Hour)},
			{Field: FieldOccurredAt, Op: OpLt, Value: base.Add(20*time.Hour + 123*time.Millisecond)}}},
		{Conds: []Cond{{Field: FieldQueue, Op: OpIn, Value: []any{"sync", "avatars"}}, {Field: FieldOccurredAt, Op: OpGt, Value: base.Add(90 * time.Minute)},
			{Field: FieldOccurredAt, Op: OpLe, Value: base.Add(3 * time.Hour)}}},
		{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "job"}, {Field: FieldOccurredAt, Op: OpGt, Value: base.Add(-10 * time.Hour)}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: base.Add(5 * time.Hour)}, {Field: FieldOccurredAt, Op: OpLt, Value: base.Add(7 * time.Hour)}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGe, Value: base.Add(5 * time.Hour)}, {Field: FieldOccurredAt, Op: OpLt, Value: base.Add(5 * time.Hour)}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGt, Value: base.Add(1000 * time.Hour)}}},
		{Conds: []Cond{{Field: FieldOccurredAt, Op: OpNe, Value: all[3].OccurredAt}, {Field: FieldKind, Op: OpEq, Value: "runtime"}}},
		{Conds: []Cond{{Field: FieldRetryStatus, Op: OpNe, Value: "none"}, {Field: FieldOccurredAt, Op: OpLe, Value: mid}}},
		{Q: "timeout"},
		{Q: "sync"},
		{Q: `"page":7`},
		{Q: "  reset   engagements "},
		{Q: "nothing-matches-this"},
		{Q: "refresh", Conds: []Cond{{Field: FieldAccountID, Op: OpLt, Value: 5}}},
		{Conds: []Cond{{Field: FieldKind, Op: OpEq, Value: "transient"}, {Field: FieldQueue, Op: OpEq, Value: "sync"},
			{Field: FieldOccurredAt, Op: OpGt, Value: mid}}, Sort: []SortKey{{Field: FieldClass}}},
		{Sort: []SortKey{{Field: FieldOccurredAt}}},
		{Sort: []SortKey{{Field: FieldAccountID, Desc: true}}},
		{Sort: []SortKey{{Field: FieldAttempt}, {Field: FieldJobID, Desc: true}}},
		{Sort: []SortKey{{Field: FieldKind}, {Field: FieldClass}, {Field: FieldKind, Desc: true}}},
		{Sort: []SortKey{{Field: FieldID, Desc: true}}},
		{Sort: []SortKey{{Field: FieldKind}, {Field: FieldProfileID}}},
	}
	partial := 0
	for _, ff := range cases {
		k := 0
		for _, f := range all {
			if modelMatch(f, ff) {
				k++
			}
		}
		if (k > 0 && k < len(all)) || (len(ff.Conds) == 0 && ff.Q == "") {
			partial++
		}
	}
	if partial < len(cases)-4 { // four filters are meant to select nothing or everything
		t.Fatalf("only %d of %d filters select a proper subset: the data does not exercise them", partial, len(cases))
	}
	for i, ff := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var want []*Failure
			for _, f := range all {
				if modelMatch(f, ff) {
					want = append(want, f)
				}
			}
			modelSort(want, ff.Sort)

			ff.Limit = MaxFailureLimit
			got, total, err := db.FindFailures(ctx, ff)
			if err != nil {
				t.Fatalf("%+v: %v", ff, err)
			}
			if total != len(want) || !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("%+v:\n got %d %v\nwant %d %v", ff, total, ids(got), len(want), ids(want))
			}
			n, exact, err := db.CountFailures(ctx, ff)
			if err != nil || n != len(want) || !exact {
				t.Fatalf("CountFailures = %d %v %v, want %d exact", n, exact, err, len(want))
			}

			// A middle page, and its total (no shortcut).
			ff.Limit, ff.Offset = 7, 7
			got, total, err = db.FindFailures(ctx, ff)
			if err != nil {
				t.Fatal(err)
			}
			wantPage := want[min(7, len(want)):min(14, len(want))]
			if total != len(want) || !slices.Equal(ids(got), ids(wantPage)) {
				t.Fatalf("page 2: got %d %v, want %d %v", total, ids(got), len(want), ids(wantPage))
			}

			// FailureIDs walks every match in ascending batches.
			var walked []int64
			for after := int64(0); ; {
				batch, err := db.FailureIDs(ctx, ff, after, 13)
				if err != nil {
					t.Fatal(err)
				}
				walked = append(walked, batch...)
				if len(batch) < 13 {
					break
				}
				after = batch[len(batch)-1]
			}
			wantIDs := ids(want)
			slices.Sort(wantIDs)
			if !slices.Equal(walked, wantIDs) {
				t.Fatalf("FailureIDs walked %v, want %v", walked, wantIDs)
			}
		})
	}
}

func TestFindFailuresSearchWindow(t *testing.T) {
	t.Parallel()
	db, clk := setup(t, func(o *Options) { o.SearchWindow = 50 })
	ctx := t.Context()
	all := genFailures(300, 6, clk.Now())
	for i, f := range all {
		f.OccurredAt = clk.Now().Add(time.Duration(i) * time.Second)
		f.ErrorMessage = "boom"
		if i%10 == 0 {
			f.ErrorMessage = "needle in the stack"
		}
	}
	if err := db.InsertFailures(ctx, all); err != nil {
		t.Fatal(err)
	}
	ff := FailureFilter{Q: "needle"}
	// The newest 50 failures hold 5 needles; 30 exist in all.
	n, exact, err := db.CountFailures(ctx, ff)
	if err != nil || n != 5 || exact {
		t.Fatalf("windowed count = %d exact=%v err=%v, want 5 and not exact", n, exact, err)
	}
	got, total, err := db.FindFailures(ctx, ff)
	if err != nil || total != 5 || len(got) != 5 || got[0].ID != 291 {
		t.Fatalf("windowed find = %v total %d err %v", ids(got), total, err)
	}
	// The window applies after the index-friendly conditions.
	ff.Conds = []Cond{{Field: FieldOccurredAt, Op: OpLt, Value: clk.Now().Add(100 * time.Second)}}
	n, exact, _ = db.CountFailures(ctx, ff)
	if n != 5 || exact {
		t.Fatalf("windowed count under a time bound = %d %v, want 5 (ids 51..100 hold 5)", n, exact)
	}
	ff.Conds = []Cond{{Field: FieldOccurredAt, Op: OpLt, Value: clk.Now().Add(40 * time.Second)}}
	n, exact, _ = db.CountFailures(ctx, ff)
	if n != 4 || !exact {
		t.Fatalf("count within a small range = %d %v, want 4 exact", n, exact)
	}
	// FailureIDs is exact regardless of the window.
	idsAll, err := db.FailureIDs(ctx, FailureFilter{Q: "needle"}, 0, 1000)
	if err != nil || len(idsAll) != 30 {
		t.Fatalf("FailureIDs = %d ids, %v; want 30", len(idsAll), err)
	}
}

func TestFailureFilterErrors(t *testing.T) {
	t.Parallel()
	db, _ := setup(t)
	for _, tc := range []struct {
		ff    FailureFilter
		param string
	}{
		{FailureFilter{Conds: []Cond{{Field: "password", Op: OpEq, Value: "x"}}}, "password"},
		{FailureFilter{Conds: []Cond{{Field: "class; DROP TABLE failures", Op: OpEq, Value: "x", Param: "filter[0][field]"}}}, "filter[0][field]"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: "regexp", Value: "x"}}}, "class"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: "= 1 OR 1 =", Value: "x"}}}, "class"},
		{FailureFilter{Conds: []Cond{{Field: FieldAccountID, Op: OpLike, Value: "1"}}}, "account_id"},
		{FailureFilter{Conds: []Cond{{Field: FieldAccountID, Op: OpEq, Value: "one"}}}, "account_id"},
		{FailureFilter{Conds: []Cond{{Field: FieldAccountID, Op: OpEq, Value: 1.5}}}, "account_id"},
		{FailureFilter{Conds: []Cond{{Field: FieldAccountID, Op: OpEq, Value: uint64(math.MaxUint64)}}}, "account_id"},
		{FailureFilter{Conds: []Cond{{Field: FieldKind, Op: OpEq, Value: "network", Param: "filter[1][value]"}}}, "filter[1][value]"},
		{FailureFilter{Conds: []Cond{{Field: FieldRetryStatus, Op: OpIn, Value: []any{"none", "later"}}}}, "retry_status"},
		{FailureFilter{Conds: []Cond{{Field: FieldRetryable, Op: OpEq, Value: "maybe"}}}, "retryable"},
		{FailureFilter{Conds: []Cond{{Field: FieldRetryable, Op: OpLt, Value: true}}}, "retryable"},
		{FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpGt, Value: "yesterday"}}}, "occurred_at"},
		{FailureFilter{Conds: []Cond{{Field: FieldOccurredAt, Op: OpIn, Value: []any{1}}}}, "occurred_at"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpIn, Value: []any{}}}}, "class"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpIn, Value: "a,b"}}}, "class"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpEq, Value: 5}}}, "class"},
		{FailureFilter{Conds: []Cond{{Field: FieldClass, Op: OpEq, Value: strings.Repeat("x", MaxFilterText+1)}}}, "class"},
		{FailureFilter{Sort: []SortKey{{Field: FieldErrorMessage, Param: "sort[0][field]"}}}, "sort[0][field]"},
		{FailureFilter{Sort: []SortKey{{Field: "random()"}}}, "random()"},
		{FailureFilter{Limit: MaxFailureLimit + 1}, "limit"},
		{FailureFilter{Limit: -1}, "limit"},
		{FailureFilter{Offset: -1}, "offset"},
		{FailureFilter{Offset: MaxFailureOffset + 1, Sort: []SortKey{{Field: FieldClass}, {Field: FieldQueue}, {Field: FieldKind}, {Field: FieldAttempt}}}, "offset"},
		{FailureFilter{Q: strings.Repeat("w ", MaxQWords+1)}, "q"},
		{FailureFilter{Q: "\xff\xfe"}, "q"},
	} {
		_, _, err := db.FindFailures(t.Context(), tc.ff)
		var fe *FilterError
		if !errors.As(err, &fe) || fe.Param != tc.param || !errors.Is(err, ErrInvalid) {
			t.Errorf("FindFailures(%+v) = %v, want a FilterError naming %q", tc.ff, err, tc.param)
		}
	}
	if _, err := db.FailureIDs(t.Context(), FailureFilter{}, 0, 0); err == nil {
		t.Error("FailureIDs accepted limit 0")
	}
}

// Values are bound, never spliced: text that looks like SQL is just text.
func TestFailureFilterValuesAreBound(t *testing.T) {
	t.Parallel()
	db, clk := setup(t)
	evil := `x' OR '1'='1`
	fs := genFailures(5, 8, clk.Now())
	fs[0].Class = evil
	if err := db.InsertFailures(t.Context(), fs); err != nil {
		t.Fatal(err)
	}
	for _, ff := range []FailureFilter{
		{Conds: []Cond{{Field: FieldClass, Op: OpEq, Value: evil}}},
		{Conds: []Cond{{Field: FieldClass, Op: OpLike, Value: "' OR '1'='1"}}},
		{Q: "' OR '1'='1"},
	} {
		got, n, err := db.FindFailures(t.Context(), ff)
		if err != nil || n != 1 || got[0].ID != fs[0].ID {
			t.Errorf("%+v = %v %d %v, want only the failure whose class is the quote", ff, ids(got), n, err)
		}
	}
}

// FuzzFailureFilter feeds outside-shaped filters (as the HTTP layer builds
// them from query parameters) to FindFailures: each is either refused with a
// *FilterError or answered; nothing reaches SQLite as text.
func FuzzFailureFilter(f *testing.F) {
	db, clk := setup(f)
	if err := db.InsertFailures(f.Context(), genFailures(60, 9, clk.Now())); err != nil {
		f.Fatal(err)
	}
	f.Add("class", "like", "Refresh", "", "occurred_at", true, 0, 50)
	f.Add("account_id", "in", "1", "timeout", "account_id", false, 5, 10)
	f.Add("occurred_at", ">=", "2026-03-01T12:00:00Z", "", "class", false, 0, 0)
	f.Add("kind", "=", "transient' OR 1=1 --", "%_", "kind", true, 0, 1000)
	f.Add("retryable", "!=", "true", "a b c", "id", true, 1, 1)
	f.Add("error_message", "like", `\%`, "", "fingerprint", false, 0, 3)
	f.Add("job_id", "<", "18446744073709551615", "", "job_id", true, 0, 7)
	f.Add("occurred_at", "<=", "9223372036854775807", "", "id", false, 0, 5)
	f.Add("occurred_at", ">", "9223372036854775807", "", "id", false, 0, 5)
	f.Add("occurred_at", "=", "1772366400000", "", "id", false, 0, 5)
	f.Fuzz(func(t *testing.T, field, op, value, q, sortField string, desc bool, offset, limit int) {
		var v any = value
		if op == "in" {
			var vals []any
			for _, s := range strings.Split(value, ",") {
				vals = append(vals, s)
			}
			v = vals
		}
		ff := FailureFilter{
			Conds:  []Cond{{Field: Field(field), Op: Op(op), Value: v, Param: "filter[0]"}},
			Q:      q,
			Sort:   []SortKey{{Field: Field(sortField), Desc: desc}},
			Offset: offset,
			Limit:  limit,
		}
		got, total, err := db.FindFailures(t.Context(), ff)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("%+v: %v (not a FilterError)", ff, err)
			}
			return
		}
		if total < len(got) || len(got) > max(limit, DefaultFailureLimit) {
			t.Fatalf("%+v: page of %d with total %d", ff, len(got), total)
		}
		n, exact, err := db.CountFailures(t.Context(), ff)
		if err != nil {
			t.Fatalf("count: %v", err)
		}
		ids, err := db.FailureIDs(t.Context(), ff, 0, 1000)
		if err != nil {
			t.Fatalf("ids: %v", err)
		}
		// 60 rows: every count is exact and agrees with the exact walk.
		if !exact || n != len(ids) || (ff.Offset == 0 && len(got) < ff.Limit && total != n) {
			t.Fatalf("%+v: count %d (exact %v), %d ids, total %d", ff, n, exact, len(ids), total)
		}
	})
}

func TestCountCapBoundsUnrolledCounts(t *testing.T) {
	t.Parallel()
	db, clk := setup(t, func(o *Options) { o.CountCap = 10 })
	ctx := t.Context()
	fs := genFailures(40, 11, clk.Now())
	for i, f := range fs {
		f.Attempt = i % 4
	}
	if err := db.InsertFailures(ctx, fs); err != nil {
		t.Fatal(err)
	}
	// attempt is not rolled up: counted up to the cap.
	n, exact, err := db.CountFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldAttempt, Op: OpGe, Value: 1}}})
	if err != nil || n != 10 || exact {
		t.Fatalf("capped count = %d exact=%v %v, want 10 and not exact", n, exact, err)
	}
	_, total, err := db.FindFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldAttempt, Op: OpGe, Value: 1}}, Limit: 5})
	if err != nil || total != 10 {
		t.Fatalf("FindFailures total = %d, %v; want the cap", total, err)
	}
	n, exact, _ = db.CountFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldAttempt, Op: OpEq, Value: 3}, {Field: FieldJobID, Op: OpLt, Value: 1020}}})
	if n != 5 || !exact {
		t.Fatalf("small count = %d exact=%v, want 5 exact", n, exact)
	}
	// Roll-up counts are exact past the cap.
	n, exact, _ = db.CountFailures(ctx, FailureFilter{Conds: []Cond{{Field: FieldKind, Op: OpIn, Value: []any{"transient", "runtime", "authentication"}}}})
	if n != 40 || !exact {
		t.Fatalf("roll-up count = %d exact=%v, want 40 exact", n, exact)
	}
}
