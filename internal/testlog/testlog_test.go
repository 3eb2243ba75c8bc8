package testlog

import (
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what is logged to it.
type recorder struct {
	testing.TB
	logged []string
}

func (r *recorder) Helper()         {}
func (r *recorder) Log(args ...any) { r.logged = append(r.logged, args[0].(string)) }

func TestNewLogsEachRecordOnceWithoutTrailingNewline(t *testing.T) {
	r := &recorder{TB: t}
	log := New(r)
	log.Debug("debug shows", "k", 1)
	log.Info("info shows")
	if len(r.logged) != 2 {
		t.Fatalf("logged %d records, want 2: %q", len(r.logged), r.logged)
	}
	if !strings.Contains(r.logged[0], "msg=\"debug shows\" k=1") || !strings.Contains(r.logged[0], "level=DEBUG") {
		t.Errorf("first record %q", r.logged[0])
	}
	for _, l := range r.logged {
		if strings.HasSuffix(l, "\n") {
			t.Errorf("record %q ends in a newline", l)
		}
	}
}
