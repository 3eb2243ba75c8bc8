package localai

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// zombieGroup starts a process group whose leader exits at once and is
// left unreaped (a zombie, as in a container without an init), while a
// child it started in the background lives on in the group. It returns the
// leader's stat and the child's pid.
func zombieGroup(t *testing.T) (procStat, int) {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	leader := exec.Command("/bin/sh", "-c", "sleep 600 & echo $! > "+shellQuote(pidfile)+"; exit 0")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	child := readPid(t, pidfile)
	t.Cleanup(func() {
		syscall.Kill(child, syscall.SIGKILL)
		leader.Wait()
	})
	var st procStat
	poll(t, "the leader to become a zombie", func() bool {
		var err error
		st, err = readProcStat(leader.Process.Pid)
		return err == nil && st.state == 'Z'
	})
	if cst, err := readProcStat(child); err != nil || cst.pgrp != st.pid {
		t.Fatalf("the child is not in the leader's group: %+v %v", cst, err)
	}
	return st, child
}

// TestZombieLeaderWithOtherStartTimeIsStale is issue 11's case: an
// ownership record names a pid whose process is now a zombie leading a
// group with a live child, but with other start ticks (the record is stale:
// the pid was reused). The record proves nothing, zombie or not: ai status
// must not claim ownership and ai stop must not touch the child.
func TestZombieLeaderWithOtherStartTimeIsStale(t *testing.T) {
	t.Parallel()
	leader, child := zombieGroup(t)
	f := newFixture(t)
	f.cfg.StopCommand = "touch " + shellQuote(filepath.Join(f.dir, "stop-ran"))
	s := f.supervisor()
	for _, mode := range []RunMode{ModeForeground, ModeBackground} {
		rec := ownerRecord{Version: recordVersion, BootID: bootID(), PID: leader.pid, PGID: leader.pid,
			StartTicks: leader.startTicks - 1, Command: "start-ai", Mode: mode, StartedAt: time.Now().UTC()}
		if err := s.writeRecord(rec); err != nil {
			t.Fatal(err)
		}
		if members := groupMembers(rec); len(members) != 0 {
			t.Errorf("%s: groupMembers of a stale record = %+v, want none", mode, members)
		}
		st := s.Status(t.Context())
		if st.Owned || !strings.Contains(st.Note, "start time differs") {
			t.Errorf("%s: Status owned=%v note=%q, want not owned: start time differs", mode, st.Owned, st.Note)
		}
		if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
			t.Errorf("%s: Stop = %v, want ErrNotOwned", mode, err)
		}
		if !alive(child) {
			t.Fatalf("%s: Stop killed a process Conveyor did not start", mode)
		}
	}
}

// TestZombieLeaderOfOursStillProvesTheGroup: the start command's own
// process, exited but not reaped yet, with the recorded start ticks, still
// proves the group is Conveyor's, and Stop ends the child left in it.
func TestZombieLeaderOfOursStillProvesTheGroup(t *testing.T) {
	t.Parallel()
	leader, child := zombieGroup(t)
	f := newFixture(t)
	s := f.supervisor()
	rec := ownerRecord{Version: recordVersion, BootID: bootID(), PID: leader.pid, PGID: leader.pid,
		StartTicks: leader.startTicks, Command: "start-ai", Mode: ModeForeground, StartedAt: time.Now().UTC()}
	if err := s.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(t.Context()); !st.Owned {
		t.Fatalf("Status: not owned (%q)", st.Note)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if alive(child) {
		t.Error("the child of Conveyor's start command survived Stop")
	}
}
