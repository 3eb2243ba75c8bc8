package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"conveyor/data"
	"conveyor/internal/lifecycle"
	"conveyor/jobs"
	"conveyor/jobs/sandbox"
	"conveyor/ops/events"
	"conveyor/ops/localai"
	"conveyor/ui"
)

// The job catalog's environment variables (its batching and feed
// variables are the seed's, read by jobs.SettingsFromEnv).
const (
	envDemo             = "CONVEYOR_DEMO"
	envConnectorURL     = "CONVEYOR_CONNECTOR_URL"
	envConnectorToken   = "CONVEYOR_CONNECTOR_TOKEN"
	envConnectorTimeout = "CONVEYOR_CONNECTOR_TIMEOUT"
)

// mediaDir is where post media is stored, in the data directory.
const mediaDir = "media"

// demoKickoffSpread is how long after start the demo runs the last of
// the fan-outs it runs at start.
const demoKickoffSpread = 30 * time.Second

// jobsPart is what the job catalog adds to the app: the catalog on its
// connector, and in the demo the sandbox and the local AI stand-in.
type jobsPart struct {
	cat     *jobs.Catalog
	sandbox *sandbox.Sandbox
	ai      *http.Server // the demo's local AI stand-in
	aiDone  chan error
}

// jobsSettings are the catalog's settings (flags, environment, file).
type jobsSettings struct {
	// Demo runs the sandbox: its accounts, its connector and a local AI
	// stand-in on loopback.
	Demo bool
	// ConnectorURL is where the HTTP bridge posts the account jobs' calls;
	// "" means no connector (the account jobs fail saying so).
	ConnectorURL     string
	ConnectorToken   string
	ConnectorTimeout time.Duration
	// Catalog are the fan-out, feed and purge settings.
	Catalog jobs.Settings
	// Sandbox configures the demo's sandbox.
	Sandbox sandbox.Options
	// Declared are the job classes the configuration file declares.
	Declared []jobs.DeclaredClass

	flagDemo bool
}

func (s *jobsSettings) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.flagDemo, "demo", false, "run the demo: sandbox accounts and connector, a local AI stand-in on loopback (env CONVEYOR_DEMO=1)")
}

func (s *jobsSettings) resolve(fc jobsFile, getenv func(string) string, dataDir string) error {
	if v := strings.TrimSpace(getenv(envDemo)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want 1 or 0 (true or false)", envDemo, v)
		}
		s.Demo = b
	}
	s.Demo = s.Demo || s.flagDemo
	s.ConnectorURL = first(strings.TrimSpace(getenv(envConnectorURL)), fc.ConnectorURL)
	if s.ConnectorURL != "" {
		if err := jobs.CheckURL(s.ConnectorURL); err != nil {
			from := "config: connector_url"
			if getenv(envConnectorURL) != "" {
				from = envConnectorURL
			}
			return fmt.Errorf("%s: %w", from, err)
		}
	}
	s.ConnectorToken = first(getenv(envConnectorToken), fc.ConnectorToken)
	s.ConnectorTimeout = time.Duration(fc.ConnectorTimeout)
	if v := strings.TrimSpace(getenv(envConnectorTimeout)); v != "" {
		d, err := parseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a positive duration such as 30s", envConnectorTimeout, v)
		}
		s.ConnectorTimeout = d
	}
	var err error
	if s.Catalog, err = jobs.SettingsFromEnv(getenv, s.Demo); err != nil {
		return err
	}
	if s.Sandbox, err = sandbox.OptionsFromEnv(getenv); err != nil {
		return err
	}
	if s.Declared, err = jobs.ParseDeclared(fc.JobClasses); err != nil {
		return fmt.Errorf("config: job_classes: %w", err)
	}
	return nil
}

// openDemo, in the demo only, builds the sandbox and serves the local AI
// stand-in on loopback, and points the local-AI settings at it (unless
// LOCAL_AI_URL names a real service): the guardrails then configure,
// check and gate it like a real one. It runs before registerLocalAIJobs.
func (a *app) openDemo() error {
	if !a.st.Jobs.Demo {
		return nil
	}
	p := &a.jobs
	p.sandbox = sandbox.New(a.st.Jobs.Sandbox)
	if a.st.LocalAI.Config.URL != "" {
		a.log.Info("demo: using the local AI service LOCAL_AI_URL names", "part", "jobs", "url", a.st.LocalAI.Config.URL)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: local AI stand-in: %w", err)
	}
	p.ai = &http.Server{Handler: p.sandbox.AIHandler(), ReadHeaderTimeout: 10 * time.Second}
	p.aiDone = make(chan error, 1)
	go func() { p.aiDone <- p.ai.Serve(ln) }()
	a.opened.Push(lifecycle.Hooks{Name: "demo local AI stand-in", OnStop: p.closeAI})
	base := "http://" + ln.Addr().String()
	cfg := a.st.LocalAI.Config
	cfg.URL, cfg.OllamaURL, cfg.HealthPath = base, base, localai.DefaultHealthPath
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: local AI stand-in: %w", err)
	}
	a.st.LocalAI.Config = cfg
	a.log.Info("demo: the local AI stand-in serves on loopback", "part", "jobs", "url", base)
	return nil
}

// openJobs builds the catalog on its connector and registers its classes
// and the declared ones; in the demo it adds the sandbox's accounts. It
// runs after registerLocalAIJobs (the AI gate reads its health) and before
// openSchedule (which needs every class registered).
func (a *app) openJobs(ctx context.Context) error {
	log := a.log.With("part", "jobs")
	st := a.st.Jobs
	var conn jobs.Connector
	switch {
	case a.jobs.sandbox != nil:
		conn = a.jobs.sandbox
		log.Info("connector: the sandbox", "seed", st.Sandbox.Seed, "latency", st.Sandbox.Latency, "fault_rate", st.Sandbox.FaultRate)
	case st.ConnectorURL != "":
		b, err := jobs.NewBridge(jobs.BridgeOptions{URL: st.ConnectorURL, Token: st.ConnectorToken, Timeout: st.ConnectorTimeout})
		if err != nil {
			return err
		}
		conn = b
		log.Info("connector: the HTTP bridge", "url", st.ConnectorURL)
	default:
		conn = jobs.Unconfigured{}
		log.Warn("no connector is configured: the account jobs will fail until connector_url (or CONVEYOR_CONNECTOR_URL) is set")
	}
	var ai *jobs.LocalAI
	if cfg := a.st.LocalAI.Config; cfg.URL != "" && cfg.Microservice() {
		var err error
		if ai, err = jobs.NewLocalAI(cfg.URL, st.ConnectorTimeout); err != nil {
			return err
		}
	}
	publish := func() { a.bus.Publish(events.TopicProfiles) }
	cat, err := jobs.New(jobs.Options{
		DB: a.storage.db, Store: a.store, Registry: a.reg, Topology: a.st.Topology, Connector: conn, LocalAI: ai,
		AIGate: func() (bool, string) {
			s := a.localAI.health.State()
			return s.LanesOpen, s.Reason
		},
		Settings: st.Catalog, MediaDir: filepath.Join(a.st.DataDir, mediaDir), ProfilesChanged: publish, Logger: log,
	})
	if err != nil {
		return err
	}
	a.jobs.cat = cat
	if err := cat.Register(); err != nil {
		return err
	}
	if err := cat.RegisterDeclared(st.Declared); err != nil {
		return err
	}
	if a.jobs.sandbox != nil {
		return a.seedDemoAccounts(ctx)
	}
	return nil
}

// seedDemoAccounts adds the sandbox's accounts that are not there yet,
// every switch on.
func (a *app) seedDemoAccounts(ctx context.Context) error {
	added := 0
	for _, name := range a.jobs.sandbox.Accounts() {
		_, err := a.storage.db.AccountByUsername(ctx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, data.ErrNotFound) {
			return err
		}
		acct := &data.Account{Username: name}
		for _, sw := range data.Switches() {
			*acct.Switch(sw) = true
		}
		if err := a.storage.db.CreateAccount(ctx, acct); err != nil {
			return err
		}
		added++
	}
	if added > 0 {
		a.bus.Publish(events.TopicProfiles)
	}
	a.log.Info("demo: sandbox accounts", "part", "jobs", "accounts", len(a.jobs.sandbox.Accounts()), "added", added)
	return nil
}

// jobsUI serves the accounts endpoints.
func (a *app) jobsUI(cfg *ui.Config) {
	cfg.AccountsConfig = ui.AccountsConfig{AccountsDB: a.storage.db, AccountsChanged: func() { a.bus.Publish(events.TopicProfiles) }}
}

// demoKickoff is, in the demo, the service that runs each fan-out
// orchestrator's schedule entry once in the first half-minute (as POST
// /api/v1/cron/{entry}/enqueue would), continuous processing at once, so a
// new user sees every kind of account job within the first minute instead
// of at the entries' next ticks; nil outside the demo.
func (a *app) demoKickoff() (lifecycle.Service, error) {
	if a.jobs.sandbox == nil || a.schedule.sched == nil {
		return nil, nil
	}
	return jobs.NewKickoff(jobs.KickoffOptions{Scheduler: a.schedule.sched, Spread: demoKickoffSpread,
		Logger: a.log.With("part", "jobs")})
}

// closeAI stops the demo's local AI stand-in.
func (p *jobsPart) closeAI(ctx context.Context) error {
	err := p.ai.Shutdown(ctx)
	if serr := <-p.aiDone; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
