package cron

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parseString(t *testing.T, src string) []Entry {
	t.Helper()
	entries, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return entries
}

// entryErrors parses src, expects it to fail, and returns the entry errors.
func entryErrors(t *testing.T, src string) []*EntryError {
	t.Helper()
	entries, err := Parse(strings.NewReader(src))
	if err == nil {
		t.Fatalf("Parse accepted it: %+v", entries)
	}
	if entries != nil {
		t.Errorf("Parse returned entries with an error: %+v", entries)
	}
	var out []*EntryError
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var ee *EntryError
			if !errors.As(e, &ee) {
				t.Fatalf("not an *EntryError: %v", e)
			}
			out = append(out, ee)
		}
		return out
	}
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("not an *EntryError: %v", err)
	}
	return []*EntryError{ee}
}

func TestParseHashForm(t *testing.T) {
	t.Parallel()
	src := `# comment
zeta_first:
  cron: "*/5 * * * *"
  class: HardWorker
  queue: hard_worker
  args: [1, "two", 3.5, true, null, {b: 1, a: [x]}]
  description: |
    Runs the hard worker
    every five minutes.
alpha_second:
  cron: "0 22 * * 1-5 America/Chicago"
  klass: "SecondClass"
  args:
    zebra: stuff
    apple: 2
    when: 2024-01-02
  status: disabled
  missed: run_once
  catch_up_window: 6h
  retry: false
  date_as_argument: true
  active_job: true
  queue_name_prefix: prod
  namespace: default
third:
  cron: "@daily"
  class: Third
  missed: run_once
  retry: 5
fourth:
  cron: "0 3 * * *"
  class: Fourth
  missed: run_once
  catch_up_window: 5400
  retry: true
`
	entries := parseString(t, src)
	if len(entries) != 4 {
		t.Fatalf("got %d entries", len(entries))
	}
	a, b, c, d := entries[0], entries[1], entries[2], entries[3]
	if a.Name != "zeta_first" || b.Name != "alpha_second" || c.Name != "third" || d.Name != "fourth" {
		t.Errorf("file order lost: %s, %s, %s, %s", a.Name, b.Name, c.Name, d.Name)
	}
	if a.Line != "*/5 * * * *" || a.Spec != "*/5 * * * *" || a.Zone != time.UTC || a.Class != "HardWorker" || a.Queue != "hard_worker" {
		t.Errorf("first entry: %+v", a)
	}
	if got := string(a.Args); got != `[1,"two",3.5,true,null,{"b":1,"a":["x"]}]` {
		t.Errorf("array args = %s", got)
	}
	if a.Description != "Runs the hard worker\nevery five minutes.\n" || !a.Enabled || a.Policy != Skip || a.CatchUpWindow != 0 || a.Retry != nil || a.DateAsArgument || a.Ignored != nil {
		t.Errorf("first entry defaults: %+v", a)
	}
	if b.Line != "0 22 * * 1-5 America/Chicago" || b.Spec != "0 22 * * 1-5" || b.Zone.String() != "America/Chicago" || b.Class != "SecondClass" || b.Queue != "" {
		t.Errorf("second entry: %+v", b)
	}
	if got := string(b.Args); got != `{"zebra":"stuff","apple":2,"when":"2024-01-02"}` {
		t.Errorf("hash args = %s (key order must be kept)", got)
	}
	if b.Enabled || b.Policy != RunOnce || b.CatchUpWindow != 6*time.Hour || b.Retry == nil || *b.Retry != 0 || !b.DateAsArgument {
		t.Errorf("second entry options: %+v", b)
	}
	if strings.Join(b.Ignored, ",") != "active_job,queue_name_prefix,namespace" {
		t.Errorf("Ignored = %v", b.Ignored)
	}
	if c.Policy != RunOnce || c.CatchUpWindow != DefaultCatchUpWindow || c.Retry == nil || *c.Retry != 5 || c.Args != nil {
		t.Errorf("third entry: %+v", c)
	}
	if d.CatchUpWindow != 90*time.Minute || d.Retry != nil {
		t.Errorf("fourth entry: %+v", d)
	}
	for _, e := range entries {
		if _, err := e.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Errorf("%s: Next: %v", e.Name, err)
		}
	}
}

func TestParseListForm(t *testing.T) {
	t.Parallel()
	src := `
- name: first
  cron: "1 * * * *"
  class: MyClass
  args: '(OPTIONAL) [Array or Hash]'
- name: Cool Job for Second Class
  cron: "*/5 * * * *"
  class: SecondClass
`
	_, err := Parse(strings.NewReader(src))
	if err == nil || !strings.Contains(err.Error(), `entry "first" (line 5), field "args": want an array`) {
		t.Fatalf("scalar args: %v", err)
	}
	entries := parseString(t, strings.Replace(src, "args: '(OPTIONAL) [Array or Hash]'", "args: [1]", 1))
	if len(entries) != 2 || entries[0].Name != "first" || entries[1].Name != "Cool Job for Second Class" || string(entries[0].Args) != "[1]" {
		t.Fatalf("list form: %+v", entries)
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	t.Parallel()
	src := `
every_minute: &base
  cron: "* * * * *"
  class: Base
  queue: maintenance
  args: &args {account: 1, kind: [a, b]}
derived:
  <<: *base
  class: Derived
  args: *args
both:
  <<: [{queue: first, class: A}, {queue: second, cron: "0 * * * *"}]
`
	entries := parseString(t, src)
	if len(entries) != 3 {
		t.Fatalf("got %d entries", len(entries))
	}
	d := entries[1]
	if d.Class != "Derived" || d.Queue != "maintenance" || d.Spec != "* * * * *" || string(d.Args) != `{"account":1,"kind":["a","b"]}` {
		t.Errorf("merged entry: %+v", d)
	}
	b := entries[2]
	if b.Queue != "first" || b.Class != "A" || b.Spec != "0 * * * *" {
		t.Errorf("merge list (earlier wins): %+v", b)
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "\n", "# only a comment\n", "---\n", "~\n", "{}\n"} {
		entries, err := Parse(strings.NewReader(src))
		if err != nil || len(entries) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want an empty schedule", src, entries, err)
		}
	}
}

func TestParseFileLevelErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ src, want string }{
		{"just a string\n", "want a hash of entries"},
		{"- 1\n", "an entry must be a hash"},
		{"a: [\n", "schedule: yaml"},
		{"a:\n  cron: x\n---\nb: 1\n", "a second YAML document"},
		{"[a, b]: {cron: x}\n", "top-level keys must be entry names"},
		{"<<: {a: 1}\n", "top-level keys must be entry names"},
	}
	for _, c := range cases {
		_, err := Parse(strings.NewReader(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want it to mention %q", c.src, err, c.want)
		}
	}
}

func TestParseEntryErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		src    string
		entry  string
		line   int
		field  string
		reason string
		is     error
	}{
		{"unknown key with suggestion", "job:\n  cron: '* * * * *'\n  class: A\n  queu: x\n", "job", 4, "queu", `unknown key; did you mean "queue"?`, nil},
		{"unknown key", "job:\n  cron: '* * * * *'\n  class: A\n  priority: 3\n", "job", 4, "priority", "unknown key (known: name, cron", nil},
		{"missing cron", "job:\n  class: A\n", "job", 1, "cron", "missing", nil},
		{"missing class", "job:\n  cron: '* * * * *'\n", "job", 1, "class", "missing", nil},
		{"empty entry", "job:\n", "job", 1, "", "the entry is empty", nil},
		{"scalar entry", "job: 5\n", "job", 1, "", "must be a hash", nil},
		{"natural language", "job:\n  cron: every 3 hours\n  class: A\n", "job", 2, "cron", `"0 */3 * * *"`, ErrNaturalLanguage},
		{"impossible", "job:\n  class: A\n  cron: '0 0 31 2 *'\n", "job", 3, "cron", "never fires", ErrNever},
		{"bad field", "job:\n  class: A\n  cron: '0 25 * * *'\n", "job", 3, "cron", `hour field "25": 25 out of range 0-23`, nil},
		{"unknown zone", "job:\n  class: A\n  cron: '0 2 * * * Europe/Atlantis'\n", "job", 3, "cron", `unknown time zone "Europe/Atlantis"`, nil},
		{"cron not a string", "job:\n  class: A\n  cron: 5\n", "job", 3, "cron", "want a string", nil},
		{"cron a list", "job:\n  class: A\n  cron: [1]\n", "job", 3, "cron", "want a string", nil},
		{"bad status", "job:\n  cron: '* * * * *'\n  class: A\n  status: paused\n", "job", 4, "status", "want enabled or disabled", nil},
		{"bad missed", "job:\n  cron: '* * * * *'\n  class: A\n  missed: catch_up\n", "job", 4, "missed", "want skip", nil},
		{"window with skip", "job:\n  cron: '* * * * *'\n  class: A\n  catch_up_window: 1h\n", "job", 4, "catch_up_window", "applies only with missed: run_once", nil},
		{"window too short", "job:\n  cron: '* * * * *'\n  class: A\n  missed: run_once\n  catch_up_window: 30s\n", "job", 5, "catch_up_window", "shorter than the 1m0s", nil},
		{"window garbage", "job:\n  cron: '* * * * *'\n  class: A\n  missed: run_once\n  catch_up_window: soon\n", "job", 5, "catch_up_window", "want a duration", nil},
		{"bad retry", "job:\n  cron: '* * * * *'\n  class: A\n  retry: -1\n", "job", 4, "retry", "want a number of retries", nil},
		{"bad date_as_argument", "job:\n  cron: '* * * * *'\n  class: A\n  date_as_argument: yes please\n", "job", 4, "date_as_argument", "want true or false", nil},
		{"class and klass", "job:\n  cron: '* * * * *'\n  class: A\n  klass: B\n", "job", 4, "klass", "class and klass both set", nil},
		{"class with spaces", "job:\n  cron: '* * * * *'\n  class: Hard Worker\n", "job", 3, "class", "is not a class name", nil},
		{"empty queue", "job:\n  cron: '* * * * *'\n  class: A\n  queue: ''\n", "job", 4, "queue", "is not a queue name", nil},
		{"raw message", "job:\n  cron: '* * * * *'\n  class: A\n  message: '{}'\n", "job", 4, "message", "raw Sidekiq message is not supported", nil},
		{"name mismatch", "job:\n  name: other\n  cron: '* * * * *'\n  class: A\n", "job", 2, "name", `"other" differs from the entry's key "job"`, nil},
		{"list without name", "- cron: '* * * * *'\n  class: A\n", "", 1, "name", "missing; an entry of a list needs a name", nil},
		{"duplicate key", "job:\n  cron: '* * * * *'\n  class: A\n  class: B\n", "job", 4, "", `key "class" appears twice`, nil},
		{"bad name", "\" job\":\n  cron: '* * * * *'\n  class: A\n", " job", 1, "", "starts or ends with spaces", nil},
		{"float args", "job:\n  cron: '* * * * *'\n  class: A\n  args: [.inf]\n", "job", 4, "args", "cannot be written as JSON", nil},
		{"custom tag args", "job:\n  cron: '* * * * *'\n  class: A\n  args: [!ruby/object:Foo {}]\n", "job", 4, "args", "unsupported YAML tag", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			errs := entryErrors(t, c.src)
			if len(errs) != 1 {
				t.Fatalf("got %d errors: %v", len(errs), errs)
			}
			e := errs[0]
			if e.Entry != c.entry || e.Line != c.line || e.Field != c.field || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("got {Entry:%q Line:%d Field:%q Reason:%q}, want {%q %d %q …%q…}", e.Entry, e.Line, e.Field, e.Reason, c.entry, c.line, c.field, c.reason)
			}
			if c.is != nil && !errors.Is(e, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", e, c.is)
			}
			msg := e.Error()
			if !strings.HasPrefix(msg, "schedule: entry ") || !strings.Contains(msg, "(line ") || (c.field != "" && !strings.Contains(msg, `field "`+c.field+`"`)) {
				t.Errorf("message %q does not name the entry, line and field", msg)
			}
		})
	}
}

func TestParseReportsEveryBadEntry(t *testing.T) {
	t.Parallel()
	src := `
good:
  cron: "* * * * *"
  class: Good
bad_one:
  cron: "every 3 hours"
  class: A
  queu: x
bad_two:
  cron: "0 0 31 2 *"
good:
  cron: "*/2 * * * *"
  class: Again
`
	errs := entryErrors(t, src)
	type got struct {
		entry, field string
		line         int
	}
	want := []got{{"bad_one", "cron", 6}, {"bad_one", "queu", 8}, {"bad_two", "cron", 10}, {"bad_two", "class", 9}, {"good", "name", 11}}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d: %v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Entry != w.entry || errs[i].Field != w.field || errs[i].Line != w.line {
			t.Errorf("error %d = %v, want entry %q field %q line %d", i, errs[i], w.entry, w.field, w.line)
		}
	}
	if !strings.Contains(errs[4].Reason, "duplicate name; the first entry with it is on line 2") {
		t.Errorf("duplicate: %v", errs[4])
	}
}

func TestParseDuplicateListNames(t *testing.T) {
	t.Parallel()
	errs := entryErrors(t, "- {name: a, cron: '* * * * *', class: A}\n- {name: a, cron: '* * * * *', class: B}\n")
	if len(errs) != 1 || errs[0].Line != 2 || !strings.Contains(errs[0].Reason, "duplicate name") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 12; i++ {
		b.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + strconv.Itoa(i-1))
		}
		b.WriteString("]\n")
	}
	b.WriteString("job:\n  cron: '* * * * *'\n  class: A\n  args: *a12\n")
	errs := entryErrors(t, b.String())
	last := errs[len(errs)-1]
	if last.Entry != "job" || last.Field != "args" || !strings.Contains(last.Reason, "more than 10000 values") {
		t.Fatalf("last error = %v", last)
	}
	// The merge-key variant.
	var m strings.Builder
	m.WriteString("m0: &m0 {k: v}\n")
	for i := 1; i <= 30; i++ {
		m.WriteString("m" + strconv.Itoa(i) + ": &m" + strconv.Itoa(i) + " {<<: [*m" + strconv.Itoa(i-1) + ", *m" + strconv.Itoa(i-1) + "]}\n")
	}
	m.WriteString("job:\n  <<: *m30\n  cron: '* * * * *'\n  class: A\n")
	errs = entryErrors(t, m.String())
	last = errs[len(errs)-1]
	if last.Entry != "job" || !strings.Contains(last.Reason, "more than 10000 values") {
		t.Fatalf("merge bomb: last error = %v", last)
	}
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "schedule.yml")
	if err := os.WriteFile(path, []byte("job:\n  cron: '* * * * *'\n  class: A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := ParseFile(path)
	if err != nil || len(entries) != 1 {
		t.Fatalf("ParseFile = %v, %v", entries, err)
	}
	if err := os.WriteFile(path, []byte("job:\n  cron: '* * * * *'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ParseFile(path)
	var ee *EntryError
	if !errors.As(err, &ee) || !strings.HasPrefix(err.Error(), path+": schedule: entry \"job\"") {
		t.Errorf("ParseFile error = %v", err)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestArgsAt(t *testing.T) {
	t.Parallel()
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // 1767225600
	cases := []struct {
		args string
		date bool
		want string
	}{
		{`[1,"a"]`, false, `[1,"a"]`},
		{`[1,"a"]`, true, `[1,"a",1767225600]`},
		{`{"a":1}`, true, `[{"a":1},1767225600]`},
		{``, true, `[1767225600]`},
		{`[]`, true, `[1767225600]`},
	}
	for _, c := range cases {
		e := Entry{Name: "x", DateAsArgument: c.date}
		if c.args != "" {
			e.Args = []byte(c.args)
		}
		got, err := e.ArgsAt(tick)
		if err != nil || string(got) != c.want {
			t.Errorf("ArgsAt(%s, date=%v) = %s, %v; want %s", c.args, c.date, got, err, c.want)
		}
	}
	if _, err := (Entry{Name: "x", DateAsArgument: true, Args: []byte(`"s"`)}).ArgsAt(tick); err == nil {
		t.Error("ArgsAt accepted scalar args")
	}
}
