package cron

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

func knownSeed() Known {
	classes := map[string]bool{"NightlyReportJob": true, "EnqueueContinuousAccountProcessingJob": true, "WeekdayJob": true}
	queues := map[string]bool{"maintenance": true, "sync": true}
	return Known{
		Class: func(c string) bool { return classes[c] },
		Queue: func(q string) bool { return queues[q] },
	}
}

func TestCheckGolden(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("testdata", "check.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	if ok := Check(bytes.NewReader(src), knownSeed(), now, &out); ok {
		t.Error("Check passed a schedule with an invalid entry")
	}
	golden(t, "check.golden", out.Bytes())
}

func TestCheckDefaultSchedule(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	if ok := Check(bytes.NewReader(DefaultSchedule()), Known{}, now, &out); !ok {
		t.Errorf("the default schedule failed Check:\n%s", out.String())
	}
	golden(t, "default.golden", out.Bytes())
}

func TestCheckWarningsDoNotFail(t *testing.T) {
	t.Parallel()
	src := "job:\n  cron: '* * * * *'\n  class: Nobody\n  queue: nowhere\n  namespace: x\n"
	var out bytes.Buffer
	if ok := Check(strings.NewReader(src), knownSeed(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), &out); !ok {
		t.Errorf("warnings failed Check:\n%s", out.String())
	}
	for _, want := range []string{`class "Nobody" is not registered`, `queue "nowhere" is not served`, "namespace is a sidekiq-cron key", "schedule ok: 1 entry valid, 0 entries invalid, 3 warnings"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckFileErrors(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"a: [\n", "just text\n"} {
		var out bytes.Buffer
		if ok := Check(strings.NewReader(src), Known{}, time.Now(), &out); ok {
			t.Errorf("Check(%q) passed", src)
		}
		if !strings.HasPrefix(out.String(), "error: schedule: ") || !strings.Contains(out.String(), "schedule invalid") {
			t.Errorf("Check(%q) output:\n%s", src, out.String())
		}
	}
	var out bytes.Buffer
	if ok := Check(strings.NewReader(""), Known{}, time.Now(), &out); !ok || out.String() != "schedule ok: 0 entries valid, 0 entries invalid, 0 warnings\n" {
		t.Errorf("empty schedule: %v %q", ok, out.String())
	}
}

func TestCheckMasksControlCharacters(t *testing.T) {
	t.Parallel()
	src := "job:\n  cron: '* * * * *'\n  class: A\n  description: \"red \\e[31m text\"\n"
	var out bytes.Buffer
	Check(strings.NewReader(src), Known{}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), &out)
	if strings.ContainsRune(out.String(), 0x1b) || !strings.Contains(out.String(), "red ?[31m text") {
		t.Errorf("escape sequence reached the output:\n%q", out.String())
	}
}

// TestCheckArgs: an entry whose args its class refuses is invalid, named
// with its line, and fails the check; one whose class is unknown is only
// a warning (its args cannot be judged).
func TestCheckArgs(t *testing.T) {
	t.Parallel()
	src := "good:\n  cron: '* * * * *'\n  class: SleepJob\n  args: {ms: 5}\n" +
		"bad:\n  cron: '* * * * *'\n  class: SleepJob\n  args: {ms: 5, n: 3}\n" +
		"unknown:\n  cron: '* * * * *'\n  class: Nobody\n  args: {n: 3}\n"
	known := Known{
		Class: func(c string) bool { return c == "SleepJob" },
		Args: func(class string, args json.RawMessage) error {
			if strings.Contains(string(args), `"n"`) {
				return errors.New(`args.n: unknown arg (the args are {ms: integer})`)
			}
			return nil
		},
	}
	var out bytes.Buffer
	if ok := Check(strings.NewReader(src), known, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), &out); ok {
		t.Errorf("Check passed an entry with bad args:\n%s", out.String())
	}
	for _, want := range []string{
		"bad  INVALID  (line 5)\n  error: line 5, args: SleepJob refuses them: args.n: unknown arg",
		"good  enabled",
		`class "Nobody" is not registered`,
		"schedule invalid: 2 entries valid, 1 entry invalid, 1 warning",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
