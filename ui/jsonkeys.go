package ui

// This file holds decodeBody's key check: encoding/json matches object keys
// to struct fields ignoring case and lets a repeated key win over the first,
// so {"class":"NoopJob","CLASS":"SleepJob"} decoded as a SleepJob. The
// check refuses both before the body is decoded.

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// errKeysUnchecked stops the key check where the JSON is not well formed
// (or ends): the decoding that follows reports that, with its position.
var errKeysUnchecked = errors.New("ui: keys not checked")

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys reads one JSON value from dec, guided by t, the Go type it is to
// be decoded into, and refuses (with a 400 naming the key under field) a key
// that names a field of a struct only when case is ignored, a key no field
// has, and a key given twice in one object (of a struct or a map). A value
// whose type decodes itself (json.RawMessage, time.Time, …) or is an
// interface is not looked into. It returns errKeysUnchecked when the JSON
// ends or is malformed.
func checkKeys(dec *json.Decoder, t reflect.Type, field string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == nil, t.Kind() == reflect.Interface, decodesItself(t),
		t.Kind() != reflect.Struct && t.Kind() != reflect.Map && t.Kind() != reflect.Slice && t.Kind() != reflect.Array:
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errKeysUnchecked
		}
		return nil
	}
	tok, err := dec.Token()
	if err != nil {
		return errKeysUnchecked
	}
	switch tok {
	case json.Delim('{'):
		var fields *structFields
		if t.Kind() == reflect.Struct {
			fields = fieldsOf(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return errKeysUnchecked
			}
			key, _ := tok.(string)
			name := joinField(field, key)
			if seen[key] {
				return malformed(name, "given twice: give each key once")
			}
			seen[key] = true
			var elem reflect.Type
			switch t.Kind() {
			case reflect.Struct:
				ft, ok := fields.exact[key]
				if !ok {
					for _, known := range fields.names {
						if strings.EqualFold(known, key) {
							return malformed(name, "unknown field (keys are case-sensitive: did you mean %q?)", known)
						}
					}
					return malformed(name, "unknown field")
				}
				elem = ft
			case reflect.Map:
				elem = t.Elem()
			}
			if err := checkKeys(dec, elem, name); err != nil {
				return err
			}
		}
	case json.Delim('['):
		var elem reflect.Type
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkKeys(dec, elem, fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return err
			}
		}
	default:
		return nil // a scalar where a container was wanted: the decoder says so
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errKeysUnchecked
	}
	return nil
}

// decodesItself reports whether values of t decode themselves.
func decodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshalerType) || pt.Implements(jsonUnmarshalerType) ||
		t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType)
}

// structFields are the JSON keys of a struct type, as encoding/json names
// them, with their types.
type structFields struct {
	exact map[string]reflect.Type
	names []string
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf returns t's JSON keys: exported fields by their json tag's name
// or their Go name, without "-", with the fields of untagged embedded
// structs promoted.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{exact: map[string]reflect.Type{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				et := f.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					add(et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := sf.exact[name]; !dup {
				sf.exact[name] = f.Type
				sf.names = append(sf.names, name)
			}
		}
	}
	add(t)
	f, _ := fieldCache.LoadOrStore(t, sf)
	return f.(*structFields)
}
