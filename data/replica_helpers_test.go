package data

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestFileReplicaURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	u, err := FileReplicaURL(filepath.Join(dir, "replica"))
	if err != nil || u != "file://"+filepath.ToSlash(filepath.Join(dir, "replica")) {
		t.Fatalf("%q %v", u, err)
	}
	if got := ReplicaSnapshotDir(u); got != filepath.Join(dir, "replica", "snapshots") {
		t.Errorf("snapshot dir %q", got)
	}
	if got := ReplicaSnapshotDir("s3://bucket/prefix"); got != "" {
		t.Errorf("s3 snapshot dir %q", got)
	}
	if _, err := FileReplicaURL(filepath.Join(dir, "with space")); !errors.Is(err, ErrInvalid) {
		t.Errorf("a path litestream misreads: %v", err)
	}
	if got := RedactReplicaURL("s3://key:secret@bucket/p?secret=1"); got != "s3://bucket/p" {
		t.Errorf("redacted %q", got)
	}
}
