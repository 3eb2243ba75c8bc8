package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchHTTPPhaseInItsOwnProcess runs bench's HTTP phase as an operator
// does (the binary, here the test binary acting as conveyor): the load
// generator is a process of its own, every job it sent was answered 201,
// both processes' CPU is reported, and each wrote its CPU profile.
func TestBenchHTTPPhaseInItsOwnProcess(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	cmd := exec.CommandContext(deadline(t), self, "bench", "--phases", "http", "--http-n", "400", "--http-clients", "4",
		"--json", "--dir", t.TempDir(), "--cpuprofile", prof)
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bench output %q: %v", out, err)
	}
	if res.HTTPEnqueuePerS <= 0 || res.HTTPServerCPUus <= 0 || res.HTTPLoadCPUus <= 0 {
		t.Errorf("bench result %+v: want a rate and both processes' CPU", res)
	}
	for _, f := range []string{prof, prof + ".load"} {
		// A CPU profile is gzipped protobuf.
		if b, err := os.ReadFile(f); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("profile %s: %v, %d bytes, want a gzipped profile", filepath.Base(f), err, len(b))
		}
	}
}
