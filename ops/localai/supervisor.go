package localai

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// RunMode says how the start command ran.
type RunMode string

// The run modes.
const (
	// ModeForeground: the start command was still running when the services
	// became healthy. Conveyor owns its process group and stops it with
	// SIGTERM, then SIGKILL after the grace period.
	ModeForeground RunMode = "foreground"
	// ModeBackground: the start command started the services in the
	// background and exited 0. Conveyor stops them with the stop command.
	ModeBackground RunMode = "background"
)

// Files the Supervisor keeps in the data directory.
const (
	// OwnerFile records what Conveyor started (mode 0600, written
	// atomically); `conveyor ai stop` in another process reads it too.
	OwnerFile = "local_ai.owner.json"
	// LogFile receives the start and stop commands' output (and a
	// foreground service's, for as long as it runs).
	LogFile  = "local_ai.log"
	lockFile = "local_ai.lock"
)

// Supervisor defaults.
const (
	// DefaultHealthPoll is how often health is polled while waiting for the
	// services to come up.
	DefaultHealthPoll = 250 * time.Millisecond
	// DefaultStopGrace is how long Stop waits after SIGTERM before SIGKILL.
	DefaultStopGrace = 10 * time.Second
	// DefaultWatchInterval is Watch's interval when none is given.
	DefaultWatchInterval = 15 * time.Second
)

const (
	stopPoll       = 20 * time.Millisecond
	killWait       = 5 * time.Second
	maxLogSize     = 8 << 20
	maxOutputTail  = 1 << 10
	recordVersion  = 1
	lockRetryDelay = 25 * time.Millisecond
)

// Status is the local AI part of `conveyor health` and /readyz.
type Status struct {
	// Required is Config.Required. When false nothing is checked and
	// Note says why.
	Required bool `json:"required"`
	// Healthy: required and every check passed.
	Healthy bool           `json:"healthy"`
	Start   StartMode      `json:"start_mode"`
	Results []HealthResult `json:"checks,omitempty"`
	Note    string         `json:"note,omitempty"`
	// Owned: a valid ownership record shows Conveyor started the services.
	Owned bool `json:"owned"`
	// PID is the start command's process (in background mode it has
	// exited); PGID its process group.
	PID     int       `json:"pid,omitempty"`
	PGID    int       `json:"pgid,omitempty"`
	Mode    RunMode   `json:"mode,omitempty"`
	Command string    `json:"command,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// OwnerPID is the Conveyor process that ran the start command (serve,
	// or `conveyor ai start`); Release stops only from that process.
	OwnerPID int `json:"owner_pid,omitempty"`
	// Ignored says why an ownership record proves nothing (stale or
	// unreadable); Note says it too.
	Ignored string `json:"ignored_record,omitempty"`
}

// Supervisor checks, starts and stops the local AI services, and stops only
// what Conveyor itself started. Its methods are safe for concurrent use, and
// two processes (serve and `conveyor ai …`) can share one data directory:
// operations are serialized with a lock file there.
type Supervisor struct {
	cfg     Config
	dataDir string
	logger  *slog.Logger
	client  *http.Client
	poll    time.Duration
	grace   time.Duration
	now     func() time.Time

	opMu sync.Mutex // one Ensure/Start/Stop/Restart at a time in this process

	childMu sync.Mutex
	child   *child // the start command this process ran last
}

// child is a start command this process started and reaps.
type child struct {
	pid      int
	ticks    uint64
	exited   chan struct{} // closed when Wait has returned; err is set then
	err      error
	finished chan struct{} // closed when the reaper is done
	stopping bool          // guarded by Supervisor.childMu
}

// SupervisorOption adjusts a Supervisor.
type SupervisorOption func(*Supervisor)

// WithHealthClient sets the HTTP client for health checks (default: a
// client of its own).
func WithHealthClient(c *http.Client) SupervisorOption {
	return func(s *Supervisor) { s.client = c }
}

// WithHealthPoll sets how often health is polled while waiting for the
// services to come up (default DefaultHealthPoll).
func WithHealthPoll(d time.Duration) SupervisorOption {
	return func(s *Supervisor) { s.poll = d }
}

// WithStopGrace sets how long Stop waits after SIGTERM before SIGKILL
// (default DefaultStopGrace).
func WithStopGrace(d time.Duration) SupervisorOption {
	return func(s *Supervisor) { s.grace = d }
}

// WithClock sets the clock for the ownership record's timestamps.
func WithClock(now func() time.Time) SupervisorOption {
	return func(s *Supervisor) { s.now = now }
}

// NewSupervisor returns a Supervisor for cfg (defaults filled in) that keeps
// its ownership record and command log in dataDir. logger may be nil.
func NewSupervisor(cfg Config, dataDir string, logger *slog.Logger, opts ...SupervisorOption) *Supervisor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		cfg:     cfg.WithDefaults(),
		dataDir: dataDir,
		logger:  logger.With("component", "local_ai"),
		poll:    DefaultHealthPoll,
		grace:   DefaultStopGrace,
		now:     time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		// A fresh connection per check, so a restarted service is seen as
		// it is now.
		s.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}
	}
	if s.poll <= 0 {
		s.poll = DefaultHealthPoll
	}
	if s.grace <= 0 {
		s.grace = DefaultStopGrace
	}
	return s
}

// notRequiredNote says why local AI is not required.
func (s *Supervisor) notRequiredNote() string {
	if !s.cfg.Microservice() {
		return "USE_LOCAL_AI_MICROSERVICE=false: local AI is not used"
	}
	return "LOCAL_AI_URL is not set: local AI is not configured and the AI lanes stay closed"
}

// Check runs the health checks (none when local AI is not required).
func (s *Supervisor) Check(ctx context.Context) []HealthResult {
	return Check(ctx, s.cfg, s.client)
}

// Ensure is the start-up guardrail, run before any worker starts:
//   - local AI not required: nil, nothing checked;
//   - healthy: nil;
//   - not healthy and starting allowed (START_LOCAL_AI=true, or auto with a
//     start command): run the start command and wait for health within
//     LOCAL_AI_START_TIMEOUT;
//   - otherwise a *StartError. With START_LOCAL_AI=false it wraps
//     ErrStartDisabled: serve should go on with the AI lanes held closed.
//     Any other *StartError means: fail fast and print it.
func (s *Supervisor) Ensure(ctx context.Context) error {
	if !s.cfg.Required() {
		s.logger.Info("local AI not required", "reason", s.notRequiredNote())
		return nil
	}
	results := s.Check(ctx)
	if AllHealthy(results) {
		s.logger.Info("local AI healthy", "url", s.cfg.HealthURL())
		return nil
	}
	if !s.cfg.StartAllowed() {
		cause := ErrNoStartCommand
		if s.cfg.Start == StartNever {
			cause = ErrStartDisabled
		}
		return &StartError{Results: results, Cause: cause, Timeout: s.cfg.StartTimeout, Log: s.path(LogFile)}
	}
	return s.Start(ctx)
}

// Start starts the services unless they are healthy already. When a valid
// ownership record shows Conveyor started them earlier, it waits for them
// to become healthy instead of starting a second copy. Starting needs a
// start command; START_LOCAL_AI does not restrict an explicit Start
// (`conveyor ai start`).
func (s *Supervisor) Start(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.start(ctx)
}

// Stop stops the services if, and only if, the ownership record proves
// Conveyor started them: a foreground start command's process group gets
// SIGTERM, then SIGKILL after the grace period; a background start is
// undone with the stop command. It returns ErrNotOwned when there is no
// record or the record is stale (then removed); nothing is signalled then.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	rec, p, ok := s.loadOwned()
	if !ok {
		return ErrNotOwned
	}
	return s.stop(ctx, rec, p)
}

// Release is serve's stop: it stops the services only if this very
// process started them (the ownership record names it as the owner). It
// returns ErrNotOwned, and touches nothing, when no valid record exists or
// when another Conveyor process started them (an earlier serve, or
// `conveyor ai start`); Stop, for `conveyor ai stop`, takes any valid
// record.
func (s *Supervisor) Release(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	rec, p, ok := s.loadOwned()
	if !ok {
		return ErrNotOwned
	}
	if !ownedBySelf(rec) {
		return fmt.Errorf("%w: Conveyor process %d started them, not this one (pid %d)", ErrNotOwned, rec.OwnerPID, os.Getpid())
	}
	return s.stop(ctx, rec, p)
}

// ownedBySelf reports whether rec names this process as its owner.
func ownedBySelf(rec ownerRecord) bool {
	if rec.OwnerPID != os.Getpid() {
		return false
	}
	self, err := readProcStat(os.Getpid())
	return err != nil || rec.OwnerStartTicks == 0 || self.startTicks == rec.OwnerStartTicks
}

// Restart stops the services Conveyor started and starts them again. When
// they are healthy but not Conveyor's, it returns ErrNotOwned and touches
// nothing; when they are down and not Conveyor's, it starts them.
func (s *Supervisor) Restart(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if !s.cfg.Required() {
		return fmt.Errorf("%w: %s", ErrNotRequired, s.notRequiredNote())
	}
	if rec, p, ok := s.loadOwned(); ok {
		if err := s.stop(ctx, rec, p); err != nil {
			return err
		}
	} else if AllHealthy(s.Check(ctx)) {
		return fmt.Errorf("%w: they are running and healthy; not restarting someone else's services", ErrNotOwned)
	}
	return s.start(ctx)
}

// Status reports health and ownership. It changes nothing (a stale record is
// reported in Note, not removed).
func (s *Supervisor) Status(ctx context.Context) Status {
	st := Status{Required: s.cfg.Required(), Start: s.cfg.Start}
	if !st.Required {
		st.Note = s.notRequiredNote()
	} else {
		st.Results = s.Check(ctx)
		st.Healthy = AllHealthy(st.Results)
	}
	rec, err := readRecord(s.path(OwnerFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		st.Ignored = "unreadable ownership record: " + err.Error()
		st.Note = joinNote(st.Note, st.Ignored)
	default:
		if p, why := s.prove(rec); p != proofNone {
			st.Owned, st.PID, st.PGID, st.Mode, st.Command, st.Since = true, rec.PID, rec.PGID, rec.Mode, rec.Command, rec.StartedAt
			st.OwnerPID = rec.OwnerPID
		} else {
			st.Ignored = "stale ownership record ignored: " + why
			st.Note = joinNote(st.Note, st.Ignored)
		}
	}
	return st
}

// Watch checks health every interval (DefaultWatchInterval when every is
// not positive) until ctx ends, and calls changed with the first result and
// then whenever healthy flips: for the AI lanes' gate and the issue tracker.
// When local AI is not required it calls changed(false, nil) once and waits
// for ctx.
func (s *Supervisor) Watch(ctx context.Context, every time.Duration, changed func(healthy bool, results []HealthResult)) {
	if every <= 0 {
		every = DefaultWatchInterval
	}
	if !s.cfg.Required() {
		changed(false, nil)
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	first, last := true, false
	for {
		results := s.Check(ctx)
		if ctx.Err() != nil {
			return
		}
		healthy := AllHealthy(results)
		if first || healthy != last {
			changed(healthy, results)
			first, last = false, healthy
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func (s *Supervisor) path(name string) string { return filepath.Join(s.dataDir, name) }
