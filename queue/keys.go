package queue

import (
	"encoding/binary"
	"slices"
	"time"
)

// Buckets of the store. Keys are big-endian so that cursor order is id (or time)
// order. See docs/state-machine.md for which state lives where.
var (
	bucketMeta      = []byte("meta")      // "format" → format byte
	bucketJobs      = []byte("jobs")      // id → record
	bucketQueues    = []byte("queues")    // name → queue id(2) paused(1)
	bucketReady     = []byte("ready")     // nested: queue id(2) → { id → readyVal }
	bucketRunning   = []byte("running")   // id → runningVal
	bucketScheduled = []byte("scheduled") // runAt(8) id(8) → queue id(2)
	bucketRetry     = []byte("retry")     // runAt(8) id(8) → queue id(2)
	bucketDone      = []byte("done")      // id → doneVal
	bucketDead      = []byte("dead")      // id → deadVal
	bucketDoneAt    = []byte("doneat")    // finished(8) seq(8) → (id(8) qid(2))*: done jobs by finish time, a commit's per key (finished.go)
	bucketDeadAt    = []byte("deadat")    // died(8) seq(8) → (id(8) qid(2))*: dead jobs by death time, likewise
	bucketUnique    = []byte("unique")    // key → id(8) until(8) finished(1)
	bucketUniqueExp = []byte("uexp")      // until(8) key → nil: held keys of finished jobs, by expiry
	bucketCounts    = []byte("counts")    // queue id(2) state(1) → count(8)
	bucketStats     = []byte("stats")     // unix minute(8) → processed(8) failed(8)

	keyFormat = []byte("format")
)

// storeFormat is the layout of the buckets. Format 1 had no finish-time
// indexes (doneat, deadat); format 2 had one key per finished job in them,
// format 3 one per commit, and checksums every job record (record format 2).
// Open migrates older formats (migrate.go).
const storeFormat = 3

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func getI64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

func qidKey(qid uint16) []byte {
	return []byte{byte(qid >> 8), byte(qid)}
}

func getQid(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// timeKey is the key of the scheduled and retry indexes: due time then id.
func timeKey(at time.Time, id uint64) []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(unixNano(at)))
	binary.BigEndian.PutUint64(b[8:], id)
	return b[:]
}

func splitTimeKey(k []byte) (time.Time, uint64) {
	return fromNano(getI64(k[:8])), getU64(k[8:16])
}

// readyVal: since(8) flags(1). since is when the job became ready.
type readyVal struct {
	since   int64
	suspect bool
}

func (v readyVal) bytes() []byte {
	b := make([]byte, 9)
	binary.BigEndian.PutUint64(b, uint64(v.since))
	if v.suspect {
		b[8] = 1
	}
	return b
}

func parseReady(b []byte) readyVal {
	if len(b) < 9 {
		return readyVal{}
	}
	return readyVal{since: getI64(b), suspect: b[8]&1 != 0}
}

// runningVal: qid(2) flags(1) attempt(4) claimed(8) lease(8). The lease is
// not stored any more (0; an attempt's lease lives with its process, see
// Consumer.Begin); the field keeps the layout. Flags: bit 1 the
// job is a suspect of a crash (it runs alone; see journal.go), bit 2 its record
// holds a unique key. Bit 0 meant "start recorded" in format 1 and is ignored.
type runningVal struct {
	qid     uint16
	suspect bool
	unique  bool
	attempt int
	claimed int64
	lease   int64
}

const runningValLen = 23

func (v runningVal) bytes() []byte {
	b := make([]byte, runningValLen)
	binary.BigEndian.PutUint16(b, v.qid)
	if v.suspect {
		b[2] |= 2
	}
	if v.unique {
		b[2] |= 4
	}
	binary.BigEndian.PutUint32(b[3:], uint32(v.attempt))
	binary.BigEndian.PutUint64(b[7:], uint64(v.claimed))
	binary.BigEndian.PutUint64(b[15:], uint64(v.lease))
	return b
}

func parseRunning(b []byte) (runningVal, bool) {
	if len(b) != runningValLen {
		return runningVal{}, false
	}
	return runningVal{
		qid:     getQid(b),
		suspect: b[2]&2 != 0,
		unique:  b[2]&4 != 0,
		attempt: int(binary.BigEndian.Uint32(b[3:])),
		claimed: getI64(b[7:]),
		lease:   getI64(b[15:]),
	}, true
}

// doneVal: qid(2) attempt(4) started(8) finished(8).
type doneVal struct {
	qid      uint16
	attempt  int
	started  int64
	finished int64
}

const doneValLen = 22

func (v doneVal) bytes() []byte {
	b := make([]byte, doneValLen)
	binary.BigEndian.PutUint16(b, v.qid)
	binary.BigEndian.PutUint32(b[2:], uint32(v.attempt))
	binary.BigEndian.PutUint64(b[6:], uint64(v.started))
	binary.BigEndian.PutUint64(b[14:], uint64(v.finished))
	return b
}

func parseDone(b []byte) (doneVal, bool) {
	if len(b) != doneValLen {
		return doneVal{}, false
	}
	return doneVal{
		qid:      getQid(b),
		attempt:  int(binary.BigEndian.Uint32(b[2:])),
		started:  getI64(b[6:]),
		finished: getI64(b[14:]),
	}, true
}

// deadVal: qid(2) at(8).
func deadBytes(qid uint16, at int64) []byte {
	b := make([]byte, 10)
	binary.BigEndian.PutUint16(b, qid)
	binary.BigEndian.PutUint64(b[2:], uint64(at))
	return b
}

func parseDead(b []byte) (qid uint16, at int64, ok bool) {
	if len(b) != 10 {
		return 0, 0, false
	}
	return getQid(b), getI64(b[2:]), true
}

// uniqueVal: id(8) until(8) flags(1): bit 0 the holder finished, bit 1 it
// finished dead (so a duplicate can say how, even after retention removed it).
type uniqueVal struct {
	id       uint64
	until    int64
	finished bool
	dead     bool
}

func (v uniqueVal) bytes() []byte {
	b := make([]byte, 17)
	binary.BigEndian.PutUint64(b, v.id)
	binary.BigEndian.PutUint64(b[8:], uint64(v.until))
	if v.finished {
		b[16] |= 1
	}
	if v.dead {
		b[16] |= 2
	}
	return b
}

func parseUnique(b []byte) (uniqueVal, bool) {
	if len(b) != 17 {
		return uniqueVal{}, false
	}
	return uniqueVal{id: getU64(b), until: getI64(b[8:]), finished: b[16]&1 != 0, dead: b[16]&2 != 0}, true
}

func countKey(qid uint16, st State) []byte {
	return []byte{byte(qid >> 8), byte(qid), byte(st)}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
