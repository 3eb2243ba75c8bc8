package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/benbjohnson/litestream"

	"conveyor/internal/durable"
)

// replicaFilesDir is the directory, inside a file replica, that holds the
// extra files of PutReplicaFile. litestream itself only uses ltx/ there.
const replicaFilesDir = "snapshots"

// PutReplicaFile stores r as file name beside the replica at replicaURL (a
// snapshot of the bbolt queue, for instance), replacing any previous file of
// that name atomically: it is written to a temporary name, fsynced and
// renamed. Only file:// replicas hold extra files; others return
// ErrUnsupportedReplica. name is a plain file name (no separators, not
// starting with a dot).
func PutReplicaFile(ctx context.Context, replicaURL, name string, r io.Reader) error {
	dir, err := replicaFileDir(replicaURL, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	done = true
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("data: put replica file %s: %w", name, err)
	}
	return nil
}

// GetReplicaFile copies file name stored beside the replica at replicaURL
// to w. It returns ErrNotFound when there is no such file and
// ErrUnsupportedReplica for replicas that are not file://.
func GetReplicaFile(ctx context.Context, replicaURL, name string, w io.Writer) error {
	dir, err := replicaFileDir(replicaURL, name)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data: replica file %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("data: get replica file %s: %w", name, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("data: get replica file %s: %w", name, err)
	}
	return nil
}

func replicaFileDir(replicaURL, name string) (string, error) {
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "/\\\x00") || strings.HasPrefix(name, ".") {
		return "", &FieldError{Field: "name", Reason: "must be a plain file name of at most 200 bytes, not starting with a dot"}
	}
	scheme, err := checkReplicaURL(replicaURL)
	if err != nil {
		return "", err
	}
	if scheme != "file" {
		return "", fmt.Errorf("%w: %q replicas hold no extra files", ErrUnsupportedReplica, scheme)
	}
	_, _, p, _ := litestream.ParseReplicaURL(replicaURL)
	return filepath.Join(filepath.FromSlash(p), replicaFilesDir), nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SyncDir fsyncs directory dir, so that a file created, renamed or removed
// in it survives a power loss. It is the one copy every part that writes
// files atomically (replica files, the local-AI ownership record, restore)
// uses after its rename.
func SyncDir(dir string) error { return durable.SyncDir(dir) }

// FileReplicaURL is the file:// replica URL of directory dir (made absolute
// against the working directory). Directories whose path litestream would
// read back as another one (with %, spaces, ? or #) are refused.
func FileReplicaURL(dir string) (string, error) {
	abs, err := expandPath(dir)
	if err != nil {
		return "", &FieldError{Field: "replica directory", Reason: err.Error()}
	}
	u, err := fileURL(abs)
	if err != nil {
		return "", &FieldError{Field: "replica directory", Reason: err.Error()}
	}
	return u, nil
}

// ReplicaSnapshotDir is the directory of a file replica that holds the files
// PutReplicaFile stores, or "" for other replicas.
func ReplicaSnapshotDir(replicaURL string) string {
	dir, err := replicaFileDir(replicaURL, "x")
	if err != nil {
		return ""
	}
	return dir
}

// RedactReplicaURL is a replica URL fit for logs and messages: without
// credentials and without the query (which may carry keys).
func RedactReplicaURL(replicaURL string) string { return redactURL(replicaURL) }
