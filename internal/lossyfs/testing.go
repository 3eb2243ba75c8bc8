package lossyfs

import (
	"errors"
	"testing"
)

// MountT mounts a lossy filesystem in a new temporary directory for a test
// and unmounts it after everything else the test set up. Where the machine
// cannot mount it the test skips, saying exactly what is missing: it never
// passes without having run.
func MountT(t testing.TB) *FS {
	t.Helper()
	f, err := Mount(t.TempDir())
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("%s did not run: it needs a lossy FUSE filesystem: %v", t.Name(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}
