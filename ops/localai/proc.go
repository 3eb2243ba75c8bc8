package localai

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

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
// no earlier than the start command. When a process holds the start
// command's pid with another start time, alive or a zombie, the pid (and so
// the group id) was reused: nothing in that group is ours.
func groupMembers(rec ownerRecord) []procStat {
	if rec.PGID <= 0 {
		return nil
	}
	if leader, err := readProcStat(rec.PGID); err == nil && leader.startTicks != rec.StartTicks {
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
