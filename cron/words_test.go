package cron

import "testing"

func TestDescribe(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ line, want string }{
		{"* * * * *", "every minute"},
		{"*/5 * * * *", "every 5 minutes"},
		{"*/10 * * * * Europe/Paris", "every 10 minutes"},
		{"10 * * * *", "every hour at :10"},
		{"@hourly", "every hour at :00"},
		{"25 */2 * * *", "every 2 hours at :25"},
		{"15 2 * * *", "daily at 02:15"},
		{"@daily", "daily at 00:00"},
		{"0 9,17 * * *", "daily at 09:00 and 17:00"},
		{"0 22 * * 1-5 America/Chicago", "Monday to Friday at 22:00"},
		{"0 22 * * MON-FRI", "Monday to Friday at 22:00"},
		{"30 8 * * 1", "every Monday at 08:30"},
		{"30 8 * * 7", "every Sunday at 08:30"},
		{"30 8 * * 1,4", "on Monday and Thursday at 08:30"},
		{"30 8 * * 0,3-4", "on Sunday and Wednesday to Thursday at 08:30"},
		{"0 4 1 * *", "monthly on day 1 at 04:00"},
		{"0 4 L * *", "on the last day of each month at 04:00"},
		{"@yearly", "yearly on January 1 at 00:00"},
		{"0 0 25 DEC *", "yearly on December 25 at 00:00"},
		{"*/15 * * * * *", "every 15 seconds"},
		// Shapes left to the line itself.
		{"0-30 * * * *", ""},
		{"0 */2 1 * *", ""},
		{"5 4 * * 1#2", ""},
		{"15 10 * * *  bogus/zone", ""},
		{"every 3 hours", ""},
	} {
		if got := Describe(c.line); got != c.want {
			t.Errorf("Describe(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}
