// Package procstat reads figures about this process that the runtime does
// not give, for benchmarks: its peak resident set size and the CPU time
// it has used.
//
// It lives under internal/ because only Conveyor's own benchmarks use it.
package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// PeakRSS returns the process's peak resident set size in bytes (Linux's
// VmHWM), or 0 where /proc does not say.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				return 0
			}
			kb, _ := strconv.ParseInt(fields[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}
