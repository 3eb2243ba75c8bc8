package lanes

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"conveyor/queue"
)

type nested struct {
	Depth int `json:"depth"`
}

type embedded struct {
	Trace bool `json:"trace,omitempty"`
}

type sampleArgs struct {
	embedded
	AccountID int64    `json:"account_id"`
	Name      string   `json:"name,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Inner     *nested  `json:"inner,omitempty"`
	Hidden    string   `json:"-"`
}

func (a *sampleArgs) Validate() error {
	if a.AccountID <= 0 {
		return &ArgsError{Field: "account_id", Reason: "must be positive"}
	}
	return nil
}

func TestArgsOf(t *testing.T) {
	t.Parallel()
	spec := ArgsOf[sampleArgs]()
	if got, want := spec.String(), "{trace?: boolean, account_id: integer, name?: string, tags?: array of string, inner?: object}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, c := range []struct {
		name, raw   string
		field, want string // want: a substring of the reason; "" means accepted
	}{
		{"all fields", `{"account_id":3,"name":"x","tags":["a"],"inner":{"depth":2},"trace":true}`, "", ""},
		{"required only", `{"account_id":3}`, "", ""},
		{"case-insensitive key as encoding/json", `{"Account_ID":3}`, "", ""},
		{"unknown field", `{"account_id":3,"n":1}`, "n", "unknown arg"},
		{"the ignored field is unknown too", `{"account_id":3,"Hidden":"x"}`, "Hidden", "unknown arg"},
		{"missing required", `{"name":"x"}`, "account_id", "required integer is missing"},
		{"required null", `{"account_id":null}`, "account_id", "missing"},
		{"none at all", ``, "account_id", "missing"},
		{"null", `null`, "account_id", "missing"},
		{"wrong type", `{"account_id":"3"}`, "account_id", "want integer (got string)"},
		{"fraction for an integer", `{"account_id":1.5}`, "account_id", "want integer"},
		{"nested wrong type", `{"account_id":3,"inner":{"depth":"deep"}}`, "inner.depth", "want integer"},
		{"nested unknown field", `{"account_id":3,"inner":{"nope":1}}`, "", "unknown field"},
		{"array element type", `{"account_id":3,"tags":[1]}`, "tags", "want string"},
		{"not an object", `[1,2]`, "", "want a JSON object"},
		{"a string", `"x"`, "", "want a JSON object"},
		{"invalid JSON", `{"account_id":`, "", "not valid JSON"},
		{"validate", `{"account_id":-1}`, "account_id", "must be positive"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := spec.Check(json.RawMessage(c.raw))
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *ArgsError", err, err)
			}
			if ae.Field != c.field || !strings.Contains(ae.Reason, c.want) {
				t.Errorf("error field %q reason %q, want field %q and %q", ae.Field, ae.Reason, c.field, c.want)
			}
		})
	}
}

func TestNoArgsAndFreeForm(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{``, `null`, `{}`, `[]`, ` {} `} {
		if err := NoArgs.Check(json.RawMessage(raw)); err != nil {
			t.Errorf("NoArgs refused %q: %v", raw, err)
		}
	}
	for raw, field := range map[string]string{`{"a":1}`: "a", `[1]`: "", `3`: ""} {
		var ae *ArgsError
		if err := NoArgs.Check(json.RawMessage(raw)); !errors.As(err, &ae) || ae.Field != field {
			t.Errorf("NoArgs.Check(%s) = %v, want an *ArgsError on field %q", raw, err, field)
		}
	}
	for _, raw := range []string{``, `null`, `{"anything":[1,{"x":null}]}`, `[1,"two"]`, `7`} {
		if err := FreeForm.Check(json.RawMessage(raw)); err != nil {
			t.Errorf("FreeForm refused %q: %v", raw, err)
		}
	}
	if err := FreeForm.Check(json.RawMessage(`{`)); err == nil {
		t.Error("FreeForm accepted invalid JSON")
	}
}

func TestRegisterNeedsArgs(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	plain := HandlerFunc(func(context.Context, *queue.Job) error { return nil })
	err := r.Register(Class{Name: "Plain", Queue: "default", Handler: plain})
	if err == nil || !strings.Contains(err.Error(), "declares no args") || !strings.Contains(err.Error(), "FreeForm") {
		t.Fatalf("Register without args: %v", err)
	}
	if err := r.Register(Class{Name: "Free", Queue: "default", Handler: plain, Args: FreeForm}); err != nil {
		t.Fatal(err)
	}
	typed := Typed(func(context.Context, *queue.Job, SleepArgs) error { return nil })
	if err := r.Register(Class{Name: "Typed", Queue: "default", Handler: typed}); err != nil {
		t.Fatal(err)
	}
	c, _ := r.Lookup("Typed")
	if c.Args == nil || c.Args.String() != "{ms: integer}" {
		t.Errorf("Typed class's args = %v, want SleepArgs' declaration", c.Args)
	}
	if err := r.Register(Class{Name: "TooMany", Queue: "default", Handler: plain, Args: NoArgs, MaxAttempts: 1001}); err == nil {
		t.Error("Register accepted 1001 max attempts")
	}
}

func TestNewJob(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	if err := RegisterBuiltins(r); err != nil {
		t.Fatal(err)
	}
	r.MustRegister(Class{Name: "SyncJob", Queue: "sync", MaxAttempts: 5, Args: NoArgs,
		Handler: HandlerFunc(func(context.Context, *queue.Job) error { return nil })})
	r.MustRegister(Class{Name: "LostJob", Queue: "nowhere", Args: NoArgs,
		Handler: HandlerFunc(func(context.Context, *queue.Job) error { return nil })})
	topo := DefaultTopology()

	t.Run("defaults", func(t *testing.T) {
		nj, err := r.NewJob(topo, JobRequest{Class: "SyncJob", Context: map[string]string{"account_id": "4"}})
		if err != nil {
			t.Fatal(err)
		}
		if nj.Queue != "sync" || nj.MaxAttempts != 5 || nj.Context["account_id"] != "4" {
			t.Errorf("job %+v", nj)
		}
		nj, err = r.NewJob(topo, JobRequest{Class: "SleepJob", Queue: "maintenance", MaxAttempts: 2, Args: json.RawMessage(`{"ms":3}`)})
		if err != nil {
			t.Fatal(err)
		}
		if nj.Queue != "maintenance" || nj.MaxAttempts != 2 || string(nj.Args) != `{"ms":3}` {
			t.Errorf("job %+v", nj)
		}
		nj, err = r.NewJob(topo, JobRequest{Class: "NoopJob"})
		if err != nil || nj.MaxAttempts != 0 {
			t.Errorf("NoopJob: %+v %v (max attempts 0 leaves the store's default)", nj, err)
		}
		// Without lanes the queue is not checked (a Topology is optional).
		if _, err := r.NewJob(Topology{}, JobRequest{Class: "LostJob"}); err != nil {
			t.Errorf("no topology: %v", err)
		}
	})
	for _, c := range []struct {
		name        string
		req         JobRequest
		field, want string
	}{
		{"no class", JobRequest{}, "class", "is required"},
		{"unknown class", JobRequest{Class: "NopeJob"}, "class", `unknown class "NopeJob"`},
		{"class in another case", JobRequest{Class: "sleepjob"}, "class", `did you mean "SleepJob"`},
		{"unknown queue", JobRequest{Class: "NoopJob", Queue: "defualt"}, "queue", `unknown queue "defualt"`},
		{"class's queue unserved", JobRequest{Class: "LostJob"}, "queue", `class LostJob goes to queue "nowhere"`},
		{"max attempts negative", JobRequest{Class: "NoopJob", MaxAttempts: -1}, "max_attempts", "must be 1..1000"},
		{"max attempts over", JobRequest{Class: "NoopJob", MaxAttempts: 1001}, "max_attempts", "must be 1..1000 (got 1001)"},
		{"the issue's request", JobRequest{Class: "SleepJob", Args: json.RawMessage(`{"ms":15,"n":3}`)}, "args.n", "SleepJob: unknown arg"},
		{"missing ms", JobRequest{Class: "SleepJob", Args: json.RawMessage(`{}`)}, "args.ms", "SleepJob: required integer is missing"},
		{"ms as a string", JobRequest{Class: "SleepJob", Args: json.RawMessage(`{"ms":"15"}`)}, "args.ms", "SleepJob: want integer (got string)"},
		{"ms out of range", JobRequest{Class: "SleepJob", Args: json.RawMessage(`{"ms":-5}`)}, "args.ms", "SleepJob: must be 0..3600000"},
		{"bad fail kind", JobRequest{Class: "FailJob", Args: json.RawMessage(`{"kind":"flaky"}`)}, "args.kind", "FailJob: must be transient"},
		{"args to a class that takes none", JobRequest{Class: "SyncJob", Args: json.RawMessage(`{"x":1}`)}, "args.x", "SyncJob: unknown arg"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.NewJob(topo, c.req)
			var ve *queue.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v (%T), want *queue.ValidationError", err, err)
			}
			if ve.Field != c.field || !strings.Contains(ve.Reason, c.want) {
				t.Errorf("field %q reason %q, want field %q and %q", ve.Field, ve.Reason, c.field, c.want)
			}
		})
	}
}

// TestTypedDecodesLikeNewJob: a job whose args got past NewJob decodes in
// its handler; one that did not (written straight to the store) is
// discarded with the field named.
func TestTypedDecodesLikeNewJob(t *testing.T) {
	t.Parallel()
	var got SleepArgs
	h := Typed(func(_ context.Context, _ *queue.Job, a SleepArgs) error { got = a; return nil })
	if err := h.Perform(context.Background(), &queue.Job{Class: SleepJob, Args: json.RawMessage(`{"ms":7}`)}); err != nil || got.MS != 7 {
		t.Fatalf("Perform: %v, args %+v", err, got)
	}
	err := h.Perform(context.Background(), &queue.Job{Class: SleepJob, Args: json.RawMessage(`{"ms":15,"n":3}`)})
	var de *killError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "args.n") {
		t.Errorf("Perform with an unknown arg: %v, want a discard naming args.n", err)
	}
}

func FuzzArgsCheck(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `{"account_id":3}`, `{"account_id":"x"}`, `[1]`, `{"inner":{"depth":1},"account_id":2}`, `{"a`} {
		f.Add(s)
	}
	spec := ArgsOf[sampleArgs]()
	f.Fuzz(func(t *testing.T, raw string) {
		err := spec.Check(json.RawMessage(raw))
		if err == nil {
			// Accepted args always decode in the handler too.
			if _, err := DecodeArgs[sampleArgs](json.RawMessage(raw)); err != nil {
				t.Fatalf("Check accepted %q but DecodeArgs refused: %v", raw, err)
			}
			return
		}
		var ae *ArgsError
		if !errors.As(err, &ae) {
			t.Fatalf("Check(%q) = %v (%T), want *ArgsError", raw, err, err)
		}
	})
}
