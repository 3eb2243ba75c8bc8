package localai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"conveyor/data"
)

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

// prove checks rec against /proc. A process holding the recorded pid with
// another start time, alive or a zombie, makes the record stale. Ownership
// holds when the start command's process still runs with the recorded start
// time; or, when it has exited (gone, or a zombie not reaped yet), while
// processes of its process group remain (the kernel does not reuse a
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
	case err == nil && leader.startTicks != rec.StartTicks:
		// Alive or a zombie, another process holds the pid: the record is
		// stale, and so is the group id it names.
		why = fmt.Sprintf("pid %d now belongs to another process (start time differs)", rec.PID)
	case err == nil && leader.alive():
		return proofProcess, ""
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
	raw, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	return rec, decodeRecord(raw, &rec)
}

func decodeRecord(raw []byte, rec *ownerRecord) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
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
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dataDir, ".local_ai.owner-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
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
	return data.SyncDir(s.dataDir)
}

func (s *Supervisor) removeRecord() {
	if err := os.Remove(s.path(OwnerFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Error("remove ownership record", "err", err)
		return
	}
	data.SyncDir(s.dataDir)
}
