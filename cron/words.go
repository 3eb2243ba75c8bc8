package cron

import (
	"fmt"
	"strconv"
	"strings"
)

// Describe says a cron line in words — "every 5 minutes", "daily at
// 02:15", "Monday to Friday at 22:00" — for the dashboard's schedule,
// beside the line itself. It covers the shapes schedules are mostly
// written in and returns "" for the others (and for a line that does not
// parse), where the line alone is shown. The time zone is not part of
// the words.
func Describe(line string) string {
	s, _, err := parseLine(line)
	if err != nil {
		return ""
	}
	f := strings.Fields(s.expr) // second minute hour dom month dow
	if len(f) != 6 {
		return ""
	}
	sec, min, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4], f[5]
	everyDay := dom == "*" && mon == "*" && dow == "*"
	if sec != "0" {
		if n, ok := step(sec); ok && min == "*" && hour == "*" && everyDay {
			return every(n, "second", "seconds")
		}
		return ""
	}
	if hour == "*" && everyDay {
		if n, ok := step(min); ok {
			return every(n, "minute", "minutes")
		}
		if m, ok := num(min, 59); ok {
			return fmt.Sprintf("every hour at :%02d", m)
		}
		return ""
	}
	m, ok := num(min, 59)
	if !ok {
		return ""
	}
	if n, ok := step(hour); ok && everyDay {
		if n == 1 {
			return fmt.Sprintf("every hour at :%02d", m)
		}
		return fmt.Sprintf("every %d hours at :%02d", n, m)
	}
	var times []string
	for _, h := range strings.Split(hour, ",") {
		hv, ok := num(h, 23)
		if !ok {
			return ""
		}
		times = append(times, fmt.Sprintf("%02d:%02d", hv, m))
	}
	at := "at " + strings.Join(times, " and ")
	switch {
	case everyDay:
		return "daily " + at
	case dom == "*" && mon == "*":
		if days := weekdays(dow); days != "" {
			return days + " " + at
		}
	case mon == "*" && dow == "*":
		if dom == "L" {
			return "on the last day of each month " + at
		}
		if d, ok := num(dom, 31); ok && d >= 1 {
			return fmt.Sprintf("monthly on day %d %s", d, at)
		}
	case dow == "*":
		d, okd := num(dom, 31)
		mo, okm := num(mon, 12)
		if okd && okm && d >= 1 && mo >= 1 {
			return fmt.Sprintf("yearly on %s %d %s", monthNames[mo-1], d, at)
		}
	}
	return ""
}

var (
	dayNames   = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	monthNames = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

// weekdays says a day-of-week field of numbers, lists and ranges:
// "every Monday", "Monday to Friday", "on Monday and Thursday".
func weekdays(dow string) string {
	parts := strings.Split(dow, ",")
	var names []string
	for _, p := range parts {
		lo, hi, isRange := strings.Cut(p, "-")
		a, ok := num(lo, 7)
		if !ok {
			return ""
		}
		if !isRange {
			names = append(names, dayNames[a%7])
			continue
		}
		b, ok := num(hi, 7)
		if !ok || b < a {
			return ""
		}
		if len(parts) == 1 {
			return dayNames[a%7] + " to " + dayNames[b%7]
		}
		names = append(names, dayNames[a%7]+" to "+dayNames[b%7])
	}
	if len(names) == 1 {
		return "every " + names[0]
	}
	return "on " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// step reads "*" (1) or "*/n".
func step(f string) (int, bool) {
	if f == "*" {
		return 1, true
	}
	rest, ok := strings.CutPrefix(f, "*/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// num reads a plain number from 0 to max.
func num(f string, max int) (int, bool) {
	n, err := strconv.Atoi(f)
	return n, err == nil && n >= 0 && n <= max
}

// every says "every minute" or "every 5 minutes".
func every(n int, one, many string) string {
	if n == 1 {
		return "every " + one
	}
	return fmt.Sprintf("every %d %s", n, many)
}
