package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The job record is a compact binary envelope around the opaque JSON args. It is
// stored forever, so its layout is versioned by its first byte.
//
// Layout of format 1 (uvarint lengths and counts, varint times in unix nanoseconds,
// 0 for a zero time):
//
//	format(1) class queue attempt maxAttempts orphans created runAt started finished
//	uniqueKey uniqueUntil nctx (key value)* nerr (attempt at class message backtrace)* args
//
// State, lease and the running attempt live in the index entries, not here: the
// record is written on enqueue and rewritten only when it must remember something
// new (an error, a death, an orphaning), which keeps claim and ack cheap.
//
// Format 2 is format 1 followed by a CRC-32C (Castagnoli, big-endian) of
// everything before it, so that a bit flip anywhere — inside the args too,
// where the layout cannot see it — is caught when the record is read. Records
// are written in format 2; store format 3 rewrote the older ones (migrate.go).
const (
	recordFormat1 = 1
	recordFormat2 = 2
	recordSumLen  = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptRecord is returned when a stored job record cannot be decoded.
var ErrCorruptRecord = errors.New("queue: corrupt job record")

// Bounds that keep a corrupt or hostile record from making the decoder allocate
// without limit.
const (
	maxRecordStrings = 1 << 20 // longest class, queue, key or message field
	maxRecordCtx     = 1024
)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) time(t time.Time) { e.varint(unixNano(t)) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

// encodeRecord appends the record of j to dst (nil: a new buffer of the right
// size, so that encoding allocates once).
func encodeRecord(dst []byte, j *Job) []byte {
	if dst == nil {
		n := 64 + len(j.Class) + len(j.Queue) + len(j.UniqueKey) + len(j.Args)
		for k, v := range j.Context {
			n += len(k) + len(v) + 4
		}
		for _, ae := range j.Errors {
			n += len(ae.Class) + len(ae.Message) + len(ae.Backtrace) + 24
		}
		dst = make([]byte, 0, n)
	}
	start := len(dst)
	e := encoder{b: dst}
	e.b = append(e.b, recordFormat2)
	e.str(j.Class)
	e.str(j.Queue)
	e.uvarint(uint64(j.Attempt))
	e.uvarint(uint64(j.MaxAttempts))
	e.uvarint(uint64(j.Orphans))
	e.time(j.CreatedAt)
	e.time(j.RunAt)
	e.time(j.StartedAt)
	e.time(j.FinishedAt)
	e.str(j.UniqueKey)
	e.time(j.UniqueUntil)
	e.uvarint(uint64(len(j.Context)))
	for _, k := range sortedKeys(j.Context) {
		e.str(k)
		e.str(j.Context[k])
	}
	e.uvarint(uint64(len(j.Errors)))
	for _, ae := range j.Errors {
		e.uvarint(uint64(ae.Attempt))
		e.time(ae.At)
		e.str(ae.Class)
		e.str(ae.Message)
		e.str(ae.Backtrace)
	}
	e.bytes(j.Args)
	return binary.BigEndian.AppendUint32(e.b, crc32.Checksum(e.b[start:], castagnoli))
}

// recordBody checks a record's format (and checksum) and returns what its
// fields are decoded from.
func recordBody(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCorruptRecord)
	}
	switch b[0] {
	case recordFormat1:
		return b[1:], nil
	case recordFormat2:
		if len(b) < 1+recordSumLen {
			return nil, fmt.Errorf("%w: too short", ErrCorruptRecord)
		}
		n := len(b) - recordSumLen
		if binary.BigEndian.Uint32(b[n:]) != crc32.Checksum(b[:n], castagnoli) {
			return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptRecord)
		}
		return b[1:n], nil
	}
	return nil, fmt.Errorf("%w: unknown format %d", ErrCorruptRecord, b[0])
}

// checksummed returns a record of format 1 in format 2 (the same fields and
// a checksum); a record of format 2 as it is.
func checksummed(b []byte) []byte {
	if len(b) == 0 || b[0] != recordFormat1 {
		return b
	}
	out := make([]byte, 0, len(b)+recordSumLen)
	out = append(append(out, recordFormat2), b[1:]...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorruptRecord, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int(what string, max uint64) int {
	v := d.uvarint(what)
	if v > max {
		d.fail(what)
		return 0
	}
	return int(v)
}

func (d *decoder) time(what string) time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return time.Time{}
	}
	d.b = d.b[n:]
	return fromNano(v)
}

func (d *decoder) raw(what string, max uint64) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > max || n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str(what string) string { return string(d.raw(what, maxRecordStrings)) }

// recordUniqueKey reads only as far as the record's unique key: the args and
// errors after it are neither decoded nor copied.
func recordUniqueKey(b []byte) (string, error) {
	body, err := recordBody(b)
	if err != nil {
		return "", err
	}
	d := decoder{b: body}
	d.raw("class", maxRecordStrings)
	d.raw("queue", maxRecordStrings)
	for _, what := range []string{"attempt", "max_attempts", "orphans"} {
		d.uvarint(what)
	}
	for _, what := range []string{"created_at", "run_at", "started_at", "finished_at"} {
		d.time(what)
	}
	key := d.str("unique_key")
	return key, d.err
}

// decodeRecord decodes a record into a new Job with the given id. The job owns all
// its memory: nothing refers to b afterwards (b may be bbolt's mmap).
func decodeRecord(id uint64, b []byte) (*Job, error) {
	body, err := recordBody(b)
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	j := &Job{ID: id}
	j.Class = d.str("class")
	j.Queue = d.str("queue")
	j.Attempt = d.int("attempt", 1<<31)
	j.MaxAttempts = d.int("max_attempts", 1<<31)
	j.Orphans = d.int("orphans", 1<<31)
	j.CreatedAt = d.time("created_at")
	j.RunAt = d.time("run_at")
	j.StartedAt = d.time("started_at")
	j.FinishedAt = d.time("finished_at")
	j.UniqueKey = d.str("unique_key")
	j.UniqueUntil = d.time("unique_until")
	if n := d.int("context count", maxRecordCtx); n > 0 {
		j.Context = make(map[string]string, n)
		for range n {
			k := d.str("context key")
			j.Context[k] = d.str("context value")
		}
	}
	if n := d.int("error count", MaxErrors); n > 0 {
		j.Errors = make([]AttemptError, n)
		for i := range j.Errors {
			ae := &j.Errors[i]
			ae.Attempt = d.int("error attempt", 1<<31)
			ae.At = d.time("error time")
			ae.Class = d.str("error class")
			ae.Message = d.str("error message")
			ae.Backtrace = d.str("error backtrace")
		}
	}
	if args := d.raw("args", 1<<40); d.err == nil && len(args) > 0 {
		j.Args = append([]byte(nil), args...)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return j, nil
}
