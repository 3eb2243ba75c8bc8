package cron

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones resolve on machines without a zoneinfo database
)

// ErrNaturalLanguage is returned (wrapped in the line's error) for a
// natural-language schedule such as "every 3 hours", which sidekiq-cron
// accepts through fugit and Conveyor does not.
var ErrNaturalLanguage = errors.New("natural-language schedules are not supported")

// ErrNever is returned when a cron spec never fires (for example
// "0 0 31 2 *", February 31st), or when no tick can be found.
var ErrNever = errors.New("the schedule never fires")

// macros are the "@" shorthands that both fugit (sidekiq-cron) and gronx
// understand, with their five-field meaning.
var macros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// fieldSpec describes one position of a six-field (seconds-first) spec.
type fieldSpec struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i (months) or i (weekdays)
}

var fieldSpecs = [6]fieldSpec{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day-of-week", min: 0, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

const (
	posHour = 2
	posDom  = 3
	posDow  = 5
)

// zoneRe matches what an IANA zone name can look like ("UTC",
// "America/New_York", "Etc/GMT+5", "America/Port-au-Prince").
var zoneRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)

// ParseLine checks a sidekiq-cron cron line and splits it into its spec and
// its time zone. The line is five fields (minute hour day-of-month month
// day-of-week), six fields with seconds first, or one of the macros
// @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly;
// optionally followed by an IANA time zone name ("0 22 * * 1-5
// America/Chicago"). Without a zone the line is read in UTC.
//
// The spec comes back as written (fields separated by single spaces, zone
// removed). Month and weekday names (JAN, MON-FRI), ranges, lists, steps,
// "?" in the day fields, "L" and "15W" in day-of-month, and "5L" and
// "1#2" in day-of-week are accepted; anything else, a value out of range,
// a natural-language schedule, an unknown zone or a spec that can never
// fire (February 31st) is an error.
func ParseLine(line string) (spec string, zone *time.Location, err error) {
	s, zone, err := parseLine(line)
	if err != nil {
		return "", nil, err
	}
	return s.spec, zone, nil
}

// parseLine is ParseLine returning the parsed schedule as well.
func parseLine(line string) (*schedule, *time.Location, error) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return nil, nil, errors.New("empty cron line")
	}
	if isNaturalLanguage(fields) {
		return nil, nil, fmt.Errorf("%q: %w; write a cron line instead (\"every 3 hours\" is \"0 */3 * * *\")", line, ErrNaturalLanguage)
	}
	zone := time.UTC
	if last := fields[len(fields)-1]; len(fields) > 1 && looksLikeZone(last) {
		loc, err := loadZone(last)
		if err != nil {
			return nil, nil, err
		}
		zone = loc
		fields = fields[:len(fields)-1]
	}
	for _, f := range fields {
		if strings.Contains(f, "/") && looksLikeZone(f) {
			return nil, nil, fmt.Errorf("%q: %q looks like a time zone; a line takes one zone, at its end", strings.Join(strings.Fields(line), " "), f)
		}
	}
	s, err := parseSpec(fields)
	if err != nil {
		return nil, nil, err
	}
	return s, zone, nil
}

// isNaturalLanguage reports whether a line reads like fugit's natural
// language ("every day at five", "at 12:00 on mondays").
func isNaturalLanguage(fields []string) bool {
	first := strings.ToLower(fields[0])
	if first == "every" || first == "at" || first == "each" {
		return true
	}
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months":
			return true
		}
	}
	return false
}

// looksLikeZone reports whether a trailing token is meant as a time zone
// rather than as a day-of-week field ("MON-FRI", "5L", "1#2").
func looksLikeZone(tok string) bool {
	if !zoneRe.MatchString(tok) {
		return false
	}
	upper := strings.ToUpper(tok)
	for _, n := range fieldSpecs[posDow].names {
		upper = strings.ReplaceAll(upper, n, "0")
	}
	for _, n := range fieldSpecs[4].names {
		upper = strings.ReplaceAll(upper, n, "0")
	}
	return strings.Trim(upper, "0123456789,-/*?#LW") != ""
}

// loadZone resolves an IANA zone name. "Local" is refused: a schedule must
// mean the same on every machine.
func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, errors.New(`time zone "Local" depends on the machine; name an IANA zone such as "Europe/Berlin"`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as \"America/New_York\")", name)
	}
	return loc, nil
}

// parseSpec validates the fields of a spec (no zone) and builds the
// six-field, seconds-first expression that gronx evaluates.
func parseSpec(fields []string) (*schedule, error) {
	written := strings.Join(fields, " ")
	if len(fields) == 1 && strings.HasPrefix(fields[0], "@") {
		m, ok := macros[strings.ToLower(fields[0])]
		if !ok {
			return nil, fmt.Errorf("unknown macro %q (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)", fields[0])
		}
		fields = strings.Fields(m)
	}
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return nil, fmt.Errorf("%q has %d fields; want 5 (minute hour day-of-month month day-of-week) or 6 (second first), optionally followed by a time zone", written, len(fields))
	}
	norm := make([]string, len(fields))
	for i, f := range fields {
		n, err := checkField(i, f)
		if err != nil {
			return nil, fmt.Errorf("%q: %s field %q: %w", written, fieldSpecs[i].name, f, err)
		}
		norm[i] = n
	}
	s := &schedule{
		spec: written,
		expr: strings.Join(norm, " "),
		wild: strings.HasPrefix(norm[posHour], "*"),
	}
	if err := s.reachable(); err != nil {
		return nil, fmt.Errorf("%q: %w", written, err)
	}
	return s, nil
}

// checkField validates one field and returns it upper-cased with month and
// weekday names replaced by numbers, the form gronx reads.
func checkField(pos int, f string) (string, error) {
	fs := fieldSpecs[pos]
	items := strings.Split(strings.ToUpper(f), ",")
	out := make([]string, len(items))
	for i, item := range items {
		n, err := checkItem(pos, fs, item)
		if err != nil {
			return "", err
		}
		out[i] = n
	}
	return strings.Join(out, ","), nil
}

func checkItem(pos int, fs fieldSpec, item string) (string, error) {
	if item == "" {
		return "", errors.New("empty list item")
	}
	base, stepText, hasStep := strings.Cut(item, "/")
	if hasStep {
		step, err := number(stepText)
		if err != nil {
			return "", fmt.Errorf("step %q: %w", stepText, err)
		}
		if step < 1 || step > fs.max-fs.min+1 {
			return "", fmt.Errorf("step %d out of range 1-%d", step, fs.max-fs.min+1)
		}
		stepText = strconv.Itoa(step)
	}
	switch {
	case base == "*":
		return item, nil
	case base == "?":
		if pos != posDom && pos != posDow {
			return "", errors.New(`"?" is only allowed in the day-of-month and day-of-week fields`)
		}
		if hasStep {
			return "", errors.New(`"?" takes no step`)
		}
		return item, nil
	}
	if special, ok, err := checkSpecial(pos, fs, base); ok || err != nil {
		if err == nil && hasStep {
			err = fmt.Errorf("%q takes no step", base)
		}
		return special, err
	}
	lo, hi, isRange := strings.Cut(base, "-")
	a, err := value(fs, lo)
	if err != nil {
		return "", err
	}
	norm := strconv.Itoa(a)
	if isRange {
		b, err := value(fs, hi)
		if err != nil {
			return "", err
		}
		if b < a {
			return "", fmt.Errorf("range %s-%s runs backwards", lo, hi)
		}
		norm += "-" + strconv.Itoa(b)
	}
	if hasStep {
		norm += "/" + stepText
	}
	return norm, nil
}

// checkSpecial handles the day-field extensions gronx supports: "L" and
// "<day>W" in day-of-month, "<weekday>L" and "<weekday>#<n>" in
// day-of-week. ok is false when base is none of them.
func checkSpecial(pos int, fs fieldSpec, base string) (norm string, ok bool, err error) {
	switch pos {
	case posDom:
		if base == "L" {
			return "L", true, nil
		}
		if d, found := strings.CutSuffix(base, "W"); found {
			n, err := value(fs, d)
			if err != nil {
				return "", true, err
			}
			return strconv.Itoa(n) + "W", true, nil
		}
	case posDow:
		if d, found := strings.CutSuffix(base, "L"); found {
			n, err := value(fs, d)
			if err != nil {
				return "", true, err
			}
			return strconv.Itoa(n) + "L", true, nil
		}
		if d, nth, found := strings.Cut(base, "#"); found {
			n, err := value(fs, d)
			if err != nil {
				return "", true, err
			}
			k, err := number(nth)
			if err != nil || k < 1 || k > 5 {
				return "", true, fmt.Errorf("%q: the occurrence after # must be 1-5", base)
			}
			return strconv.Itoa(n) + "#" + strconv.Itoa(k), true, nil
		}
	}
	return "", false, nil
}

// value reads a number or a name within the field's range.
func value(fs fieldSpec, s string) (int, error) {
	for i, n := range fs.names {
		if s == n {
			if fs.min == 1 {
				return i + 1, nil
			}
			return i, nil
		}
	}
	n, err := number(s)
	if err != nil {
		return 0, err
	}
	if n < fs.min || n > fs.max {
		return 0, fmt.Errorf("%d out of range %d-%d", n, fs.min, fs.max)
	}
	return n, nil
}

// number reads a small unsigned decimal number.
func number(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return strconv.Atoi(s)
}
