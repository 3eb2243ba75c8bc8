package ui

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"conveyor/queue"
)

// enqueueBodies are bodies for the fast decoder: fast says whether it
// takes them (the rest go the general way, which accepts or refuses them).
var enqueueBodies = []struct {
	body string
	fast bool
}{
	{`{"class":"NoopJob"}`, true},
	{`{}`, true},
	{` { } `, true},
	{`{"class":"NoopJob","args":{"pad":"xxxx"}}`, true},
	{"\t{ \"class\" : \"NoopJob\" ,\n\"args\" : [1, -2.5e+3, \"a\\u00e9\\n\", true, false, null, {}] }\r\n", true},
	{`{"class":"SyncAccountJob","queue":"sync","args":{"account_id":7},"max_attempts":3}`, true},
	{`{"class":"SleepJob","args":{"ms":5},"in_seconds":1.5,"unique_key":"k","context":{"account_id":"1","b":""}}`, true},
	{`{"class":"NoopJob","run_at":"2026-05-01T12:00:00.250+02:00"}`, true},
	{`{"class":"NoopJob","in_seconds":-0.0}`, true},
	{`{"class":"NoopJob","in_seconds":0,"max_attempts":-0}`, true},
	{`{"class":"NoopJob","max_attempts":-9223372036854775808}`, true},
	{`{"class":"NoopJob","context":{}}`, true},
	{`{"class":"NoopJob","args":null}`, true},
	{`{"class":"NoopJob","args":"\ud800"}`, true},
	{"{\"class\":\"NoopJob\",\"args\":\"\xff\"}", true},
	{`{"class":"Nöop"}`, true},

	{`{"class":"NoopJob","max_attempts":9223372036854775808}`, false},
	{`{"class":"NoopJob","max_attempts":1.0}`, false},
	{`{"class":"NoopJob","max_attempts":1e1}`, false},
	{`{"class":"NoopJob","in_seconds":1e400}`, false},
	{`{"class":"NoopJob","in_seconds":01}`, false},
	{`{"class":"NoopJob","in_seconds":1.}`, false},
	{`{"class":"NoopJob","in_seconds":"1"}`, false},
	{`{"class":null}`, false},
	{`{"class":"Noop\u004aob"}`, false},
	{`{"class":"Noop\"Job"}`, false},
	{"{\"class\":\"\xff\"}", false},
	{"{\"class\":\"a\tb\"}", false},
	{`{"class":"NoopJob","class":"SleepJob"}`, false},
	{`{"Class":"NoopJob"}`, false},
	{`{"class":"NoopJob","extra":1}`, false},
	{`{"class":"NoopJob","context":{"a":"1","a":"2"}}`, false},
	{`{"class":"NoopJob","context":{"a":1}}`, false},
	{`{"class":"NoopJob","context":null}`, false},
	{`{"class":"NoopJob"} trailing`, false},
	{`{"class":"NoopJob"}{}`, false},
	{`{"class":"NoopJob",}`, false},
	{`{,"class":"NoopJob"}`, false},
	{`{"class":"NoopJob" "queue":"default"}`, false},
	{`{"class":"NoopJob","args":{"a":1,}}`, false},
	{`{"class":"NoopJob","args":[1 2]}`, false},
	{`{"class":"NoopJob","args":tru}`, false},
	{`{"class":"NoopJob","args":"\x"}`, false},
	{`{"class":"NoopJob","args":"\u12"}`, false},
	{`{"class":"NoopJob","args":` + deep(maxScanDepth+2) + `}`, false},
	{`[]`, false}, {`{`, false}, {``, false}, {`""`, false}, {`null`, false},
}

// deep is n nested arrays.
func deep(n int) string {
	s := ""
	for range n {
		s = "[" + s
	}
	for range n {
		s += "]"
	}
	return s
}

// TestEnqueueFast: the plain bodies take the one-pass way and come out as
// the general decoder makes them; the others go the general way.
func TestEnqueueFast(t *testing.T) {
	t.Parallel()
	for _, c := range enqueueBodies {
		got, ok := decodeEnqueueFast([]byte(c.body))
		if ok != c.fast {
			t.Errorf("%q: fast %v, want %v", c.body, ok, c.fast)
			continue
		}
		if ok {
			var want enqueueRequest
			if err := decodeJSON([]byte(c.body), &want, ""); err != nil {
				t.Errorf("%q: taken fast, but the general decoder refuses it: %v", c.body, err)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%q: fast %+v, general %+v", c.body, got, want)
			}
		}
	}
}

// FuzzEnqueueFast: whatever the one-pass decoder takes, the general one
// takes too, and both make the same request of it.
func FuzzEnqueueFast(f *testing.F) {
	for _, c := range enqueueBodies {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeEnqueueFast(body)
		if !ok {
			return
		}
		var want enqueueRequest
		if err := decodeJSON(body, &want, ""); err != nil {
			t.Fatalf("%q: taken fast, but the general decoder refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast %+v, general %+v", body, got, want)
		}
	})
}

// TestEnqueuedAppendJSON: the enqueue answer encodes itself as
// json.Marshal does, whatever its state's name holds.
func TestEnqueuedAppendJSON(t *testing.T) {
	t.Parallel()
	states := []string{"", "a<b>&c", "quote\" back\\", "tab\t nul\x00", "é", "\u2028", "\xff"}
	for st := queue.State(0); st <= queue.StateDead+1; st++ {
		states = append(states, st.String())
	}
	for _, state := range states {
		for _, id := range []uint64{0, 1, math.MaxUint64} {
			for _, dup := range []bool{false, true} {
				v := enqueuedJSON{ID: id, State: state, Duplicate: dup}
				want, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if got := v.appendJSON(nil); string(got) != string(want) {
					t.Errorf("%+v: %s, json.Marshal %s", v, got, want)
				}
			}
		}
	}
}
