package procstat

import (
	"os"
	"testing"
)

func TestPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	// A process of this size has a peak resident set of at least a MiB.
	if n := PeakRSS(); n < 1<<20 {
		t.Fatalf("PeakRSS() = %d bytes", n)
	}
}
