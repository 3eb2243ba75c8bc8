package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// TestBenchHTTPPhaseInItsOwnProcess runs bench's HTTP phase as an operator
// does (the binary, here the test binary acting as conveyor): the load
// generator is a process of its own, every job it sent was answered 201,
// and both processes' CPU is reported.
func TestBenchHTTPPhaseInItsOwnProcess(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(deadline(t), self, "bench", "--phases", "http", "--http-n", "400", "--http-clients", "4",
		"--json", "--dir", t.TempDir())
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
}
