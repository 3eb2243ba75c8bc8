package localai

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReleaseStopsOnlyWhatThisProcessStarted: serve's shutdown (Release)
// stops services this process started, and leaves alone services another
// Conveyor process started (an earlier serve, `conveyor ai start`), which
// `conveyor ai stop` (Stop) may still stop.
func TestReleaseStopsOnlyWhatThisProcessStarted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cfg.StartCommand = helperCmd(t, "exec ", "-addr", f.addr())
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := s.Status(t.Context())
	if !st.Owned || st.OwnerPID != os.Getpid() {
		t.Fatalf("Status = %+v", st)
	}

	// Another Conveyor process, alive, is named as the owner.
	other := exec.Command("sleep", "600")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		other.Process.Kill()
		other.Wait()
	})
	ost, err := readProcStat(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := readRecord(filepath.Join(f.dir, OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	mine := rec
	rec.OwnerPID, rec.OwnerStartTicks = other.Process.Pid, ost.startTicks
	if err := s.writeRecord(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(t.Context()); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "not this one") {
		t.Fatalf("Release of another process's services = %v, want ErrNotOwned", err)
	}
	if !alive(st.PID) {
		t.Fatal("Release stopped services another process started")
	}

	if err := s.writeRecord(mine); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if alive(st.PID) {
		t.Error("service still running after Release")
	}
	if err := s.Release(t.Context()); !errors.Is(err, ErrNotOwned) {
		t.Errorf("second Release = %v, want ErrNotOwned", err)
	}
}
