//go:build failpoints

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"conveyor/internal/lossyfs"
	"conveyor/queue"
)

// TestPowerLossCatchesSkippedSyncs shows that the power-loss test has teeth:
// the same run, with the store opened without fsync (a test build's
// CONVEYOR_FAILPOINT_NOSYNC) and every unsynced block lost at the cuts, must
// find acknowledged enqueues missing. A SIGKILL alone keeps the page cache,
// so the kill loop would pass.
func TestPowerLossCatchesSkippedSyncs(t *testing.T) {
	t.Parallel()
	fsys := lossyfs.MountT(t)
	// A first run with fsync makes the store (and syncs it), so that what
	// is lost is the acknowledged jobs, not the whole store.
	srv := startServer(t, filepath.Join(fsys.Dir, "data"), "--schedule", emptySchedule(t), "--replica", "off")
	if err, _ := srv.terminate(); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken, queue.EnvFailpointNoSync+"=1")
	_, problem := powerLoss(t, fsys, env, 3, 0)
	if !strings.Contains(problem, "acknowledged job") || !strings.Contains(problem, "is lost") {
		t.Fatalf("the power-loss test did not find the acknowledged jobs a store without fsync lost (found %q)", problem)
	}
	t.Logf("as it should, the power-loss test caught the store without fsync: %s", problem)
}
