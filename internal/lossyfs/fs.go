package lossyfs

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// blockSize is the unit a power cut keeps or loses: a disk writes whole
// sectors, and a page cache whole pages.
const blockSize = 4096

// lossy is the state the whole filesystem shares: every file, and the fault
// switched on. One mutex guards it all: the tests it serves are small.
type lossy struct {
	mu       sync.Mutex
	files    map[*file]bool
	failSync bool
	syncs    int // file syncs answered, for the reports
	failed   int // syncs failed on purpose
}

// file is a regular file: what the processes see (blocks, size) and what
// survives a power cut (durable, dsize). dirty lists the blocks written, or
// cut by a truncation, since the last sync.
type file struct {
	fs.Inode
	root *lossy

	mode    uint32
	mtime   time.Time
	size    int64
	blocks  map[int64][]byte // a missing block reads as zeros
	dsize   int64
	durable map[int64][]byte
	dirty   map[int64]bool
}

// dir is a directory. Names are durable at once (see doc.go): only file
// data waits for a sync.
type dir struct {
	fs.Inode
	root *lossy
	mode uint32
}

var (
	_ fs.NodeCreater   = (*dir)(nil)
	_ fs.NodeMkdirer   = (*dir)(nil)
	_ fs.NodeUnlinker  = (*dir)(nil)
	_ fs.NodeRmdirer   = (*dir)(nil)
	_ fs.NodeRenamer   = (*dir)(nil)
	_ fs.NodeGetattrer = (*dir)(nil)
	_ fs.NodeSetattrer = (*dir)(nil)
	_ fs.NodeFsyncer   = (*dir)(nil)
	_ fs.NodeStatfser  = (*dir)(nil)

	_ fs.NodeOpener    = (*file)(nil)
	_ fs.NodeReader    = (*file)(nil)
	_ fs.NodeWriter    = (*file)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeSetattrer = (*file)(nil)
	_ fs.NodeFsyncer   = (*file)(nil)
	_ fs.NodeFlusher   = (*file)(nil)
	_ fs.NodeAllocater = (*file)(nil)
)

func newRoot() (*dir, *lossy) {
	l := &lossy{files: map[*file]bool{}}
	return &dir{root: l, mode: 0o755}, l
}

// Statfs reports a large, empty filesystem.
func (d *dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

func statfs(out *fuse.StatfsOut) {
	out.Bsize = blockSize
	out.Frsize = blockSize
	out.Blocks = 1 << 24
	out.Bfree = 1 << 24
	out.Bavail = 1 << 24
	out.Files = 1 << 20
	out.Ffree = 1 << 20
	out.NameLen = 255
}

func (d *dir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.root.mu.Lock()
	out.Mode = fuse.S_IFDIR | d.mode
	d.root.mu.Unlock()
	out.Nlink = 2
	return 0
}

func (d *dir) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	d.root.mu.Lock()
	if m, ok := in.GetMode(); ok {
		d.mode = m & 0o7777
	}
	out.Mode = fuse.S_IFDIR | d.mode
	d.root.mu.Unlock()
	out.Nlink = 2
	return 0
}

// Fsync of a directory has nothing to do: names are durable at once.
func (d *dir) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno { return 0 }

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	nd := &dir{root: d.root, mode: mode & 0o7777}
	out.Mode = fuse.S_IFDIR | nd.mode
	out.Nlink = 2
	return d.NewPersistentInode(ctx, nd, fs.StableAttr{Mode: fuse.S_IFDIR}), 0
}

func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if old := d.GetChild(name); old != nil {
		// O_CREAT without O_EXCL on a name the kernel had not looked up yet.
		if f, ok := old.Operations().(*file); ok {
			f.attr(&out.Attr)
			return old, nil, 0, 0
		}
		return nil, nil, 0, syscall.EISDIR
	}
	f := &file{root: d.root, mode: mode & 0o7777, mtime: time.Now(),
		blocks: map[int64][]byte{}, durable: map[int64][]byte{}, dirty: map[int64]bool{}}
	d.root.mu.Lock()
	d.root.files[f] = true
	d.root.mu.Unlock()
	f.attr(&out.Attr)
	return d.NewPersistentInode(ctx, f, fs.StableAttr{Mode: fuse.S_IFREG}), nil, 0, 0
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if ch := d.GetChild(name); ch != nil {
		if f, ok := ch.Operations().(*file); ok {
			d.root.mu.Lock()
			delete(d.root.files, f)
			d.root.mu.Unlock()
		}
	}
	return 0
}

func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if ch := d.GetChild(name); ch != nil && len(ch.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

// Rename replaces what newName named; the bridge moves the inode.
func (d *dir) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if old := newParent.EmbeddedInode().GetChild(newName); old != nil {
		if f, ok := old.Operations().(*file); ok {
			d.root.mu.Lock()
			delete(d.root.files, f)
			d.root.mu.Unlock()
		}
	}
	return 0
}

func (f *file) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	statfs(out)
	return 0
}

// attr fills a's fields; the caller holds no lock.
func (f *file) attr(a *fuse.Attr) {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	f.attrLocked(a)
}

func (f *file) attrLocked(a *fuse.Attr) {
	a.Mode = fuse.S_IFREG | f.mode
	a.Size = uint64(f.size)
	a.Blocks = uint64(len(f.blocks)) * blockSize / 512
	a.Blksize = blockSize
	a.Nlink = 1
	a.SetTimes(nil, &f.mtime, &f.mtime)
}

// Open hands out no handle: reads and writes go to the node. The kernel
// keeps no cache across opens (no FOPEN_KEEP_CACHE), and gets no
// passthrough descriptor, so every write reaches this server.
func (f *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, 0
}

func (f *file) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (f *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

func (f *file) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	if m, ok := in.GetMode(); ok {
		f.mode = m & 0o7777
	}
	if sz, ok := in.GetSize(); ok {
		f.truncate(int64(sz))
	}
	if mt, ok := in.GetMTime(); ok {
		f.mtime = mt
	}
	f.attrLocked(&out.Attr)
	return 0
}

// truncate sets the size; blocks cut off are dirty (a cut, like a write,
// is lost if no sync follows).
func (f *file) truncate(n int64) {
	if n < f.size {
		last := n / blockSize
		for b := range f.blocks {
			if b > last || (b == last && n%blockSize == 0) {
				delete(f.blocks, b)
				f.dirty[b] = true
			}
		}
		if blk := f.blocks[last]; blk != nil && n%blockSize != 0 {
			clear(blk[n%blockSize:])
			f.dirty[last] = true
		}
	}
	f.size = n
	f.mtime = time.Now()
}

func (f *file) Allocate(ctx context.Context, fh fs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE
	if mode&keepSize == 0 && int64(off+size) > f.size {
		f.size = int64(off + size)
	}
	return 0
}

func (f *file) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	for done := 0; done < len(data); {
		pos := off + int64(done)
		b, in := pos/blockSize, int(pos%blockSize)
		blk := f.blocks[b]
		if blk == nil {
			blk = make([]byte, blockSize)
			f.blocks[b] = blk
		}
		done += copy(blk[in:], data[done:])
		f.dirty[b] = true
	}
	f.size = max(f.size, off+int64(len(data)))
	f.mtime = time.Now()
	return uint32(len(data)), 0
}

func (f *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	end := min(off+int64(len(dest)), f.size)
	if off >= end {
		return fuse.ReadResultData(nil), 0
	}
	out := dest[:end-off]
	for done := 0; done < len(out); {
		pos := off + int64(done)
		b, in := pos/blockSize, int(pos%blockSize)
		n := min(blockSize-in, len(out)-done)
		if blk := f.blocks[b]; blk != nil {
			copy(out[done:done+n], blk[in:])
		} else {
			clear(out[done : done+n])
		}
		done += n
	}
	return fuse.ReadResultData(out), 0
}

// Fsync makes the file's data durable, or fails with EIO when told to.
// fdatasync arrives here too (flags bit 0).
func (f *file) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	f.root.mu.Lock()
	defer f.root.mu.Unlock()
	if f.root.failSync {
		f.root.failed++
		return syscall.EIO
	}
	f.root.syncs++
	for b := range f.dirty {
		f.keep(b)
	}
	f.dsize = f.size
	clear(f.dirty)
	return 0
}

// keep makes block b's current content durable.
func (f *file) keep(b int64) {
	if blk := f.blocks[b]; blk != nil {
		f.durable[b] = append(f.durable[b][:0], blk...)
	} else {
		delete(f.durable, b)
	}
}

// cut is a power cut for this file: each block written since the last sync
// survives with probability keep (0 to 1), the rest revert to their durable
// content, and so does the size (grown only as far as a kept block reaches).
// It returns the blocks lost.
func (f *file) cut(rnd *rand.Rand, keep float64) (lost int) {
	for _, b := range slices.Sorted(maps.Keys(f.dirty)) {
		if keep > 0 && rnd.Float64() < keep {
			f.keep(b)
			if end := (b + 1) * blockSize; end > f.dsize && f.size > f.dsize {
				f.dsize = min(f.size, end)
			}
			continue
		}
		lost++
	}
	clear(f.dirty)
	f.size = f.dsize
	clear(f.blocks)
	for b, blk := range f.durable {
		if b*blockSize >= f.size {
			delete(f.durable, b)
			continue
		}
		f.blocks[b] = append([]byte(nil), blk...)
	}
	return lost
}
