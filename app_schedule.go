package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"conveyor/cron"
	"conveyor/ui"
)

// schedulePart is what the recurring schedule adds to the app: the
// scheduler that runs the schedule file (or the default schedule).
type schedulePart struct {
	sched *cron.Scheduler
}

// scheduleSettings are the schedule's settings (flags, environment, file).
type scheduleSettings struct {
	// File is the schedule file; "" runs the default schedule.
	File string
	// LateAfter is the scheduler's liveness threshold (zero:
	// cron.DefaultLateAfter).
	LateAfter time.Duration

	flagFile, flagLate string
}

// failpoints are the end-to-end tests' hooks into the app. They travel in
// the context (withFailpoints), which only the test binary's TestMain sets
// (schedule_test.go reads them from the server subprocess's environment):
// no flag, environment variable or config key reaches them, so a
// production process has none.
type failpoints struct {
	scheduleClock        func() cron.Clock // the scheduler's clock
	afterScheduleEnqueue func()            // cron.Options.AfterEnqueue
	holdFailureWriter    bool              // the failure writer writes only when flushed or closed
}

type failpointsKey struct{}

// withFailpoints returns ctx carrying fp, for runMain.
func withFailpoints(ctx context.Context, fp failpoints) context.Context {
	return context.WithValue(ctx, failpointsKey{}, fp)
}

// failpointsOf returns the failpoints ctx carries: none in production.
func failpointsOf(ctx context.Context) failpoints {
	fp, _ := ctx.Value(failpointsKey{}).(failpoints)
	return fp
}

func (s *scheduleSettings) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.flagFile, "schedule", "", "recurring schedule `file` in sidekiq-cron's YAML format; replaces the default schedule (env CONVEYOR_SCHEDULE)")
	fs.StringVar(&s.flagLate, "schedule-late-after", "", "how far behind the scheduler may fall before /readyz fails and an issue opens (env CONVEYOR_SCHEDULE_LATE_AFTER, default 30s)")
}

func (s *scheduleSettings) resolve(fc scheduleFile, getenv func(string) string, dataDir string) error {
	s.File = first(s.flagFile, getenv("CONVEYOR_SCHEDULE"), fc.Schedule)
	s.LateAfter = time.Duration(fc.ScheduleLateAfter)
	if v := first(s.flagLate, getenv("CONVEYOR_SCHEDULE_LATE_AFTER")); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return &usageError{"--schedule-late-after: " + err.Error()}
		}
		s.LateAfter = d
	}
	return nil
}

// loadSchedule reads the schedule file, or the default schedule when file
// is "". A bad entry is an error naming the entry, the line and the field.
func loadSchedule(file string) ([]cron.Entry, error) {
	if file == "" {
		entries, err := cron.Default()
		if err != nil {
			return nil, fmt.Errorf("default schedule: %w", err)
		}
		return entries, nil
	}
	return cron.ParseFile(file)
}

// openSchedule loads the schedule and builds the scheduler; it needs the
// database and every job class registered (a class that is not is shown as
// unavailable and never enqueued).
func (a *app) openSchedule(ctx context.Context) error {
	entries, err := loadSchedule(a.st.Schedule.File)
	if err != nil {
		return err
	}
	opts := cron.Options{
		Entries: entries, Store: a.store, DB: a.storage.db, Registry: a.reg, Topology: a.st.Topology,
		Bus: a.bus, Tracker: a.failures.tracker, Logger: a.log.With("part", "schedule"), LateAfter: a.st.Schedule.LateAfter,
	}
	fp := failpointsOf(ctx)
	opts.AfterEnqueue = fp.afterScheduleEnqueue
	if fp.scheduleClock != nil {
		opts.Clock = fp.scheduleClock()
	}
	if a.schedule.sched, err = cron.NewScheduler(opts); err != nil {
		return err
	}
	a.ready = append(a.ready, a.scheduleReady)
	source := a.st.Schedule.File
	if source == "" {
		source = "default"
	}
	a.log.Info("schedule loaded", "part", "schedule", "source", source, "entries", len(entries))
	return nil
}

// scheduleUI serves the schedule endpoints.
func (a *app) scheduleUI(cfg *ui.Config) {
	if a.schedule.sched != nil {
		cfg.Schedule = a.schedule.sched
	}
}

// scheduleReady is the "scheduler" check of /readyz: failing while the
// scheduler is late, failing to enqueue, stopped or still starting.
func (a *app) scheduleReady(ctx context.Context) []ui.Check {
	h := a.schedule.sched.Health()
	return []ui.Check{{Name: "scheduler", OK: h.OK(), Detail: string(h.State) + ": " + h.Detail}}
}
