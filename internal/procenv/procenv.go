// Package procenv builds the environment of the programs Conveyor starts
// (the local AI service's start and stop commands, declared command job
// classes): a short list of harmless variables and those the operator
// names, never the rest of Conveyor's environment, which holds its API
// token and perhaps cloud credentials.
package procenv

import (
	"slices"
	"strings"
	"unicode"
)

// Base are the variables of Conveyor's environment every program it starts
// gets, when they are set.
var Base = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// Build returns "NAME=value" entries: first set (given values, in order,
// skipping empty ones), then each of Base and pass that lookup finds. A name
// given twice keeps its first value.
func Build(lookup func(string) (string, bool), set [][2]string, pass []string) []string {
	var env []string
	seen := map[string]bool{}
	add := func(name, v string) {
		if !seen[name] {
			seen[name] = true
			env = append(env, name+"="+v)
		}
	}
	for _, kv := range set {
		if kv[1] != "" {
			add(kv[0], kv[1])
		}
	}
	for _, name := range slices.Concat(Base, pass) {
		if v, ok := lookup(name); ok {
			add(name, v)
		}
	}
	return env
}

// ParseNames splits a list of variable names separated by commas or white
// space.
func ParseNames(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// ValidName reports whether name is a portable environment variable name:
// a letter or underscore, then letters, digits and underscores.
func ValidName(name string) bool {
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return name != ""
}
