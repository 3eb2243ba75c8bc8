package cron

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLineValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line, spec, zone, expr string
		wild                   bool
	}{
		{"*/5 * * * *", "*/5 * * * *", "UTC", "0 */5 * * * *", true},
		{"  0   22 * *   1-5  ", "0 22 * * 1-5", "UTC", "0 0 22 * * 1-5", false},
		{"0 22 * * 1-5 America/Chicago", "0 22 * * 1-5", "America/Chicago", "0 0 22 * * 1-5", false},
		{"*/30 * * * * *", "*/30 * * * * *", "UTC", "*/30 * * * * *", true},
		{"*/30 * * * * * Europe/Berlin", "*/30 * * * * *", "Europe/Berlin", "*/30 * * * * *", true},
		{"0 0 9 * * MON-FRI", "0 0 9 * * MON-FRI", "UTC", "0 0 9 * * 1-5", false},
		{"0 9 * jan,Dec sun", "0 9 * jan,Dec sun", "UTC", "0 0 9 * 1,12 0", false},
		{"0 9 * * MON-FRI Asia/Tokyo", "0 9 * * MON-FRI", "Asia/Tokyo", "0 0 9 * * 1-5", false},
		{"@daily", "@daily", "UTC", "0 0 0 * * *", false},
		{"@HOURLY Europe/London", "@HOURLY", "Europe/London", "0 0 * * * *", true},
		{"0 0 L * *", "0 0 L * *", "UTC", "0 0 0 L * *", false},
		{"0 0 15W * *", "0 0 15W * *", "UTC", "0 0 0 15W * *", false},
		{"0 0 * * 5L", "0 0 * * 5L", "UTC", "0 0 0 * * 5L", false},
		{"0 0 * * FRI#3", "0 0 * * FRI#3", "UTC", "0 0 0 * * 5#3", false},
		{"0 0 ? * 7", "0 0 ? * 7", "UTC", "0 0 0 ? * 7", false},
		{"5-10/2 1,3 */2 1-31/10 * *", "5-10/2 1,3 */2 1-31/10 * *", "UTC", "5-10/2 1,3 */2 1-31/10 * *", true},
		{"0 0 * * * Etc/GMT+5", "0 0 * * *", "Etc/GMT+5", "0 0 0 * * *", false},
		{"0 0 * * * EST5EDT", "0 0 * * *", "EST5EDT", "0 0 0 * * *", false},
		{"0 0 * * * UTC", "0 0 * * *", "UTC", "0 0 0 * * *", false},
		{"0 0 29 2 *", "0 0 29 2 *", "UTC", "0 0 0 29 2 *", false},
	}
	for _, c := range cases {
		s, zone, err := parseLine(c.line)
		if err != nil {
			t.Errorf("parseLine(%q): %v", c.line, err)
			continue
		}
		if s.spec != c.spec || zone.String() != c.zone || s.expr != c.expr || s.wild != c.wild {
			t.Errorf("parseLine(%q) = spec %q zone %s expr %q wild %v; want %q %s %q %v",
				c.line, s.spec, zone, s.expr, s.wild, c.spec, c.zone, c.expr, c.wild)
		}
		spec, zone2, err := ParseLine(c.line)
		if err != nil || spec != c.spec || zone2.String() != zone.String() {
			t.Errorf("ParseLine(%q) = %q, %v, %v", c.line, spec, zone2, err)
		}
	}
}

func TestParseLineInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line, want string
		is         error
	}{
		{"", "empty cron line", nil},
		{"   ", "empty cron line", nil},
		{"every 3 hours", `"0 */3 * * *"`, ErrNaturalLanguage},
		{"every day at five", "natural-language", ErrNaturalLanguage},
		{"at 12:00 on mondays", "natural-language", ErrNaturalLanguage},
		{"0 */3 hours * * *", "natural-language", ErrNaturalLanguage},
		{"* * * *", "has 4 fields", nil},
		{"0 0 0 1 1 * 2030", "has 7 fields", nil},
		{"0 0 1 1 * 2030", `day-of-week field "2030"`, nil},
		{"61 * * * *", "minute field \"61\": 61 out of range 0-59", nil},
		{"* 24 * * *", "hour field", nil},
		{"* * 0 * *", "day-of-month field \"0\": 0 out of range 1-31", nil},
		{"* * * 13 *", "month field", nil},
		{"* * * * 8", "day-of-week field", nil},
		{"*/0 * * * *", "step 0 out of range", nil},
		{"*/61 * * * *", "step 61 out of range", nil},
		{"5-1 * * * *", "runs backwards", nil},
		{"1,,2 * * * *", "empty list item", nil},
		{"a * * * *", `"A" is not a number`, nil},
		{"MON * * * *", `"MON" is not a number`, nil},
		{"* * * * JAN", `"JAN" is not a number`, nil},
		{"? * * * *", `"?" is only allowed`, nil},
		{"0 0 L * 1L/2", "takes no step", nil},
		{"0 0 * * 1#6", "must be 1-5", nil},
		{"0 0 32W * *", "out of range", nil},
		{"1-2-3 * * * *", "is not a number", nil},
		{"*/5/2 * * * *", "is not a number", nil},
		{"0 0 31 2 *", "never fires", ErrNever},
		{"0 0 30 2 *", "never fires", ErrNever},
		{"0 0 31 4,6,9,11 *", "never fires", ErrNever},
		{"0 0 * * * Mars/Olympus_Mons", `unknown time zone "Mars/Olympus_Mons"`, nil},
		{"0 0 * * * america/new_york", "unknown time zone", nil},
		{"0 0 * * * Local", `"Local" depends on the machine`, nil},
		{"@reboot", "unknown macro", nil},
		{"@daily 5", "has 2 fields", nil},
		{"0 22 * * 1-5 America/Chicago Europe/Berlin", `"America/Chicago" looks like a time zone`, nil},
	}
	for _, c := range cases {
		_, _, err := ParseLine(c.line)
		if err == nil {
			t.Errorf("ParseLine(%q) accepted it", c.line)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseLine(%q) = %v, want it to mention %q", c.line, err, c.want)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("ParseLine(%q) = %v, want errors.Is %v", c.line, err, c.is)
		}
	}
}

func TestLooksLikeZone(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]bool{
		"America/New_York": true, "UTC": true, "EST": true, "Etc/GMT-14": true, "W-SU": true, "Japan": true,
		"MON": false, "MON-FRI": false, "sun,sat": false, "5L": false, "1#2": false, "*": false, "*/5": false, "L": false, "15W": false,
	} {
		if got := looksLikeZone(tok); got != want {
			t.Errorf("looksLikeZone(%q) = %v, want %v", tok, got, want)
		}
	}
}
