package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/queue"
)

// The schedule's test hooks, for the server subprocess only (beMainEnv):
//
//	CONVEYOR_TEST_CLOCK=<RFC 3339>  the scheduler's clock reads this time at
//	                                its first reading (Start) and runs at
//	                                real speed from there, so a tick is a
//	                                second or two away
//	CONVEYOR_CRASH_AT=cron-after-enqueue
//	                                the process SIGKILLs itself right after a
//	                                tick's enqueue is durable and before the
//	                                fire is recorded in SQLite
//
// They are set here, in a test file, so no production binary has them.
const (
	testClockEnv = "CONVEYOR_TEST_CLOCK"
	crashAtEnv   = "CONVEYOR_CRASH_AT"
	crashAtTick  = "cron-after-enqueue"
	// holdFailureWriterEnv=1 makes the failure writer keep every row until
	// it is flushed or closed (failures_crash_test.go).
	holdFailureWriterEnv = "CONVEYOR_TEST_HOLD_FAILURE_WRITER"
)

// failpointsFromEnv reads the server subprocess's failpoints from its
// environment (TestMain passes them to runMain).
func failpointsFromEnv() failpoints {
	var fp failpoints
	if v := os.Getenv(testClockEnv); v != "" {
		start, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: %v", testClockEnv, v, err))
		}
		fp.scheduleClock = func() cron.Clock { return cron.NewOffsetClock(start) }
	}
	fp.holdFailureWriter = os.Getenv(holdFailureWriterEnv) == "1"
	switch v := os.Getenv(crashAtEnv); v {
	case "":
	case crashAtTick:
		fp.afterScheduleEnqueue = func() {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way; record nothing
		}
	default:
		panic(fmt.Sprintf("%s=%q: the only crash point is %s", crashAtEnv, v, crashAtTick))
	}
	return fp
}

// scheduleEnv is a server subprocess's environment: the test process's
// without Conveyor's own variables, plus extra.
func scheduleEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "CONVEYOR_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken), extra...)
}

// launchScheduleServer starts `conveyor serve` with env and waits for its
// "serving" line or its exit, whichever comes first (a server told to crash
// at a tick may die before it serves).
func launchScheduleServer(t *testing.T, dataDir string, env []string) *server {
	t.Helper()
	s, _ := launchServer(t, dataDir, env)
	return s
}

// cronList is GET /api/v1/cron as the tests read it.
type cronList struct {
	Scheduler struct {
		State string `json:"state"`
		OK    bool   `json:"ok"`
	} `json:"scheduler"`
	Entries []cronEntry `json:"entries"`
}

type cronEntry struct {
	Name        string  `json:"name"`
	Status      string  `json:"status"`
	Enabled     bool    `json:"enabled"`
	EnabledBy   string  `json:"enabled_by"`
	Unavailable string  `json:"unavailable"`
	LastTick    *string `json:"last_tick"`
	LastJobID   *uint64 `json:"last_job_id"`
	ManualJobID *uint64 `json:"manual_job_id"`
	NextTick    *string `json:"next_tick"`
}

func (s *server) cronEntry(t *testing.T, name string) cronEntry {
	t.Helper()
	var l cronList
	if code, err := s.api(deadline(t), http.MethodGet, "/api/v1/cron", nil, &l); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/cron: %d %v\n%s", code, err, s.stderr.String())
	}
	for _, e := range l.Entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no entry %q in %+v", name, l.Entries)
	return cronEntry{}
}

// waitCron polls the schedule until cond holds for entry name. The poll
// interval is a pause between questions, not a guess at how long the work
// takes: the bound is the test's deadline.
func (s *server) waitCron(t *testing.T, name, what string, cond func(cronEntry) bool) cronEntry {
	t.Helper()
	ctx := deadline(t)
	for {
		e := s.cronEntry(t, name)
		if cond(e) {
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("entry %s never %s: %+v\n%s", name, what, e, s.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type cronJob struct {
	ID        uint64            `json:"id"`
	Class     string            `json:"class"`
	State     string            `json:"state"`
	UniqueKey *string           `json:"unique_key"`
	Context   map[string]string `json:"context"`
}

// entryJobs lists the jobs an entry's ticks enqueued, in every state.
//
// The states are listed one request at a time, in the order a job goes
// through them, so a job that moves on between two requests is listed
// twice: only its later listing is kept.
func (s *server) entryJobs(t *testing.T, entry string) []cronJob {
	t.Helper()
	var out []cronJob
	at := map[uint64]int{} // job id → index in out
	for _, st := range []string{"scheduled", "ready", "running", "retry", "done", "dead"} {
		var page struct {
			Jobs []cronJob `json:"jobs"`
		}
		if code, err := s.api(deadline(t), http.MethodGet, "/api/v1/jobs?state="+st+"&size=1000", nil, &page); err != nil || code != http.StatusOK {
			t.Fatalf("list %s: %d %v", st, code, err)
		}
		for _, j := range page.Jobs {
			if j.Context[cron.CtxEntry] != entry || j.Context[cron.CtxTrigger] != cron.TriggerSchedule {
				continue
			}
			if i, ok := at[j.ID]; ok {
				out[i] = j
				continue
			}
			at[j.ID] = len(out)
			out = append(out, j)
		}
	}
	return out
}

func writeSchedule(t *testing.T, dir, src string) string {
	t.Helper()
	p := filepath.Join(dir, "schedule.yml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestScheduleSIGKILLAtTick kills the real server at the worst moment of a
// tick, right after the tick's job is durable in the queue and before the
// fire is recorded in SQLite, and checks across restarts (one of them with
// the clock set back) that the tick ran once and every later tick fires
// once.
func TestScheduleSIGKILLAtTick(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	file := writeSchedule(t, dir, "every_minute:\n  cron: \"* * * * *\"\n  class: NoopJob\n  queue: default\n")
	tick := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return testClockEnv + "=" + tick.Add(d).Format(time.RFC3339Nano) }
	key := "cron:every_minute:" + strconv.FormatInt(tick.Unix(), 10)

	// 1. Two seconds before the tick; the process dies inside it.
	s := launchScheduleServer(t, dataDir, scheduleEnv("CONVEYOR_SCHEDULE="+file, at(-2*time.Second), crashAtEnv+"="+crashAtTick))
	select {
	case <-s.exited:
	case <-deadline(t).Done():
		t.Fatalf("the server did not crash at the tick:\n%s", s.stderr.String())
	}
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("server ended with %v, want SIGKILL\n%s", s.cmd.ProcessState, s.stderr.String())
	}
	// The crash point: the job is in the queue, the fire is not in SQLite.
	jobID := crashedTickJob(t, dataDir, key)

	// 2. Restarted three seconds after the tick (within its grace): the tick
	// is offered again and the queue answers with the job holding its key.
	s = launchScheduleServer(t, dataDir, scheduleEnv("CONVEYOR_SCHEDULE="+file, at(3*time.Second)))
	e := s.waitCron(t, "every_minute", "recorded the tick", func(e cronEntry) bool { return e.LastTick != nil })
	if *e.LastTick != tick.Format("2006-01-02T15:04:05.000Z") || e.LastJobID == nil || *e.LastJobID != jobID {
		t.Fatalf("after restart: %+v, want last tick %s with job %d", e, tick, jobID)
	}
	if jobs := s.entryJobs(t, "every_minute"); len(jobs) != 1 || jobs[0].ID != jobID {
		t.Fatalf("jobs of the tick: %+v, want only job %d", jobs, jobID)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("terminate: %v\n%s", err, s.stderr.String())
	}

	// 3. The clock set back half a minute: nothing fires, the next tick is
	// the one after the last fire.
	s = launchScheduleServer(t, dataDir, scheduleEnv("CONVEYOR_SCHEDULE="+file, at(-30*time.Second)))
	e = s.cronEntry(t, "every_minute")
	if e.NextTick == nil || *e.NextTick != tick.Add(time.Minute).Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("next tick after the clock went back: %+v", e)
	}
	if jobs := s.entryJobs(t, "every_minute"); len(jobs) != 1 {
		t.Fatalf("jobs after the clock went back: %+v", jobs)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("terminate: %v", err)
	}

	// 4. One second after the next tick: it fires, once.
	s = launchScheduleServer(t, dataDir, scheduleEnv("CONVEYOR_SCHEDULE="+file, at(time.Minute+time.Second)))
	e = s.waitCron(t, "every_minute", "fired the next tick", func(e cronEntry) bool {
		return e.LastTick != nil && *e.LastTick == tick.Add(time.Minute).Format("2006-01-02T15:04:05.000Z")
	})
	jobs := s.entryJobs(t, "every_minute")
	if len(jobs) != 2 || e.LastJobID == nil || *e.LastJobID == jobID {
		t.Fatalf("jobs after the next tick: %+v (entry %+v)", jobs, e)
	}
	keys := map[string]bool{}
	for _, j := range jobs {
		if j.UniqueKey == nil || keys[*j.UniqueKey] {
			t.Fatalf("jobs share or lack a tick key: %+v", jobs)
		}
		keys[*j.UniqueKey] = true
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("terminate: %v", err)
	}
}

// crashedTickJob opens the dead server's storage and returns the job that
// holds the tick's key, after checking that SQLite has no record of the
// fire.
func crashedTickJob(t *testing.T, dataDir, key string) uint64 {
	t.Helper()
	st, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []uint64
	for _, state := range queue.States {
		page, err := st.List(queue.ListFilter{State: state, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			if j.UniqueKey == key {
				ids = append(ids, j.ID)
			}
		}
	}
	if len(ids) != 1 {
		t.Fatalf("jobs holding %s after the crash: %v, want one", key, ids)
	}
	db, err := data.Open(t.Context(), filepath.Join(dataDir, dbFile), data.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := db.CronState(t.Context(), "every_minute")
	if err != nil || !cs.LastTick.IsZero() {
		t.Fatalf("the fire was recorded before the crash point: %+v, %v", cs, err)
	}
	return ids[0]
}

// TestScheduleAPIRoundTrip enables, disables and enqueues over HTTP and
// checks that the switches survive a restart.
func TestScheduleAPIRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	file := writeSchedule(t, dir, `
yearly:
  cron: "0 0 1 1 *"
  class: NoopJob
nightly:
  cron: "30 3 * * * Europe/Berlin"
  class: NoopJob
  status: disabled
ghost:
  cron: "* * * * *"
  class: GhostJob
  queue: maintenance
`)
	env := scheduleEnv("CONVEYOR_SCHEDULE="+file, testClockEnv+"=2030-06-01T12:00:30Z")
	s := launchScheduleServer(t, dataDir, env)
	ctx := deadline(t)

	var l cronList
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/cron", nil, &l); err != nil || code != http.StatusOK || len(l.Entries) != 3 {
		t.Fatalf("list: %d %v %+v", code, err, l)
	}
	if g := s.cronEntry(t, "ghost"); g.Status != cron.StatusUnavailable || !strings.Contains(g.Unavailable, "GhostJob") {
		t.Fatalf("ghost %+v", g)
	}
	var e cronEntry
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/cron/yearly/disable", nil, &e); err != nil || code != http.StatusOK || e.Enabled || e.EnabledBy != "operator" {
		t.Fatalf("disable: %d %v %+v", code, err, e)
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/cron/nightly/enable", nil, &e); err != nil || code != http.StatusOK || !e.Enabled || e.NextTick == nil {
		t.Fatalf("enable: %d %v %+v", code, err, e)
	}
	var enq struct {
		ID    uint64 `json:"id"`
		State string `json:"state"`
	}
	if code, err := s.api(ctx, http.MethodPost, "/api/v1/cron/yearly/enqueue", nil, &enq); err != nil || code != http.StatusCreated || enq.ID == 0 {
		t.Fatalf("enqueue: %d %v %+v", code, err, enq)
	}
	var job cronJob
	if code, err := s.api(ctx, http.MethodGet, "/api/v1/jobs/"+strconv.FormatUint(enq.ID, 10), nil, &job); err != nil || code != http.StatusOK ||
		job.Class != "NoopJob" || job.Context[cron.CtxTrigger] != cron.TriggerManual || job.UniqueKey != nil {
		t.Fatalf("the enqueued job: %d %v %+v", code, err, job)
	}
	for path, want := range map[string]int{
		"/api/v1/cron/ghost/enqueue": http.StatusUnprocessableEntity,
		"/api/v1/cron/nope/enable":   http.StatusNotFound,
	} {
		if code, err := s.api(ctx, http.MethodPost, path, nil, nil); err != nil || code != want {
			t.Errorf("POST %s: %d %v, want %d", path, code, err, want)
		}
	}
	var ready struct {
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if code, err := s.api(ctx, http.MethodGet, "/readyz", nil, &ready); err != nil || code != http.StatusOK {
		t.Fatalf("readyz: %d %v", code, err)
	}
	found := false
	for _, c := range ready.Checks {
		if c.Name == "scheduler" {
			found = c.OK
		}
	}
	if !found {
		t.Fatalf("readyz has no passing scheduler check: %+v", ready)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("terminate: %v", err)
	}

	s = launchScheduleServer(t, dataDir, env)
	if y := s.cronEntry(t, "yearly"); y.Enabled || y.EnabledBy != "operator" || y.ManualJobID == nil || *y.ManualJobID != enq.ID {
		t.Fatalf("yearly after restart: %+v", y)
	}
	if n := s.cronEntry(t, "nightly"); !n.Enabled || n.EnabledBy != "operator" {
		t.Fatalf("nightly after restart: %+v", n)
	}
	if err, _ := s.terminate(); err != nil {
		t.Fatalf("terminate: %v", err)
	}
}

// mapEnv turns KEY=value pairs into a getenv.
func mapEnv(kv ...string) func(string) string {
	m := map[string]string{}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// A bad entry stops serve before anything runs, with an error naming the
// entry, the field and what is wrong.
func TestServeRefusesBadSchedule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeSchedule(t, dir, "fine:\n  cron: \"* * * * *\"\n  class: NoopJob\nbroken:\n  cron: \"every 3 hours\"\n  class: NoopJob\n")
	var out bytes.Buffer
	err := run(t.Context(), []string{"serve", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--schedule", file},
		mapEnv("CONVEYOR_TOKEN="+testToken), &out, &out)
	if err == nil {
		t.Fatal("serve started with a bad schedule")
	}
	for _, want := range []string{`entry "broken"`, `field "cron"`, file} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestScheduleSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "conveyor.yml")
	if err := os.WriteFile(cfg, []byte("schedule: /from/file.yml\nschedule_late_after: 45s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		env  []string
		file string
		late time.Duration
	}{
		{"defaults", nil, nil, "", 0},
		{"config file", []string{"--config", cfg}, nil, "/from/file.yml", 45 * time.Second},
		{"env beats file", []string{"--config", cfg}, []string{"CONVEYOR_SCHEDULE=/from/env.yml", "CONVEYOR_SCHEDULE_LATE_AFTER=1m"}, "/from/env.yml", time.Minute},
		{"flags beat env", []string{"--config", cfg, "--schedule", "/from/flag.yml", "--schedule-late-after", "10s"},
			[]string{"CONVEYOR_SCHEDULE=/from/env.yml"}, "/from/flag.yml", 10 * time.Second},
	} {
		st, err := serveSettings(c.args, mapEnv(c.env...), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if st.Schedule.File != c.file || st.Schedule.LateAfter != c.late {
			t.Errorf("%s: %+v, want %q and %s", c.name, st.Schedule, c.file, c.late)
		}
	}
	_, err := serveSettings([]string{"--schedule-late-after", "soon"}, mapEnv(), io.Discard)
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Errorf("a bad --schedule-late-after: %v, want a usage error", err)
	}
}

func TestScheduleCheckCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeSchedule(t, filepath.Join(dir), `
ai_check:
  cron: "* * * * *"
  class: CheckAiMicroserviceHealthJob
ghost:
  cron: "0 3 * * * America/New_York"
  class: GhostJob
  queue: nowhere
`)
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("ok:\n  cron: \"* * * * *\"\n  class: NoopJob\nwrong:\n  cron: \"61 * * * *\"\n  class: NoopJob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"schedule"}, args...), mapEnv(), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := check("check", good)
	if err != nil {
		t.Fatalf("a valid file: %v\n%s", err, out)
	}
	for _, want := range []string{"ai_check  enabled", "ghost  enabled", "T03:00:00-0", `class "GhostJob" is not registered`,
		`queue "nowhere" is not served`, "schedule ok: 2 entries valid, 0 entries invalid, 2 warnings"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"CheckAiMicroserviceHealthJob" is not registered`) {
		t.Errorf("a class a feature registers counts as unknown:\n%s", out)
	}

	var usage *usageError
	out, err = check("check", bad)
	if err == nil || errors.As(err, &usage) || !strings.Contains(out, "wrong  INVALID") || !strings.Contains(out, "minute") {
		t.Errorf("an invalid file: %v\n%s", err, out)
	}
	for _, args := range [][]string{nil, {"check"}, {"check", good, bad}, {"lint", good}, {"check", "--nope", good}} {
		if _, err := check(args...); !errors.As(err, &usage) {
			t.Errorf("schedule %q: %v, want a usage error (exit 2)", args, err)
		}
	}
	if _, err := check("check", filepath.Join(dir, "missing.yml")); err == nil || errors.As(err, &usage) {
		t.Errorf("a missing file: %v, want a plain error (exit 1)", err)
	}
}
