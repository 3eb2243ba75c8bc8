package localai

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"conveyor/internal/procenv"
)

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
	cmd.Env = s.commandEnv()
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

// commandEnv is the start and stop commands' environment: BaseEnv and
// Config.PassEnv from Conveyor's environment, and the local AI settings as
// resolved; never the rest of Conveyor's environment, which holds its API
// token and perhaps cloud credentials.
func (s *Supervisor) commandEnv() []string {
	return procenv.Build(os.LookupEnv, [][2]string{{EnvURL, s.cfg.URL}, {EnvHealthPath, s.cfg.HealthPath}, {EnvOllamaURL, s.cfg.OllamaURL}}, s.cfg.PassEnv)
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
	cmd.Env = s.commandEnv()
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
