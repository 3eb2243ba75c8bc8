package cron

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
)

// Known says which job classes and queues this Conveyor has, and which
// args a class takes. Any func may be nil, meaning every name (or args) is
// known.
type Known struct {
	Class func(name string) bool
	Queue func(name string) bool
	// Args checks an entry's args (as a tick would enqueue them) against
	// its class's declaration; an error makes the entry invalid.
	Args func(class string, args json.RawMessage) error
}

// checkTicks is how many upcoming ticks Check prints per entry.
const checkTicks = 5

// Check validates a schedule file and writes a report to w: every entry by
// name, in file order, with its status, cron line, zone, class, queue,
// missed-run policy and next five ticks after now (RFC 3339, in the
// entry's zone); a warning for each class or queue that known does not
// know and for each ignored sidekiq-cron key; and every error. It returns
// false only when the file or an entry is invalid; warnings do not fail
// it. It is the body of "conveyor schedule check FILE".
func Check(r io.Reader, known Known, now time.Time, w io.Writer) (ok bool) {
	items, err := parseItems(r)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		fmt.Fprintln(w, "\nschedule invalid: the file could not be read as a schedule")
		return false
	}
	var valid, invalid, warnings int
	for i, it := range items {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if it.entry == nil {
			invalid++
			name := it.name
			if name == "" {
				name = "(unnamed)"
			}
			fmt.Fprintf(w, "%s  INVALID  (line %d)\n", name, it.line)
			for _, e := range it.errs {
				field := ""
				if e.Field != "" {
					field = ", " + e.Field
				}
				fmt.Fprintf(w, "  error: line %d%s: %s\n", e.Line, field, e.Reason)
			}
			continue
		}
		if msg := argsProblem(*it.entry, known, now); msg != "" {
			invalid++
			fmt.Fprintf(w, "%s  INVALID  (line %d)\n  error: line %d, args: %s\n", it.entry.Name, it.line, it.line, msg)
			continue
		}
		valid++
		warnings += writeEntry(w, *it.entry, known, now)
	}
	if len(items) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s: %s valid, %s invalid, %s\n",
		verdict(invalid), plural(valid, "entry", "entries"), plural(invalid, "entry", "entries"), plural(warnings, "warning", "warnings"))
	return invalid == 0
}

// argsProblem says why the args of e's next tick are not its class's, or
// "" when they are (or the class is unknown, which is a warning).
func argsProblem(e Entry, known Known, now time.Time) string {
	if known.Args == nil || (known.Class != nil && !known.Class(e.Class)) {
		return ""
	}
	tick, err := e.Next(now)
	if err != nil {
		tick = now
	}
	args, err := e.ArgsAt(tick)
	if err != nil {
		return err.Error()
	}
	if err := known.Args(e.Class, args); err != nil {
		return fmt.Sprintf("%s refuses them: %v", e.Class, err)
	}
	return ""
}

func verdict(invalid int) string {
	if invalid > 0 {
		return "schedule invalid"
	}
	return "schedule ok"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// shortDuration writes 6h0m0s as 6h and 1h30m0s as 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// printable folds a text onto one line and masks control characters, so
// that a description cannot drive the terminal.
func printable(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// writeEntry prints one valid entry and returns how many warnings it printed.
func writeEntry(w io.Writer, e Entry, known Known, now time.Time) int {
	status := "enabled"
	if !e.Enabled {
		status = "disabled"
	}
	fmt.Fprintf(w, "%s  %s\n", e.Name, status)
	if words := Describe(e.Line); words != "" {
		fmt.Fprintf(w, "  cron:   %s (%s)\n", e.Line, words)
	} else {
		fmt.Fprintf(w, "  cron:   %s\n", e.Line)
	}
	fmt.Fprintf(w, "  zone:   %s\n", e.location())
	fmt.Fprintf(w, "  class:  %s\n", e.Class)
	queue := e.Queue
	if queue == "" {
		queue = "(the class's default)"
	}
	fmt.Fprintf(w, "  queue:  %s\n", queue)
	missed := string(e.Policy)
	if e.Policy == RunOnce {
		missed += " within " + shortDuration(e.CatchUpWindow)
	}
	fmt.Fprintf(w, "  missed: %s\n", missed)
	if e.Retry != nil {
		fmt.Fprintf(w, "  retry:  %d\n", *e.Retry)
	}
	if e.DateAsArgument {
		fmt.Fprintln(w, "  date_as_argument: the tick's Unix time is appended to args")
	}
	if len(e.Args) > 0 {
		fmt.Fprintf(w, "  args:   %s\n", e.Args)
	}
	if e.Description != "" {
		fmt.Fprintf(w, "  about:  %s\n", printable(e.Description))
	}
	label := "  next:   "
	ticks := e.NextN(now, checkTicks)
	for i, t := range ticks {
		if i > 0 {
			label = "          "
		}
		fmt.Fprintf(w, "%s%s\n", label, t.Format(time.RFC3339))
	}
	warnings := 0
	warn := func(format string, args ...any) {
		warnings++
		fmt.Fprintf(w, "  warning: "+format+"\n", args...)
	}
	if len(ticks) < checkTicks {
		warn("only %d upcoming ticks could be computed", len(ticks))
	}
	if known.Class != nil && !known.Class(e.Class) {
		warn("class %q is not registered in this Conveyor; the entry will not enqueue until a handler is", e.Class)
	}
	if known.Queue != nil && e.Queue != "" && !known.Queue(e.Queue) {
		warn("queue %q is not served by any lane of this Conveyor; the entry will not enqueue until one is", e.Queue)
	}
	for _, k := range e.Ignored {
		warn("%s is a sidekiq-cron key that Conveyor ignores", k)
	}
	return warnings
}
