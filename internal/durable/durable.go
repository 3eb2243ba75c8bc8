// Package durable writes small files so that a crash or a power cut leaves
// either the old file or the whole new one, never an empty or half-written
// one: the data is written to a temporary file beside it and synced, renamed
// over the old one, and the directory is synced.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile writes b to path (mode perm) through a temporary file, an fsync
// and a rename, then fsyncs the directory. On error the temporary file is
// removed and path is as it was.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the names created or renamed in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
