package cron

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// EntryError is what is wrong with one entry of a schedule file.
type EntryError struct {
	Entry  string // the entry's name; empty when it has none
	Line   int    // the YAML line of the offending key or value (1-based)
	Field  string // the YAML key, e.g. "cron"; empty for the entry as a whole
	Reason string // what is wrong, and how to fix it when that is known
	Err    error  // the underlying error, if any (ErrNaturalLanguage, ErrNever, …)
}

func (e *EntryError) Error() string {
	var b strings.Builder
	b.WriteString("schedule: ")
	if e.Entry != "" {
		fmt.Fprintf(&b, "entry %q ", e.Entry)
	} else {
		b.WriteString("entry ")
	}
	fmt.Fprintf(&b, "(line %d)", e.Line)
	if e.Field != "" {
		fmt.Fprintf(&b, ", field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// Keys of an entry. The sidekiq-cron keys Conveyor honours:
const (
	keyName           = "name"
	keyCron           = "cron"
	keyClass          = "class"
	keyKlass          = "klass" // sidekiq-cron's alias of class
	keyQueue          = "queue"
	keyArgs           = "args"
	keyDescription    = "description"
	keyStatus         = "status"
	keyRetry          = "retry"
	keyDateAsArgument = "date_as_argument"
	// Conveyor's own:
	keyMissed        = "missed"
	keyCatchUpWindow = "catch_up_window"
)

// ignoredKeys are sidekiq-cron keys that mean nothing to Conveyor: Active
// Job plumbing (active_job, queue_name_prefix, queue_name_delimiter,
// symbolize_args), and sidekiq-cron's own bookkeeping (namespace, source).
// They are accepted, listed in Entry.Ignored, and reported by Check.
var ignoredKeys = []string{"active_job", "queue_name_prefix", "queue_name_delimiter", "symbolize_args", "namespace", "source"}

var knownKeys = []string{keyName, keyCron, keyClass, keyKlass, keyQueue, keyArgs, keyDescription, keyStatus, keyRetry, keyDateAsArgument, keyMissed, keyCatchUpWindow}

// maxNodes bounds the YAML nodes walked for one entry's args, aliases
// expanded, so an alias bomb is an error and not an outage.
const maxNodes = 10000

// maxDepth bounds the nesting of args and of merge keys.
const maxDepth = 64

// Parse reads a schedule in sidekiq-cron's YAML format: a hash keyed by
// entry name, or a list of entries that each carry a "name". File order is
// kept. Every invalid entry is reported, as *EntryError values joined with
// errors.Join; any error means no entries are returned. An empty file is an
// empty schedule.
//
// Keys of an entry:
//
//	cron              the cron line, optionally ending in an IANA zone (required; see ParseLine)
//	class             the job class (required; sidekiq-cron's alias "klass" also works)
//	queue             the queue; the class's default when absent
//	args              an array, or a hash passed as one argument
//	description       free text
//	status            enabled (default) or disabled
//	missed            skip (default) or run_once: what to do with ticks missed during downtime
//	catch_up_window   run_once only: how late a missed tick may still run, e.g. 6h (default 1h, at least 1m)
//	retry             sidekiq-cron's retry: a count, or false for none
//	date_as_argument  append the tick's Unix time to args
//	name              required in the list form; in the hash form it must match the key
//
// active_job, queue_name_prefix, queue_name_delimiter, symbolize_args,
// namespace and source are sidekiq-cron keys that Conveyor accepts and
// ignores. Any other key is an error, so that a typo cannot silently change
// what runs. YAML anchors, aliases and merge keys ("<<") work inside
// entries. ERB templates and natural-language lines are not supported.
func Parse(r io.Reader) ([]Entry, error) {
	items, err := parseItems(r)
	if err != nil {
		return nil, err
	}
	var errs []error
	entries := make([]Entry, 0, len(items))
	for _, it := range items {
		for _, e := range it.errs {
			errs = append(errs, e)
		}
		if it.entry != nil {
			entries = append(entries, *it.entry)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// ParseFile parses the schedule file at path (see Parse).
func ParseFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	defer f.Close()
	entries, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return entries, nil
}

// item is one entry of the file in order: parsed, or with its errors.
type item struct {
	name  string
	line  int
	entry *Entry // nil when errs is not empty
	errs  []*EntryError
}

// parseItems reads the whole file. The error is for problems with the file
// as a whole (bad YAML, not a hash or a list); entry problems are in items.
func parseItems(r io.Reader) ([]item, error) {
	dec := yaml.NewDecoder(r)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("schedule: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("schedule: %w", err)
		}
		return nil, fmt.Errorf("schedule: line %d: a second YAML document; a schedule is one document", extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	root, err := deref(root)
	if err != nil {
		return nil, withLine(err)
	}
	var items []item
	switch root.Kind {
	case yaml.MappingNode:
		if len(root.Content) == 0 {
			return nil, nil
		}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("schedule: line %d: top-level keys must be entry names", k.Line)
			}
			items = append(items, parseEntry(k.Value, true, k.Line, v))
		}
	case yaml.SequenceNode:
		for _, v := range root.Content {
			items = append(items, parseEntry("", false, v.Line, v))
		}
	case yaml.ScalarNode:
		if root.ShortTag() == "!!null" {
			return nil, nil
		}
		fallthrough
	default:
		return nil, fmt.Errorf("schedule: line %d: want a hash of entries keyed by name, or a list of entries with a name each", root.Line)
	}
	seen := make(map[string]int)
	for i := range items {
		it := &items[i]
		if it.name == "" {
			continue
		}
		if first, dup := seen[it.name]; dup {
			it.errs = append(it.errs, &EntryError{Entry: it.name, Line: it.line, Field: keyName,
				Reason: fmt.Sprintf("duplicate name; the first entry with it is on line %d", first)})
			it.entry = nil
			continue
		}
		seen[it.name] = it.line
	}
	return items, nil
}

// nodeError is a problem at one line of the YAML text.
type nodeError struct {
	line int
	msg  string
}

func (e *nodeError) Error() string { return e.msg }

func errAt(line int, format string, args ...any) error {
	return &nodeError{line: line, msg: fmt.Sprintf(format, args...)}
}

// withLine prefixes a nodeError with its line, for file-level messages.
func withLine(err error) error {
	var ne *nodeError
	if errors.As(err, &ne) {
		return fmt.Errorf("schedule: line %d: %s", ne.line, ne.msg)
	}
	return fmt.Errorf("schedule: %w", err)
}

// deref follows aliases.
func deref(n *yaml.Node) (*yaml.Node, error) {
	for range maxDepth {
		if n.Kind != yaml.AliasNode {
			return n, nil
		}
		if n.Alias == nil {
			return nil, errAt(n.Line, "alias without a target")
		}
		n = n.Alias
	}
	return nil, errAt(n.Line, "aliases nested too deep")
}

// pair is one key of a mapping after merge keys are applied.
type pair struct {
	key   string
	kline int
	value *yaml.Node
}

// pairs lists a mapping's keys in order, explicit keys first, then keys
// brought in by merge keys ("<<: *defaults") that are not set explicitly.
// Duplicate explicit keys are an error. budget counts the keys visited,
// merges expanded, and runs out on an alias bomb.
func pairs(m *yaml.Node, depth int, budget *int) ([]pair, error) {
	if depth > maxDepth {
		return nil, errAt(m.Line, "merge keys nested too deep")
	}
	var out, merged []pair
	seen := make(map[string]bool)
	for i := 0; i+1 < len(m.Content); i += 2 {
		if *budget--; *budget < 0 {
			return nil, errAt(m.Line, "more than %d values once aliases are expanded", maxNodes)
		}
		k, v := m.Content[i], m.Content[i+1]
		k, err := deref(k)
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode {
			return nil, errAt(k.Line, "keys must be plain values")
		}
		if k.ShortTag() == "!!merge" {
			more, err := mergeSources(v, depth, budget)
			if err != nil {
				return nil, err
			}
			merged = append(merged, more...)
			continue
		}
		if seen[k.Value] {
			return nil, errAt(k.Line, "key %q appears twice", k.Value)
		}
		seen[k.Value] = true
		out = append(out, pair{key: k.Value, kline: k.Line, value: v})
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// mergeSources reads the value of a merge key: a mapping, or a list of
// them, the earlier ones winning.
func mergeSources(v *yaml.Node, depth int, budget *int) ([]pair, error) {
	v, err := deref(v)
	if err != nil {
		return nil, err
	}
	var sources []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		sources = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, s := range v.Content {
			s, err := deref(s)
			if err != nil {
				return nil, err
			}
			if s.Kind != yaml.MappingNode {
				return nil, errAt(s.Line, "a merge key (<<) takes hashes")
			}
			sources = append(sources, s)
		}
	default:
		return nil, errAt(v.Line, "a merge key (<<) takes a hash or a list of hashes")
	}
	var out []pair
	seen := make(map[string]bool)
	for _, s := range sources {
		ps, err := pairs(s, depth+1, budget)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if !seen[p.key] {
				seen[p.key] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// entryParser collects the errors of one entry.
type entryParser struct {
	name string
	errs []*EntryError
}

func (p *entryParser) fail(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &EntryError{Entry: p.name, Line: line, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// failErr records err; a nodeError brings its own, more precise, line.
func (p *entryParser) failErr(line int, field string, err error) {
	var ne *nodeError
	if errors.As(err, &ne) {
		p.errs = append(p.errs, &EntryError{Entry: p.name, Line: ne.line, Field: field, Reason: ne.msg})
		return
	}
	p.errs = append(p.errs, &EntryError{Entry: p.name, Line: line, Field: field, Reason: err.Error(), Err: err})
}

// parseEntry reads one entry. In the hash form name is the key.
func parseEntry(name string, hashForm bool, line int, node *yaml.Node) item {
	p := &entryParser{name: name}
	it := func() item {
		return item{name: p.name, line: line, errs: p.errs}
	}
	if hashForm {
		if reason := badName(name); reason != "" {
			p.fail(line, "", "the entry name %s", reason)
			return it()
		}
	}
	node, err := deref(node)
	if err != nil {
		p.failErr(line, "", err)
		return it()
	}
	if node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null" {
		p.fail(line, "", "the entry is empty; it needs at least cron and class")
		return it()
	}
	if node.Kind != yaml.MappingNode {
		p.fail(node.Line, "", "an entry must be a hash of keys (cron, class, …)")
		return it()
	}
	budget := maxNodes
	ps, err := pairs(node, 0, &budget)
	if err != nil {
		p.failErr(node.Line, "", err)
		return it()
	}
	// The name comes first so every error can carry it.
	if i := slices.IndexFunc(ps, func(q pair) bool { return q.key == keyName }); i >= 0 {
		v := ps[i]
		s, ok := p.str(v, keyName)
		switch {
		case !ok:
		case hashForm && s != name:
			p.fail(v.value.Line, keyName, "%q differs from the entry's key %q; drop it or make them match", s, name)
		case !hashForm:
			if reason := badName(s); reason != "" {
				p.fail(v.value.Line, keyName, "the name %s", reason)
			} else {
				p.name = s
			}
		}
	} else if !hashForm {
		p.fail(line, keyName, "missing; an entry of a list needs a name")
	}

	e := &Entry{Name: p.name, Enabled: true, Policy: DefaultPolicy}
	var haveCron, haveClass bool
	var window *pair
	for _, kv := range ps {
		switch kv.key {
		case keyName:
		case keyCron:
			haveCron = true
			if s, ok := p.str(kv, keyCron); ok {
				sched, zone, err := parseLine(s)
				if err != nil {
					p.failErr(kv.value.Line, keyCron, err)
					continue
				}
				e.Line, e.Spec, e.Zone, e.sched = strings.TrimSpace(s), sched.spec, zone, sched
			}
		case keyClass, keyKlass:
			if haveClass {
				p.fail(kv.kline, kv.key, "class and klass both set; keep one")
				continue
			}
			haveClass = true
			if s, ok := p.str(kv, kv.key); ok {
				if s == "" || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsFunc(s, unicode.IsControl) {
					p.fail(kv.value.Line, kv.key, "%q is not a class name", s)
					continue
				}
				e.Class = s
			}
		case keyQueue:
			if s, ok := p.str(kv, keyQueue); ok {
				if s == "" || strings.ContainsFunc(s, unicode.IsSpace) || strings.ContainsFunc(s, unicode.IsControl) {
					p.fail(kv.value.Line, keyQueue, "%q is not a queue name", s)
					continue
				}
				e.Queue = s
			}
		case keyArgs:
			args, err := argsJSON(kv.value)
			if err != nil {
				p.failErr(kv.value.Line, keyArgs, err)
				continue
			}
			e.Args = args
		case keyDescription:
			if s, ok := p.str(kv, keyDescription); ok {
				e.Description = s
			}
		case keyStatus:
			if s, ok := p.str(kv, keyStatus); ok {
				switch s {
				case "enabled":
				case "disabled":
					e.Enabled = false
				default:
					p.fail(kv.value.Line, keyStatus, "%q: want enabled or disabled", s)
				}
			}
		case keyMissed:
			if s, ok := p.str(kv, keyMissed); ok {
				switch Policy(s) {
				case Skip, RunOnce:
					e.Policy = Policy(s)
				default:
					p.fail(kv.value.Line, keyMissed, "%q: want skip (fire nothing for ticks missed during downtime) or run_once (run the latest missed tick once, late)", s)
				}
			}
		case keyCatchUpWindow:
			window = &kv
		case keyRetry:
			if n, ok := p.retry(kv); ok {
				e.Retry = n
			}
		case keyDateAsArgument:
			if b, ok := p.boolean(kv, keyDateAsArgument); ok {
				e.DateAsArgument = b
			}
		case "message":
			p.fail(kv.kline, kv.key, "a raw Sidekiq message is not supported; give class, queue and args")
		default:
			if slices.Contains(ignoredKeys, kv.key) {
				e.Ignored = append(e.Ignored, kv.key)
				continue
			}
			reason := "unknown key"
			if near := nearest(kv.key); near != "" {
				reason += fmt.Sprintf("; did you mean %q?", near)
			}
			p.fail(kv.kline, kv.key, "%s (known: %s; accepted and ignored: %s)", reason,
				strings.Join(knownKeys, ", "), strings.Join(ignoredKeys, ", "))
		}
	}
	if window != nil {
		if d, ok := p.duration(*window); ok {
			switch {
			case e.Policy != RunOnce:
				p.fail(window.kline, keyCatchUpWindow, "applies only with missed: run_once")
			case d < Grace:
				p.fail(window.value.Line, keyCatchUpWindow, "%s is shorter than the %s every tick gets anyway", d, Grace)
			default:
				e.CatchUpWindow = d
			}
		}
	} else if e.Policy == RunOnce {
		e.CatchUpWindow = DefaultCatchUpWindow
	}
	if !haveCron {
		p.fail(line, keyCron, "missing; say when the job runs, e.g. cron: \"*/5 * * * *\"")
	}
	if !haveClass {
		p.fail(line, keyClass, "missing; name the job class to enqueue")
	}
	e.Name = p.name
	if len(p.errs) > 0 {
		return it()
	}
	return item{name: p.name, line: line, entry: e}
}

// badName says what is wrong with an entry name, or "" when nothing is.
func badName(s string) string {
	switch {
	case s == "":
		return "is empty"
	case strings.TrimSpace(s) != s:
		return fmt.Sprintf("%q starts or ends with spaces", s)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q contains control characters", s)
	case len(s) > 200:
		return "is longer than 200 bytes"
	}
	return ""
}

// str reads a string value.
func (p *entryParser) str(kv pair, field string) (string, bool) {
	v, err := deref(kv.value)
	if err != nil {
		p.failErr(kv.value.Line, field, err)
		return "", false
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.fail(v.Line, field, "want a string; quote the value")
		return "", false
	}
	return v.Value, true
}

func (p *entryParser) boolean(kv pair, field string) (bool, bool) {
	v, err := deref(kv.value)
	if err != nil {
		p.failErr(kv.value.Line, field, err)
		return false, false
	}
	var b bool
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		p.fail(v.Line, field, "want true or false")
		return false, false
	}
	return b, true
}

// retry reads sidekiq-cron's retry: a count, true (the queue's default) or
// false (no retries).
func (p *entryParser) retry(kv pair) (*int, bool) {
	v, err := deref(kv.value)
	if err != nil {
		p.failErr(kv.value.Line, keyRetry, err)
		return nil, false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!bool":
			var b bool
			if v.Decode(&b) == nil {
				if b {
					return nil, true
				}
				zero := 0
				return &zero, true
			}
		case "!!int", "!!str":
			if n, err := strconv.Atoi(strings.TrimSpace(v.Value)); err == nil && n >= 0 && n <= 1000 {
				return &n, true
			}
		}
	}
	p.fail(v.Line, keyRetry, "want a number of retries from 0 to 1000, true (the queue's default) or false (none)")
	return nil, false
}

// duration reads "90m", "6h", or a number of seconds.
func (p *entryParser) duration(kv pair) (time.Duration, bool) {
	v, err := deref(kv.value)
	if err != nil {
		p.failErr(kv.value.Line, kv.key, err)
		return 0, false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!int":
			if n, err := strconv.ParseInt(v.Value, 10, 64); err == nil && n >= 0 && n <= math.MaxInt64/int64(time.Second) {
				return time.Duration(n) * time.Second, true
			}
		case "!!str":
			if d, err := time.ParseDuration(v.Value); err == nil && d >= 0 {
				return d, true
			}
		}
	}
	p.fail(v.Line, kv.key, "want a duration such as 90m or 6h, or a number of seconds")
	return 0, false
}

// nearest returns the known key closest to a misspelt one, or "".
func nearest(key string) string {
	best, bestDist := "", 3
	for _, k := range slices.Concat(knownKeys, ignoredKeys) {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// argsJSON converts an args value to JSON, keeping the order of hash keys.
func argsJSON(n *yaml.Node) (json.RawMessage, error) {
	n, err := deref(n)
	if err != nil {
		return nil, err
	}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return nil, nil
	case n.Kind != yaml.SequenceNode && n.Kind != yaml.MappingNode:
		return nil, errors.New("want an array (args: [1, \"a\"]) or a hash; wrap a single value in [ ]")
	}
	var buf bytes.Buffer
	budget := maxNodes
	if err := writeJSON(&buf, n, &budget, 0); err != nil {
		return nil, err
	}
	return json.RawMessage(buf.Bytes()), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node, budget *int, depth int) error {
	n, err := deref(n)
	if err != nil {
		return err
	}
	*budget--
	if *budget < 0 {
		return fmt.Errorf("more than %d values once aliases are expanded", maxNodes)
	}
	if depth > maxDepth {
		return errAt(n.Line, "nested deeper than %d levels", maxDepth)
	}
	if tag := n.ShortTag(); (n.Kind == yaml.SequenceNode && tag != "!!seq") || (n.Kind == yaml.MappingNode && tag != "!!map") {
		return errAt(n.Line, "unsupported YAML tag %s", tag)
	}
	switch n.Kind {
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, c, budget, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.MappingNode:
		ps, err := pairs(n, 0, budget)
		if err != nil {
			return err
		}
		buf.WriteByte('{')
		for i, kv := range ps {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, kv.key)
			buf.WriteByte(':')
			if err := writeJSON(buf, kv.value, budget, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.ScalarNode:
		return writeScalar(buf, n)
	default:
		return errAt(n.Line, "unexpected YAML node")
	}
	return nil
}

func writeScalar(buf *bytes.Buffer, n *yaml.Node) error {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		buf.WriteString("null")
	case "!!str", "!!timestamp", "!!binary":
		writeString(buf, n.Value)
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return errAt(n.Line, "%v", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return errAt(n.Line, "%s cannot be written as JSON", n.Value)
		}
		buf.Write(b)
	default:
		return errAt(n.Line, "unsupported YAML tag %s", tag)
	}
	return nil
}

func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
