//go:build unix

package queue

import (
	"os"
	"syscall"
)

// mapJournal maps the journal file shared: a store into the mapping is in the
// page cache at once, and survives the process.
func mapJournal(f *os.File) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, journalFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

func unmapJournal(b []byte) error { return syscall.Munmap(b) }

// sync has nothing to do: the mapping is the file.
func (jn *journal) sync(off, n int) {}
