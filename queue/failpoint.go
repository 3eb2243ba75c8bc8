//go:build failpoints

// See failpoint_names.go: the failpoints, and how a process is told to die at one.

package queue

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
)

var (
	failpointHook atomic.Pointer[func(s *Store, name string)]
	exitAt        = os.Getenv("CONVEYOR_FAILPOINT")
	exitSkip      atomic.Int64
)

func init() {
	if n, err := strconv.ParseInt(os.Getenv("CONVEYOR_FAILPOINT_SKIP"), 10, 64); err == nil {
		exitSkip.Store(n)
	}
}

// SetFailpoint makes fn run at every failpoint any store passes (nil: none).
func SetFailpoint(fn func(s *Store, name string)) {
	if fn == nil {
		failpointHook.Store(nil)
		return
	}
	failpointHook.Store(&fn)
}

func (s *Store) failpoint(name string) {
	if name == exitAt && exitSkip.Add(-1) < 0 {
		fmt.Fprintf(os.Stderr, "queue: failpoint %s: exiting\n", name)
		os.Exit(FailpointExitCode)
	}
	if f := failpointHook.Load(); f != nil {
		(*f)(s, name)
	}
}

// failpointNoSync reports whether the environment turns the store's fsyncs
// off (EnvFailpointNoSync).
func failpointNoSync() bool { return os.Getenv(EnvFailpointNoSync) == "1" }
