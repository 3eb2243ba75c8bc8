package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
)

// The running journal says which jobs a worker is running at this moment. It is
// a small file beside the store (path + ".running"), one 8-byte slot per running
// attempt holding the job's id, written through a shared memory mapping when a
// worker begins an attempt and zeroed when the attempt ends. Its writes cost a
// memory store, not a commit, yet they outlive the process: the page cache keeps
// them when the process dies (a panic in a goroutine, os.Exit, SIGKILL, the
// kernel's OOM killer), which are the deaths a poison pill causes. At the next
// Open the ids still in their slots are exactly the jobs that were running when
// the process died: they, and only they, get an orphan strike.
//
// The slots are not fsynced. After a power loss or a reboot they may be stale,
// so the header carries the kernel's boot id, and a journal written in another
// boot is ignored: a machine's death is no job's fault.
//
// The journal also holds the crash guard's gate. A job struck by a crash is a
// suspect: its next attempt runs alone (no other attempt of the store runs
// meanwhile, and it waits for those running to end), so that if it kills the
// process again the blame is certain, and the jobs that merely ran beside it at
// the first crash are never struck again for it.
const (
	journalMagic    = "CVJ1"
	journalHeader   = 64 // magic(4) pad(4) bootID(16) pad → slots start 8-aligned
	journalSlots    = 1 << 14
	journalFileSize = journalHeader + 8*journalSlots
)

type journal struct {
	f   *os.File
	mem []byte // the file's mapping (or, where mapping is not available, a copy written through)

	mu         sync.Mutex
	free       []int32 // free slot indexes, a stack
	shared     int     // attempts running that are not suspects
	exclusive  bool    // a suspect's attempt is running
	excWaiting int     // suspects waiting to run alone
	waiting    int     // begins waiting, suspects or not
	changed    chan struct{}
	full       bool // every slot was taken once; logged
}

// openJournal opens (creating) the journal beside the store, returns the ids it
// held from the previous process of this boot, and resets it.
func openJournal(path string) (*journal, []uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("running journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("running journal: %w", err)
	}
	var crashed []uint64
	if fi.Size() == journalFileSize {
		old := make([]byte, journalFileSize)
		if _, err := f.ReadAt(old, 0); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("running journal %s: %w", path, err)
		}
		crashed = journalIDs(old, bootID())
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("running journal: %w", err)
	}
	if err := f.Truncate(journalFileSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("running journal: %w", err)
	}
	mem, err := mapJournal(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("running journal %s: %w", path, err)
	}
	jn := &journal{f: f, mem: mem, changed: make(chan struct{})}
	copy(jn.mem, journalMagic)
	copy(jn.mem[8:24], bootID())
	jn.sync(0, journalHeader)
	jn.free = make([]int32, journalSlots)
	for i := range jn.free {
		jn.free[i] = int32(journalSlots - 1 - i)
	}
	return jn, crashed, nil
}

// journalIDs returns the ids in a journal's slots, or none when it was written
// in another boot (or is not a journal).
func journalIDs(b []byte, boot []byte) []uint64 {
	if !bytes.Equal(b[:4], []byte(journalMagic)) {
		return nil
	}
	if stored := b[8:24]; boot != nil && !bytes.Equal(stored, boot) {
		return nil
	}
	var ids []uint64
	for off := journalHeader; off+8 <= len(b); off += 8 {
		if id := binary.LittleEndian.Uint64(b[off:]); id != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// bootID returns the kernel's boot id (16 bytes), or nil where there is none.
func bootID() []byte {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil
	}
	var id [16]byte
	n := 0
	for _, c := range bytes.TrimSpace(b) {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			continue
		}
		if n/2 >= len(id) {
			return nil
		}
		id[n/2] |= v << (4 * (1 - n%2))
		n++
	}
	if n != 32 {
		return nil
	}
	return id[:]
}

// errJournalClosed is returned by begin once the store is closed.
var errJournalClosed = errors.New("queue: store closed")

// begin takes a slot for an attempt of job id and writes the id in it. A
// suspect waits until no other attempt runs and then runs alone; any other
// attempt waits while a suspect runs or waits to. It returns the slot (-1 when
// all are taken: the attempt then runs unjournaled).
func (jn *journal) begin(ctx context.Context, id uint64, suspect bool) (int32, error) {
	jn.mu.Lock()
	registered := false
	for {
		if jn.mem == nil {
			jn.unwait(suspect && registered)
			jn.mu.Unlock()
			return -1, errJournalClosed
		}
		if suspect {
			if !jn.exclusive && jn.shared == 0 {
				if registered {
					jn.excWaiting--
				}
				jn.exclusive = true
				break
			}
			if !registered {
				registered = true
				jn.excWaiting++
			}
		} else if !jn.exclusive && jn.excWaiting == 0 {
			jn.shared++
			break
		}
		ch := jn.changed
		jn.waiting++
		jn.mu.Unlock()
		select {
		case <-ch:
			jn.mu.Lock()
			jn.waiting--
		case <-ctx.Done():
			jn.mu.Lock()
			jn.waiting--
			jn.unwait(suspect && registered)
			jn.mu.Unlock()
			return -1, ctx.Err()
		}
	}
	slot := int32(-1)
	if n := len(jn.free); n > 0 {
		slot = jn.free[n-1]
		jn.free = jn.free[:n-1]
		jn.put(slot, id)
	} else if !jn.full {
		jn.full = true
	}
	jn.mu.Unlock()
	return slot, nil
}

// unwait withdraws a suspect's wait (mu held).
func (jn *journal) unwait(registered bool) {
	if registered {
		jn.excWaiting--
		if jn.excWaiting == 0 {
			jn.broadcast()
		}
	}
}

// end zeroes the attempt's slot and lets waiters in.
func (jn *journal) end(slot int32, suspect bool) {
	jn.mu.Lock()
	defer jn.mu.Unlock()
	if jn.mem != nil && slot >= 0 {
		jn.put(slot, 0)
		jn.free = append(jn.free, slot)
	}
	if suspect {
		jn.exclusive = false
		jn.broadcast()
		return
	}
	jn.shared--
	if jn.shared == 0 && jn.excWaiting > 0 {
		jn.broadcast()
	}
}

func (jn *journal) broadcast() {
	close(jn.changed)
	jn.changed = make(chan struct{})
}

func (jn *journal) put(slot int32, id uint64) {
	off := journalHeader + 8*int(slot)
	binary.LittleEndian.PutUint64(jn.mem[off:off+8], id)
	jn.sync(off, 8)
}

// close zeroes every slot when the store closes cleanly (attempts still running
// then were abandoned by a shutdown, not caught in a crash) and releases the
// file. Waiting begins return errJournalClosed.
func (jn *journal) close(clean bool) error {
	jn.mu.Lock()
	defer jn.mu.Unlock()
	if jn.mem == nil {
		return nil
	}
	if clean {
		clear(jn.mem[journalHeader:])
		jn.sync(journalHeader, len(jn.mem)-journalHeader)
	}
	err := unmapJournal(jn.mem)
	jn.mem = nil
	jn.broadcast()
	return errors.Join(err, jn.f.Close())
}
