package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// makePrivate creates the database file at path with mode 0600 when it does
// not exist yet, and takes every group and other permission away from it
// and from its -wal and -shm files when they do. SQLite creates -wal and
// -shm with the database file's mode, and litestream its LTX files (in the
// file replica too) with it: the failure table's args, messages and
// backtraces are readable by no one else.
func makePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return f.Close()
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("data: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&^0o077); err != nil {
				return fmt.Errorf("data: make %s private: %w", p, err)
			}
		}
	}
	return nil
}
