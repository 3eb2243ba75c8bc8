//go:build failpoints

package main

import (
	"os"
	"testing"

	"conveyor/queue"
)

// TestPowerLossCatchesSkippedSyncs shows that the power-loss test has teeth:
// the same run, with the store opened without fsync (a test build's
// CONVEYOR_FAILPOINT_NOSYNC) and every unsynced block lost at the cuts, must
// find an acknowledged enqueue missing (or a file that does not check, or a
// store that does not open). A SIGKILL alone keeps the page cache, so the
// kill loop would pass.
func TestPowerLossCatchesSkippedSyncs(t *testing.T) {
	t.Parallel()
	fsys := mountLossy(t)
	env := append(os.Environ(), beMainEnv+"=1", "CONVEYOR_TOKEN="+testToken, queue.EnvFailpointNoSync+"=1")
	_, problem := powerLoss(t, fsys, env, 3, 0)
	if problem == "" {
		t.Fatal("the power-loss test found nothing wrong with a store that skips its fsyncs")
	}
	t.Logf("as it should, the power-loss test caught the store without fsync: %s", problem)
}
