//go:build !unix

package queue

import "os"

// Without a shared mapping the journal keeps a copy in memory and writes each
// change through to the file (a system call per change instead of a store).
func mapJournal(f *os.File) ([]byte, error) { return make([]byte, journalFileSize), nil }

func unmapJournal([]byte) error { return nil }

func (jn *journal) sync(off, n int) { jn.f.WriteAt(jn.mem[off:off+n], int64(off)) }
