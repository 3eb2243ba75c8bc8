package localai

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStaleRecordsAreIgnored(t *testing.T) {
	t.Parallel()
	// A process that has exited: its pid is gone.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	// Someone else's process, alive.
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
	self, _ := readProcStat(os.Getpid())
	base := ownerRecord{Version: recordVersion, BootID: bootID(), Command: "start-ai", Mode: ModeForeground, StartedAt: time.Now().UTC()}

	tests := []struct {
		name string
		rec  ownerRecord
		raw  string
		why  string
	}{
		{name: "pid gone", rec: with(base, func(r *ownerRecord) { r.PID, r.PGID, r.StartTicks = gone.Process.Pid, gone.Process.Pid, 1 }), why: "is gone"},
		{name: "pid reused", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks = other.Process.Pid, other.Process.Pid, ost.startTicks-1
		}), why: "start time differs"},
		{name: "earlier boot", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.BootID = other.Process.Pid, other.Process.Pid, ost.startTicks, "another-boot"
		}), why: "booted"},
		{name: "background, owner gone", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.Mode = gone.Process.Pid, gone.Process.Pid, 1, ModeBackground
			r.OwnerPID, r.OwnerStartTicks = gone.Process.Pid, 1
		}), why: "Conveyor process that started it"},
		{name: "background, owner pid reused", rec: with(base, func(r *ownerRecord) {
			r.PID, r.PGID, r.StartTicks, r.Mode = gone.Process.Pid, gone.Process.Pid, 1, ModeBackground
			r.OwnerPID, r.OwnerStartTicks = os.Getpid(), self.startTicks+1
		}), why: "pid was reused"},
		{name: "corrupt", raw: "{not json"},
		{name: "wrong version", raw: `{"version": 99, "pid": 1, "pgid": 1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.cfg.StopCommand = "touch " + shellQuote(filepath.Join(f.dir, "stop-ran"))
			s := f.supervisor()
			path := filepath.Join(f.dir, OwnerFile)
			if tt.raw != "" {
				os.WriteFile(path, []byte(tt.raw), 0o600)
			} else if err := s.writeRecord(tt.rec); err != nil {
				t.Fatal(err)
			}
			st := s.Status(t.Context())
			if st.Owned || !strings.Contains(st.Note, tt.why) {
				t.Errorf("Status owned=%v note=%q, want a note containing %q", st.Owned, st.Note, tt.why)
			}
			if err := s.Stop(t.Context()); !errors.Is(err, ErrNotOwned) {
				t.Errorf("Stop = %v, want ErrNotOwned", err)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Error("stale record not removed")
			}
			if _, err := os.Stat(filepath.Join(f.dir, "stop-ran")); err == nil {
				t.Error("the stop command ran for a stale record")
			}
			if !alive(other.Process.Pid) {
				t.Fatal("someone else's process was signalled")
			}
		})
	}
}

func with(r ownerRecord, edit func(*ownerRecord)) ownerRecord {
	edit(&r)
	return r
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"version":1,"pid":10,"pgid":10,"start_ticks":5,"owner_pid":2,"owner_start_ticks":1,"command":"x","mode":"foreground","started_at":"2026-02-21T12:00:00Z"}`))
	f.Add([]byte(`{"version":1,"pid":-1}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec ownerRecord
		if err := decodeRecord(data, &rec); err == nil {
			if rec.PID <= 0 || rec.PGID <= 0 || rec.Version != recordVersion {
				t.Fatalf("accepted %+v", rec)
			}
		}
	})
}
