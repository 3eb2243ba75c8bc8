package lanes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Args says which args a class takes. Every class declares it (Register
// refuses one that does not): a Go type with ArgsOf (Typed handlers declare
// theirs), NoArgs, FreeForm for classes that take any JSON, or ArgsFunc for
// a hand-written check. NewJob checks a job's args with it at enqueue, so
// args that cannot run are refused with the field named instead of becoming
// a job that dies on its first attempt.
type Args interface {
	// Check returns nil when raw (JSON; nil or empty means none) is
	// acceptable, else an *ArgsError naming the field.
	Check(raw json.RawMessage) error
	// String describes the args for people, e.g. {ms: integer}.
	String() string
}

// ArgsError says what is wrong with a job's args. Field is the arg's JSON
// name (a dotted path for nested objects), "" when the args as a whole are
// wrong.
type ArgsError struct {
	Field  string
	Reason string
}

func (e *ArgsError) Error() string {
	if e.Field == "" {
		return "args: " + e.Reason
	}
	return "args." + e.Field + ": " + e.Reason
}

// ArgsValidator is implemented by an args type that checks values beyond
// their JSON types (ranges, enumerations). Validate returns an *ArgsError
// naming the field, or any error for the args as a whole.
type ArgsValidator interface {
	Validate() error
}

// NoArgs is for classes that take no args: none, null, {} or [] (a
// schedule entry without args).
var NoArgs Args = noArgs{}

type noArgs struct{}

func (noArgs) String() string { return "no args" }

func (noArgs) Check(raw json.RawMessage) error {
	switch a := string(bytes.TrimSpace(raw)); a {
	case "", "null", "{}", "[]":
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil && len(obj) > 0 {
		return &ArgsError{Field: sortedKeys(obj)[0], Reason: "unknown arg: this class takes no args"}
	}
	return &ArgsError{Reason: "this class takes no args (give none, null or {})"}
}

// FreeForm is for classes that take any JSON as args and interpret it
// themselves (NoopJob, declared classes that pass args on as they are).
var FreeForm Args = freeForm{}

type freeForm struct{}

func (freeForm) String() string { return "any JSON (free-form)" }

func (freeForm) Check(raw json.RawMessage) error {
	if a := bytes.TrimSpace(raw); len(a) > 0 && !json.Valid(a) {
		return &ArgsError{Reason: "not valid JSON"}
	}
	return nil
}

// ArgsFunc is a hand-written check; about says what it accepts.
func ArgsFunc(about string, check func(raw json.RawMessage) error) Args {
	return argsFunc{about: about, check: check}
}

type argsFunc struct {
	about string
	check func(json.RawMessage) error
}

func (a argsFunc) String() string { return a.about }

func (a argsFunc) Check(raw json.RawMessage) error {
	err := a.check(raw)
	var ae *ArgsError
	if err != nil && !errors.As(err, &ae) {
		return &ArgsError{Reason: err.Error()}
	}
	return err
}

// ArgsOf declares args of the struct type T, read from JSON with these
// rules: the args are an object (or none/null when no field is required);
// a key that is not one of T's JSON fields is refused; a field whose json
// tag has no omitempty (or omitzero) is required, and null counts as
// missing; every value must decode into its field's type; then, when T (or
// *T) is an ArgsValidator, Validate must pass. It panics when T is not a
// struct: that is a mistake in the code, found at start-up.
func ArgsOf[T any]() Args {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("lanes: ArgsOf[%s]: args must be a struct type", t))
	}
	return &typedArgs[T]{fields: argFields(t, nil)}
}

// argField is one JSON field of an args type.
type argField struct {
	name     string
	typ      reflect.Type
	required bool
}

type typedArgs[T any] struct {
	fields []argField
}

// argFields lists the JSON fields of struct t as encoding/json sees them,
// flattening untagged embedded structs.
func argFields(t reflect.Type, seen []reflect.Type) []argField {
	if slices.Contains(seen, t) {
		return nil
	}
	seen = append(seen, t)
	var out []argField
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, argFields(et, seen)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := slices.Contains(strings.Split(opts, ","), "omitempty") || slices.Contains(strings.Split(opts, ","), "omitzero")
		out = append(out, argField{name: name, typ: f.Type, required: !optional})
	}
	return out
}

func (a *typedArgs[T]) String() string {
	parts := make([]string, len(a.fields))
	for i, f := range a.fields {
		opt := ""
		if !f.required {
			opt = "?"
		}
		parts[i] = f.name + opt + ": " + jsonTypeName(f.typ)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func (a *typedArgs[T]) Check(raw json.RawMessage) error {
	_, err := a.decode(raw)
	return err
}

// lookup finds a field by its JSON name: exactly, else ignoring case (as
// encoding/json matches keys).
func (a *typedArgs[T]) lookup(key string) (argField, bool) {
	for _, f := range a.fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range a.fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return argField{}, false
}

// decode checks raw and decodes it into a T.
func (a *typedArgs[T]) decode(raw json.RawMessage) (T, error) {
	var out T
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		b = []byte("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		if !json.Valid(b) {
			return out, &ArgsError{Reason: "not valid JSON"}
		}
		return out, &ArgsError{Reason: fmt.Sprintf("want a JSON object %s (got %s)", a, jsonKind(b))}
	}
	for _, k := range sortedKeys(obj) {
		if _, ok := a.lookup(k); !ok {
			return out, &ArgsError{Field: k, Reason: fmt.Sprintf("unknown arg (the args are %s)", a)}
		}
	}
	for _, f := range a.fields {
		if !f.required {
			continue
		}
		v, ok := obj[f.name]
		if !ok {
			for k, kv := range obj {
				if strings.EqualFold(k, f.name) {
					v, ok = kv, true
				}
			}
		}
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return out, &ArgsError{Field: f.name, Reason: fmt.Sprintf("required %s is missing (the args are %s)", jsonTypeName(f.typ), a)}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			return out, &ArgsError{Field: field, Reason: fmt.Sprintf("want %s (got %s)", jsonTypeName(te.Type), te.Value)}
		}
		return out, &ArgsError{Reason: err.Error()}
	}
	var v any = &out
	if val, ok := v.(ArgsValidator); ok {
		if err := val.Validate(); err != nil {
			var ae *ArgsError
			if errors.As(err, &ae) {
				return out, ae
			}
			return out, &ArgsError{Reason: err.Error()}
		}
	}
	return out, nil
}

// DecodeArgs decodes a job's args into T with the rules of ArgsOf; the
// error is an *ArgsError.
func DecodeArgs[T any](raw json.RawMessage) (T, error) {
	return typedOf[T]().decode(raw)
}

// typedOf returns T's declaration (the reflection is cheap next to a job).
func typedOf[T any]() *typedArgs[T] { return ArgsOf[T]().(*typedArgs[T]) }

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonKind names the JSON kind of a valid value.
func jsonKind(b []byte) string {
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// jsonTypeName names a Go type as the JSON a client sends for it.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		if t == reflect.TypeFor[json.RawMessage]() {
			return "JSON"
		}
		return "array of " + jsonTypeName(t.Elem())
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeFor[json.RawMessage]() {
			return "JSON"
		}
		if t.String() == "time.Time" {
			return "RFC 3339 time"
		}
		return "object"
	case reflect.Interface:
		return "JSON"
	}
	return t.String()
}
