package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// Sentinels for the Supervisor's failures. A *StartError wraps the first
// four; errors.Is works on it.
var (
	// ErrStartDisabled: local AI is not healthy and START_LOCAL_AI=false, so
	// Conveyor does not start it. Serve holds the AI lanes closed and goes on.
	ErrStartDisabled = errors.New("START_LOCAL_AI=false")
	// ErrNoStartCommand: local AI is not healthy and there is no
	// LOCAL_AI_START_COMMAND to start it with.
	ErrNoStartCommand = errors.New("no LOCAL_AI_START_COMMAND")
	// ErrStartCommandFailed: the start command exited non-zero before the
	// services became healthy.
	ErrStartCommandFailed = errors.New("local AI start command failed")
	// ErrStartTimeout: the services did not become healthy within
	// LOCAL_AI_START_TIMEOUT.
	ErrStartTimeout = errors.New("local AI did not become healthy in time")
	// ErrNotOwned is returned by Stop and Restart when no valid ownership
	// record proves Conveyor started the services; nothing was stopped.
	ErrNotOwned = errors.New("local AI services were not started by Conveyor")
	// ErrNoStopCommand is returned by Stop for services a background start
	// command started when there is no LOCAL_AI_STOP_COMMAND and none of
	// their processes is left in the start command's process group.
	ErrNoStopCommand = errors.New("no LOCAL_AI_STOP_COMMAND")
	// ErrNotRequired is returned by Start and Restart when local AI is not
	// required (see LocalAIConfig.Required): there is nothing to check.
	ErrNotRequired = errors.New("local AI is not required")
)

// StartError is the start-up guardrail's failure: its message says which
// check failed, what it got, and how to fix it.
type StartError struct {
	// Results are the last health checks.
	Results []HealthResult
	// Cause is ErrStartDisabled, ErrNoStartCommand, ErrStartCommandFailed
	// (wrapping the exit error), ErrStartTimeout, the context's error, or
	// the error that kept the command from running.
	Cause error
	// Command is the start command, when one was run.
	Command string
	// Output is the end of the start command's output, when it failed.
	Output string
	// Timeout is LOCAL_AI_START_TIMEOUT.
	Timeout time.Duration
	// Log is the file with the commands' full output.
	Log string
	// PID is set when the services were started by Conveyor earlier but are
	// not healthy.
	PID int
}

// Error says which check failed, what it got, and how to fix it.
func (e *StartError) Error() string {
	var b strings.Builder
	var failing []string
	for _, r := range e.Results {
		if !r.OK {
			failing = append(failing, r.String())
		}
	}
	if len(failing) == 0 {
		failing = append(failing, "local AI is not healthy")
	}
	b.WriteString(strings.Join(failing, "; "))
	b.WriteString("; ")
	switch {
	case errors.Is(e.Cause, ErrStartDisabled):
		b.WriteString("START_LOCAL_AI=false, so Conveyor does not start it and keeps the AI lanes closed until it is healthy; " +
			"start it yourself, or set START_LOCAL_AI=auto and LOCAL_AI_START_COMMAND")
	case errors.Is(e.Cause, ErrNoStartCommand):
		b.WriteString("LOCAL_AI_START_COMMAND is not set, so Conveyor cannot start it; start it yourself, " +
			"or set LOCAL_AI_START_COMMAND (with START_LOCAL_AI=auto or true), " +
			"or set USE_LOCAL_AI_MICROSERVICE=false to run without local AI")
	case errors.Is(e.Cause, ErrStartCommandFailed):
		fmt.Fprintf(&b, "the start command %q failed: %s", e.Command,
			strings.TrimPrefix(e.Cause.Error(), ErrStartCommandFailed.Error()+": "))
		if e.Output != "" {
			fmt.Fprintf(&b, "; its output ends with: %s", e.Output)
		}
		fmt.Fprintf(&b, "; fix LOCAL_AI_START_COMMAND or start the services yourself (full output in %s)", e.Log)
	case errors.Is(e.Cause, ErrStartTimeout) && e.PID != 0:
		fmt.Fprintf(&b, "Conveyor started it earlier (pid %d) but the checks did not pass within %v (LOCAL_AI_START_TIMEOUT); "+
			"restart it with `conveyor ai restart` (output in %s)", e.PID, e.Timeout, e.Log)
	case errors.Is(e.Cause, ErrStartTimeout):
		fmt.Fprintf(&b, "ran %q but the checks did not pass within %v (LOCAL_AI_START_TIMEOUT); "+
			"raise LOCAL_AI_START_TIMEOUT if it is only slow, or fix the service (output in %s)", e.Command, e.Timeout, e.Log)
	case errors.Is(e.Cause, context.Canceled) || errors.Is(e.Cause, context.DeadlineExceeded):
		fmt.Fprintf(&b, "start-up interrupted: %v", e.Cause)
	default:
		fmt.Fprintf(&b, "could not run the start command %q: %v; fix LOCAL_AI_START_COMMAND", e.Command, e.Cause)
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *StartError) Unwrap() error { return e.Cause }

// Status is the local AI part of `conveyor health` and /readyz.
type Status struct {
	// Required is LocalAIConfig.Required. When false nothing is checked and
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
	cfg     LocalAIConfig
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

// WithSupervisorClock sets the clock for the ownership record's timestamps.
func WithSupervisorClock(now func() time.Time) SupervisorOption {
	return func(s *Supervisor) { s.now = now }
}

// NewSupervisor returns a Supervisor for cfg (defaults filled in) that keeps
// its ownership record and command log in dataDir. logger may be nil.
func NewSupervisor(cfg LocalAIConfig, dataDir string, logger *slog.Logger, opts ...SupervisorOption) *Supervisor {
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
	return CheckLocalAI(ctx, s.cfg, s.client)
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

// start does Start's work; the caller holds opMu and the lock file.
func (s *Supervisor) start(ctx context.Context) error {
	if !s.cfg.Required() {
		return fmt.Errorf("%w: %s", ErrNotRequired, s.notRequiredNote())
	}
	results := s.Check(ctx)
	if AllHealthy(results) {
		s.logger.Info("local AI already healthy; not starting it")
		return nil
	}
	if rec, _, ok := s.loadOwned(); ok {
		s.logger.Info("local AI was started by Conveyor earlier; waiting for it", "pid", rec.PID, "since", rec.StartedAt)
		if results, err := s.waitHealthy(ctx, nil); err != nil {
			return &StartError{Results: results, Cause: err, Timeout: s.cfg.StartTimeout, Log: s.path(LogFile), PID: rec.PID, Command: rec.Command}
		}
		return nil
	}
	if strings.TrimSpace(s.cfg.StartCommand) == "" {
		return &StartError{Results: results, Cause: ErrNoStartCommand, Timeout: s.cfg.StartTimeout, Log: s.path(LogFile)}
	}
	return s.launch(ctx)
}

// launch runs the start command in its own process group and waits for
// health; see RunMode for how the outcome decides the mode.
func (s *Supervisor) launch(ctx context.Context) error {
	fail := func(results []HealthResult, cause error, output string) error {
		return &StartError{Results: results, Cause: cause, Command: s.cfg.StartCommand, Output: output,
			Timeout: s.cfg.StartTimeout, Log: s.path(LogFile)}
	}
	logf, offset, err := s.openLog("starting local AI: " + s.cfg.StartCommand)
	if err != nil {
		return fail(nil, err, "")
	}
	began := time.Now()
	cmd := exec.Command("/bin/sh", "-c", s.cfg.StartCommand)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fail(nil, err, "")
	}
	pid := cmd.Process.Pid
	st, err := readProcStat(pid) // a zombie still has its stat, so this holds even for a command that exited at once
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fail(nil, fmt.Errorf("read the start command's process: %w", err), "")
	}
	ch := &child{pid: pid, ticks: st.startTicks, exited: make(chan struct{}), finished: make(chan struct{})}
	s.childMu.Lock()
	s.child = ch
	s.childMu.Unlock()
	go s.reap(cmd, ch)

	rec := ownerRecord{
		Version: recordVersion, BootID: bootID(), PID: pid, PGID: pid, StartTicks: st.startTicks,
		OwnerPID: os.Getpid(), Command: s.cfg.StartCommand, Mode: ModeForeground, StartedAt: s.now().UTC(),
	}
	if self, err := readProcStat(os.Getpid()); err == nil {
		rec.OwnerStartTicks = self.startTicks
	}
	// Written before waiting, so that a crash during the wait leaves a record
	// the next run can use to clean up.
	if err := s.writeRecord(rec); err != nil {
		s.undoStart(ctx, rec, ch)
		return fail(nil, fmt.Errorf("write ownership record: %w", err), "")
	}
	s.logger.Info("local AI starting", "pid", pid, "command", s.cfg.StartCommand, "timeout", s.cfg.StartTimeout)

	results, err := s.waitHealthy(ctx, ch)
	if err != nil {
		if errors.Is(err, ErrStartCommandFailed) {
			rec.Mode = "" // nothing left to stop with the stop command
		} else if isDone(ch.exited) {
			rec.Mode = ModeBackground
		}
		s.undoStart(ctx, rec, ch)
		return fail(results, err, s.outputTail(offset))
	}
	select {
	case <-ch.exited:
		if ch.err != nil {
			// Healthy although the command failed: whatever is serving was
			// not started by it.
			s.removeRecord()
			s.logger.Warn("local AI healthy but its start command failed; not claiming ownership", "err", ch.err)
			return nil
		}
		rec.Mode = ModeBackground
	default:
		rec.Mode = ModeForeground
	}
	if err := s.writeRecord(rec); err != nil {
		s.logger.Error("write ownership record", "err", err)
	}
	s.logger.Info("local AI started", "pid", pid, "mode", rec.Mode, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// waitHealthy polls health until it passes, LOCAL_AI_START_TIMEOUT passes,
// ctx ends, or (when ch is not nil) the start command fails.
func (s *Supervisor) waitHealthy(ctx context.Context, ch *child) ([]HealthResult, error) {
	waitCtx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	var exited <-chan struct{}
	if ch != nil {
		exited = ch.exited
	}
	for {
		results := s.Check(waitCtx)
		if AllHealthy(results) {
			return results, nil
		}
		select {
		case <-exited:
			exited = nil
			if ch.err != nil {
				return results, fmt.Errorf("%w: %w", ErrStartCommandFailed, ch.err)
			}
			s.logger.Info("local AI start command returned; waiting for health", "pid", ch.pid)
		case <-ticker.C:
		case <-waitCtx.Done():
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			// The deadline may have cut the last check short ("no answer
			// within 0s"): check once more, so that the message says what
			// each service answers.
			results = s.Check(ctx)
			if AllHealthy(results) {
				return results, nil
			}
			return results, ErrStartTimeout
		}
	}
}

// undoStart cleans up after a start that did not become healthy: it stops
// what the start command left running and removes the record.
func (s *Supervisor) undoStart(ctx context.Context, rec ownerRecord, ch *child) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace+killWait+s.cfg.StartTimeout)
	defer cancel()
	s.markStopping(ch)
	if rec.Mode == ModeBackground && strings.TrimSpace(s.cfg.StopCommand) != "" {
		if err := s.runStopCommand(ctx); err != nil {
			s.logger.Error("stop command after a failed start", "err", err)
		}
	}
	if err := s.terminate(ctx, rec); err != nil {
		s.logger.Error("stop the failed start's processes", "err", err)
	}
	s.removeRecord()
	s.waitChild(ctx, ch)
}

// stop does Stop's work for an owned record; the caller holds opMu and the
// lock file.
func (s *Supervisor) stop(ctx context.Context, rec ownerRecord, p proof) error {
	hasStop := strings.TrimSpace(s.cfg.StopCommand) != ""
	ch := s.ownChild(rec)
	s.markStopping(ch)
	switch {
	case rec.Mode == ModeBackground && hasStop:
		if err := s.runStopCommand(ctx); err != nil {
			return err
		}
		// Give what is left of the start command's group the grace period
		// to exit, then end it: those processes are ours.
		if !s.waitGone(ctx, rec, s.grace) {
			if err := s.terminate(ctx, rec); err != nil {
				return err
			}
		}
	case rec.Mode == ModeForeground || p == proofProcess || p == proofGroup:
		if err := s.terminate(ctx, rec); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: the services were started in the background by %q; set LOCAL_AI_STOP_COMMAND to stop them", ErrNoStopCommand, rec.Command)
	}
	s.removeRecord()
	s.waitChild(ctx, ch)
	s.logger.Info("local AI stopped", "pid", rec.PID, "mode", rec.Mode)
	return nil
}

// reap waits for a start command this process started. A foreground command
// that exits 0 on its own turns out to have been a background starter: the
// record is updated to say so, unless an operation holding the lock file is
// under way (it then decides).
func (s *Supervisor) reap(cmd *exec.Cmd, ch *child) {
	defer close(ch.finished)
	ch.err = cmd.Wait()
	close(ch.exited)

	s.childMu.Lock()
	stopping := ch.stopping
	s.childMu.Unlock()
	switch {
	case stopping:
		return
	case ch.err != nil:
		s.logger.Warn("local AI start command exited", "pid", ch.pid, "err", ch.err)
		return
	}
	// Wait for the lock file, unless an operation that will handle the exit
	// itself (Stop, a failed start) marks the child as stopping meanwhile.
	var unlock func()
	for {
		s.childMu.Lock()
		stopping := ch.stopping
		s.childMu.Unlock()
		if stopping {
			return
		}
		var ok bool
		if unlock, ok = s.tryLock(); ok {
			break
		}
		time.Sleep(lockRetryDelay)
	}
	defer unlock()
	rec, err := readRecord(s.path(OwnerFile))
	if err != nil || rec.PID != ch.pid || rec.StartTicks != ch.ticks || rec.Mode != ModeForeground {
		return
	}
	rec.Mode = ModeBackground
	if err := s.writeRecord(rec); err != nil {
		s.logger.Error("write ownership record", "err", err)
		return
	}
	s.logger.Info("local AI start command exited 0; its services count as started in the background", "pid", ch.pid)
}

func (s *Supervisor) ownChild(rec ownerRecord) *child {
	s.childMu.Lock()
	defer s.childMu.Unlock()
	if s.child != nil && s.child.pid == rec.PID && s.child.ticks == rec.StartTicks {
		return s.child
	}
	return nil
}

func (s *Supervisor) markStopping(ch *child) {
	if ch == nil {
		return
	}
	s.childMu.Lock()
	ch.stopping = true
	s.childMu.Unlock()
}

// waitChild waits until this process has reaped ch (nil: nothing to wait
// for), or ctx ends.
func (s *Supervisor) waitChild(ctx context.Context, ch *child) {
	if ch == nil {
		return
	}
	select {
	case <-ch.finished:
	case <-ctx.Done():
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// --- stopping processes -------------------------------------------------

// terminate ends every live process of rec's process group: SIGTERM, then
// SIGKILL to what is left after the grace period. It signals only processes
// it can verify: in the group, started no earlier than the start command,
// through a pidfd opened before the check, so a recycled pid is never hit.
func (s *Supervisor) terminate(ctx context.Context, rec ownerRecord) error {
	members := groupMembers(rec)
	if len(members) == 0 {
		return nil
	}
	s.logger.Info("stopping local AI process group", "pgid", rec.PGID, "processes", len(members))
	for _, m := range members {
		m.signal(syscall.SIGTERM)
	}
	if s.waitGone(ctx, rec, s.grace) {
		return nil
	}
	left := groupMembers(rec)
	s.logger.Warn("local AI still running after the grace period; killing it", "pgid", rec.PGID, "processes", len(left), "grace", s.grace)
	for _, m := range left {
		m.signal(syscall.SIGKILL)
	}
	if s.waitGone(ctx, rec, killWait) {
		return nil
	}
	var pids []string
	for _, m := range groupMembers(rec) {
		pids = append(pids, strconv.Itoa(m.pid))
	}
	return fmt.Errorf("local AI processes %s still running after SIGKILL", strings.Join(pids, ", "))
}

// waitGone polls until rec's group has no live member, d passes or ctx
// ends, and reports whether the group is gone.
func (s *Supervisor) waitGone(ctx context.Context, rec ownerRecord, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(stopPoll)
	defer tick.Stop()
	for {
		if len(groupMembers(rec)) == 0 {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return len(groupMembers(rec)) == 0
		case <-ctx.Done():
			return false
		}
	}
}

// runStopCommand runs LOCAL_AI_STOP_COMMAND in its own process group,
// bounded by LOCAL_AI_START_TIMEOUT.
func (s *Supervisor) runStopCommand(ctx context.Context) error {
	logf, offset, err := s.openLog("stopping local AI: " + s.cfg.StopCommand)
	if err != nil {
		return err
	}
	cmd := exec.Command("/bin/sh", "-c", s.cfg.StopCommand)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("run LOCAL_AI_STOP_COMMAND %q: %w", s.cfg.StopCommand, err)
	}
	st, statErr := readProcStat(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(s.cfg.StartTimeout)
	defer timer.Stop()
	finished := false
	select {
	case err = <-done:
		finished = true
	case <-timer.C:
		err = fmt.Errorf("still running after %v (LOCAL_AI_START_TIMEOUT)", s.cfg.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if !finished {
		// Ours to end: the stop command and whatever it started in its group.
		if statErr == nil {
			for _, m := range groupMembers(ownerRecord{PID: cmd.Process.Pid, PGID: cmd.Process.Pid, StartTicks: st.startTicks}) {
				m.signal(syscall.SIGKILL)
			}
		}
		cmd.Process.Kill()
		<-done
	}
	if err != nil {
		return fmt.Errorf("LOCAL_AI_STOP_COMMAND %q failed: %w; its output ends with: %s", s.cfg.StopCommand, err, s.outputTail(offset))
	}
	return nil
}

// --- ownership ------------------------------------------------------------

// ownerRecord is OwnerFile's content.
type ownerRecord struct {
	Version int `json:"version"`
	// BootID is the kernel's boot id: start ticks count from boot, so a
	// record from an earlier boot proves nothing.
	BootID string `json:"boot_id,omitempty"`
	// PID, PGID and StartTicks identify the start command's process (the
	// leader of its own group): StartTicks is field 22 of /proc/<pid>/stat.
	PID        int    `json:"pid"`
	PGID       int    `json:"pgid"`
	StartTicks uint64 `json:"start_ticks"`
	// OwnerPID and OwnerStartTicks identify the Conveyor process that ran it.
	OwnerPID        int       `json:"owner_pid"`
	OwnerStartTicks uint64    `json:"owner_start_ticks"`
	Command         string    `json:"command"`
	Mode            RunMode   `json:"mode"`
	StartedAt       time.Time `json:"started_at"`
}

// proof is what shows a record is still valid.
type proof int

const (
	proofNone    proof = iota
	proofProcess       // the start command's process is alive, same start time
	proofGroup         // it is gone, but processes of its group remain
	proofOwner         // background mode: the Conveyor process that ran it is alive
)

// prove checks rec against /proc. Ownership holds when the start command's
// process still runs with the recorded start time; or, when it has exited,
// while processes of its process group remain (the kernel does not reuse a
// pid as long as a group of that id exists); or, for a background start
// whose services left the group, while the Conveyor process that ran it
// runs. Otherwise the record is stale and why says so.
func (s *Supervisor) prove(rec ownerRecord) (p proof, why string) {
	if rec.PID <= 0 || rec.PGID <= 0 {
		return proofNone, "no process in the record"
	}
	if boot := bootID(); rec.BootID != "" && boot != "" && rec.BootID != boot {
		return proofNone, "written before the machine last booted"
	}
	leader, err := readProcStat(rec.PID)
	switch {
	case err == nil && leader.alive() && leader.startTicks == rec.StartTicks:
		return proofProcess, ""
	case err == nil && leader.alive():
		why = fmt.Sprintf("pid %d now belongs to another process (start time differs)", rec.PID)
	default:
		if len(groupMembers(rec)) > 0 {
			return proofGroup, ""
		}
		why = fmt.Sprintf("pid %d is gone and its process group is empty", rec.PID)
	}
	if rec.Mode == ModeBackground && rec.OwnerPID > 0 {
		owner, err := readProcStat(rec.OwnerPID)
		switch {
		case err == nil && owner.alive() && owner.startTicks == rec.OwnerStartTicks:
			return proofOwner, ""
		case err == nil && owner.alive():
			why += fmt.Sprintf("; the Conveyor process that started it (pid %d) is gone and its pid was reused", rec.OwnerPID)
		default:
			why += fmt.Sprintf("; the Conveyor process that started it (pid %d) is gone", rec.OwnerPID)
		}
	}
	return proofNone, why
}

// loadOwned reads the record and proves it. A missing record, a stale one
// and an unreadable one all mean "not owned"; the latter two are removed.
func (s *Supervisor) loadOwned() (ownerRecord, proof, bool) {
	rec, err := readRecord(s.path(OwnerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, proofNone, false
	}
	if err != nil {
		s.logger.Warn("ignoring unreadable local AI ownership record", "path", s.path(OwnerFile), "err", err)
		s.removeRecord()
		return rec, proofNone, false
	}
	p, why := s.prove(rec)
	if p == proofNone {
		s.logger.Info("ignoring stale local AI ownership record", "pid", rec.PID, "command", rec.Command, "reason", why)
		s.removeRecord()
		return rec, proofNone, false
	}
	return rec, p, true
}

func readRecord(path string) (ownerRecord, error) {
	var rec ownerRecord
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	return rec, decodeRecord(data, &rec)
}

func decodeRecord(data []byte, rec *ownerRecord) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	switch {
	case rec.Version != recordVersion:
		return fmt.Errorf("version %d, want %d", rec.Version, recordVersion)
	case rec.PID <= 0 || rec.PGID <= 0:
		return errors.New("no pid or pgid")
	case rec.Mode != ModeForeground && rec.Mode != ModeBackground && rec.Mode != "":
		return fmt.Errorf("unknown mode %q", rec.Mode)
	}
	return nil
}

// writeRecord replaces the record atomically: a 0600 temporary file in the
// same directory, synced, renamed over the old one, directory synced.
func (s *Supervisor) writeRecord(rec ownerRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dataDir, ".local_ai.owner-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path(OwnerFile)); err != nil {
		return err
	}
	return syncDir(s.dataDir)
}

func (s *Supervisor) removeRecord() {
	if err := os.Remove(s.path(OwnerFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Error("remove ownership record", "err", err)
		return
	}
	syncDir(s.dataDir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lock takes the data directory's lock file, waiting for another process's
// operation to finish or ctx to end.
func (s *Supervisor) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.path(lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		t := time.NewTimer(lockRetryDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("wait for another local AI operation: %w", ctx.Err())
		}
	}
}

// tryLock takes the lock file if it is free.
func (s *Supervisor) tryLock() (func(), bool) {
	f, err := os.OpenFile(s.path(lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// openLog opens LogFile for appending (rotating it to .1 past maxLogSize),
// writes a header line and returns the offset after it.
func (s *Supervisor) openLog(header string) (*os.File, int64, error) {
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return nil, 0, err
	}
	p := s.path(LogFile)
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxLogSize {
		os.Rename(p, p+".1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(f, "--- %s conveyor: %s\n", s.now().UTC().Format(time.RFC3339), header)
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, off, nil
}

// outputTail returns up to maxOutputTail bytes from the end of what was
// logged after offset, on one line.
func (s *Supervisor) outputTail(offset int64) string {
	f, err := os.Open(s.path(LogFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= offset {
		return ""
	}
	from := max(offset, fi.Size()-maxOutputTail)
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	return oneLine(buf[:n], maxOutputTail)
}

// --- /proc ---------------------------------------------------------------

// procStat is what the supervisor needs from /proc/<pid>/stat.
type procStat struct {
	pid        int
	state      byte
	pgrp       int
	startTicks uint64
}

// alive is false for zombies and dead processes.
func (p procStat) alive() bool { return p.state != 'Z' && p.state != 'X' && p.state != 'x' }

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(data)
}

// parseProcStat parses /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(data []byte) (procStat, error) {
	s := string(data)
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open <= 0 || end < open {
		return procStat{}, errors.New("malformed stat: no command name")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil || pid <= 0 {
		return procStat{}, errors.New("malformed stat: bad pid")
	}
	// After ')': state (field 3), ppid (4), pgrp (5), … starttime (22).
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed stat: too few fields")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: pgrp: %w", err)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed stat: starttime: %w", err)
	}
	return procStat{pid: pid, state: f[0][0], pgrp: pgrp, startTicks: ticks}, nil
}

// groupMembers lists the live processes of rec's process group that started
// no earlier than the start command. When the start command's pid is alive
// but with another start time, the pid (and so the group id) was reused:
// nothing in that group is ours.
func groupMembers(rec ownerRecord) []procStat {
	if rec.PGID <= 0 {
		return nil
	}
	if leader, err := readProcStat(rec.PGID); err == nil && leader.alive() && leader.startTicks != rec.StartTicks {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || !st.alive() || st.pgrp != rec.PGID || st.startTicks < rec.StartTicks {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b procStat) int { return a.pid - b.pid })
	return out
}

// signal sends sig to p if it is still the same process: the pidfd is
// opened first, then the process is checked, so the signal cannot reach a
// process that took over the pid in between.
func (p procStat) signal(sig syscall.Signal) {
	proc, err := os.FindProcess(p.pid)
	if err != nil {
		return
	}
	defer proc.Release()
	now, err := readProcStat(p.pid)
	if err != nil || !now.alive() || now.startTicks != p.startTicks || now.pgrp != p.pgrp {
		return
	}
	proc.Signal(sig)
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
