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

func TestCPUTime(t *testing.T) {
	before := CPUTime()
	x := 0
	for i := range 50_000_000 { // some work for the clock to see
		x += i % 7
	}
	if after := CPUTime(); after <= before || x < 0 {
		t.Fatalf("CPUTime went from %v to %v across a busy loop", before, after)
	}
}
