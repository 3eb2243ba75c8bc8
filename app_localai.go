package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"conveyor/internal/lifecycle"
	"conveyor/ops/localai"
	"conveyor/ui"
)

// envLocalAIWatchInterval sets how often serve checks the local AI services
// between runs of the scheduled check job.
const envLocalAIWatchInterval = "LOCAL_AI_WATCH_INTERVAL"

// localAIPart is what the local-AI guardrails add to the app: the
// supervisor, the shared health state, the health watch and the gates of
// the AI lanes.
type localAIPart struct {
	sup    *localai.Supervisor
	health *localai.Health
}

// localAISettings are the local-AI settings: the configuration file's
// `local_ai:` section with the environment over it (the seed's variables).
type localAISettings struct {
	// Config is resolved: defaults filled in and validated.
	Config localai.Config
	// WatchInterval is how often serve checks the services between runs of
	// the scheduled check job (default localai.DefaultWatchInterval).
	WatchInterval time.Duration
}

// addFlags adds nothing: local AI is configured by the seed's environment
// variables and the configuration file, so that `serve`, `health` and `ai`
// read the same settings.
func (s *localAISettings) addFlags(fs *flag.FlagSet) {}

// resolve reads the file section with the environment over it. A bad value
// is named by its environment variable, or by its key when it came from the
// file.
func (s *localAISettings) resolve(fc localAIFile, getenv func(string) string, dataDir string) error {
	file := fc.LocalAI.byEnv()
	merged := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return strings.TrimSpace(file[name][0])
	}
	fromFile := func(name string) bool { return strings.TrimSpace(getenv(name)) == "" && merged(name) != "" }
	cfg, err := localai.ConfigFromEnv(merged)
	if err != nil {
		var se *localai.SettingError
		if errors.As(err, &se) && fromFile(se.Name) {
			return fmt.Errorf("config: local_ai.%s %q: %s", file[se.Name][1], se.Value, se.Reason)
		}
		return err
	}
	s.Config = cfg
	s.WatchInterval = localai.DefaultWatchInterval
	if v := merged(envLocalAIWatchInterval); v != "" {
		d, err := parseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		switch {
		case err != nil && fromFile(envLocalAIWatchInterval):
			return fmt.Errorf("config: local_ai.watch_interval: %w", err)
		case err != nil:
			return fmt.Errorf("%s: %w", envLocalAIWatchInterval, err)
		}
		s.WatchInterval = d
	}
	return nil
}

// registerLocalAIJobs builds the supervisor and the shared health state and
// registers CheckAiMicroserviceHealthJob (queue maintenance). It runs right
// after openFailures (the database is open) and before openSchedule, which
// needs every scheduled class registered.
func (a *app) registerLocalAIJobs() error {
	log := a.log.With("part", "local_ai")
	a.localAI.sup = localai.NewSupervisor(a.st.LocalAI.Config, a.st.DataDir, log)
	a.opened.Push(lifecycle.Hooks{Name: "local AI", OnStop: a.releaseLocalAI})
	a.localAI.health = localai.NewHealth(a.localAI.sup, localai.HealthOptions{DB: a.storage.db, Tracker: a.failures.tracker,
		Bus: a.bus, Logger: log})
	return a.reg.Register(a.localAI.health.Class())
}

// openLocalAI is the start-up guardrail, run before any worker starts: the
// AI lanes' gates are held closed until a check passes; when local AI is
// required and not healthy it is started if allowed, and otherwise serve
// fails fast, except with START_LOCAL_AI=false, which holds the AI lanes
// closed and goes on.
func (a *app) openLocalAI(ctx context.Context) error {
	p := &a.localAI
	if err := p.health.Bind(a.pool); err != nil {
		return err
	}
	a.ready = append(a.ready, a.localAIReady)
	cfg := a.st.LocalAI.Config
	err := p.sup.Ensure(ctx)
	var se *localai.StartError
	switch {
	case err == nil && !cfg.Required():
		if st := p.health.State(); !st.LanesOpen {
			a.log.Warn("AI lanes held closed: local AI is not configured", "part", "local_ai", "reason", st.Reason)
		}
	case err == nil:
		if _, err := p.health.Check(ctx); err != nil {
			a.log.Error("record local AI health", "part", "local_ai", "err", err)
		}
	case errors.Is(err, localai.ErrStartDisabled) && errors.As(err, &se):
		a.log.Warn("local AI is not healthy; AI lanes held closed until it is", "part", "local_ai", "err", err)
		if err := p.health.Report(ctx, se.Results); err != nil {
			a.log.Error("record local AI health", "part", "local_ai", "err", err)
		}
	default:
		return fmt.Errorf("local AI start-up check failed: %w", err)
	}
	return nil
}

// localAIWatch is the health watch between runs of the scheduled check
// job, or nil when local AI is not required.
func (a *app) localAIWatch() lifecycle.Service {
	if !a.st.LocalAI.Config.Required() {
		return nil
	}
	var loop lifecycle.Loop
	every := a.st.LocalAI.WatchInterval
	return lifecycle.Hooks{
		Name: "local AI watch",
		OnStart: func(ctx context.Context) error {
			loop.Go(context.WithoutCancel(ctx), func(ctx context.Context) { a.localAI.health.Watch(ctx, every) })
			return nil
		},
		OnStop: loop.Stop,
	}
}

// releaseLocalAI stops the services if this process started them
// (localai.Supervisor.Release); what another process started is left
// running. It runs at close, after the lanes have drained.
func (a *app) releaseLocalAI(ctx context.Context) error {
	err := a.localAI.sup.Release(ctx)
	switch {
	case err == nil:
		a.log.Info("stopped the local AI services this process started", "part", "local_ai")
	case errors.Is(err, localai.ErrNotOwned):
		a.log.Debug("local AI left as it is", "part", "local_ai", "reason", err)
		err = nil
	default:
		err = fmt.Errorf("stop local AI: %w", err)
	}
	return err
}

// localAIReady is the "local_ai" check of /readyz: failing only when local
// AI is required and not healthy.
func (a *app) localAIReady(ctx context.Context) []ui.Check {
	st := a.localAI.health.State()
	c := ui.Check{Name: "local_ai", OK: st.Healthy || !st.Required}
	switch {
	case !st.Required && st.LanesOpen:
		c.Detail = "not required: " + st.Reason
	case !st.Required:
		c.Detail = "not required: " + st.Reason + " (AI lanes held closed)"
	case st.Healthy:
		var parts []string
		for _, r := range st.Results {
			parts = append(parts, fmt.Sprintf("%s %s", r.Label(), r.Status))
		}
		c.Detail = "healthy: " + strings.Join(parts, ", ")
	default:
		c.Detail = st.Reason + " (AI lanes held closed)"
	}
	return []ui.Check{c}
}
