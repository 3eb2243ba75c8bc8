package lossyfs

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// EnvServe, set to a directory, makes ServeIfAsked serve the filesystem
// there instead of returning.
const EnvServe = "CONVEYOR_TEST_LOSSYFS"

// ServeIfAsked serves the filesystem and exits when the process was started
// by Mount to be its server (EnvServe is set); otherwise it returns at once.
// A test binary calls it first thing in TestMain.
func ServeIfAsked() {
	mnt := os.Getenv(EnvServe)
	if mnt == "" {
		return
	}
	if err := serve(mnt, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "lossyfs:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// The control protocol, one line each way: the client sends a command, the
// server answers "ok [detail]" or "error <message>". After mounting, the
// server says "mounted" (or "error …" and exits).
//
//	cut <keep> <seed>   a power cut: unsynced blocks survive with probability keep
//	failsync on|off     fail every file sync with EIO, or stop doing so
//	stats               "ok syncs=N failed=N files=N"
//	quit                unmount and exit (so does the end of the input)

// serve mounts the filesystem at mnt and obeys the commands read from in
// until quit, answering on out.
func serve(mnt string, in io.Reader, out io.Writer) error {
	root, l := newRoot()
	zero := time.Duration(0)
	server, err := fs.Mount(mnt, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // mount(2) itself: no fusermount3 needed as root
			FsName:            "lossyfs",
			Name:              "lossyfs",
			MaxWrite:          1 << 20,
		},
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	})
	if err != nil {
		// A mount that went half way (mount(2) done, the first request
		// failed) must not stay behind.
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		fmt.Fprintf(out, "error mount %s: %v\n", mnt, err)
		return nil
	}
	fmt.Fprintln(out, "mounted")
	defer server.Unmount()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "quit":
			return unmount(server)
		case f[0] == "cut" && len(f) == 3:
			keep, err1 := strconv.ParseFloat(f[1], 64)
			seed, err2 := strconv.ParseUint(f[2], 10, 64)
			if err1 != nil || err2 != nil || keep < 0 || keep > 1 {
				fmt.Fprintf(out, "error bad cut %q\n", sc.Text())
				continue
			}
			files, lost := cut(l, keep, seed)
			fmt.Fprintf(out, "ok files=%d lost_blocks=%d\n", files, lost)
		case f[0] == "failsync" && len(f) == 2 && (f[1] == "on" || f[1] == "off"):
			l.mu.Lock()
			l.failSync = f[1] == "on"
			l.mu.Unlock()
			fmt.Fprintln(out, "ok")
		case f[0] == "stats":
			l.mu.Lock()
			fmt.Fprintf(out, "ok syncs=%d failed=%d files=%d\n", l.syncs, l.failed, len(l.files))
			l.mu.Unlock()
		default:
			fmt.Fprintf(out, "error unknown command %q\n", sc.Text())
		}
	}
	return unmount(server)
}

// unmount retries while the mount is busy (a descriptor a test left open is
// closed a moment later).
func unmount(server *fuse.Server) error {
	var err error
	for range 50 {
		if err = server.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// cut loses the unsynced data of every file. The kernel's cached pages go
// first (writing back the dirty ones of shared mappings, which arrive here
// as writes), then the data, then the cache once more: the next reader sees
// what survived. No lock is held while the kernel is asked, since the
// writes it sends back need it.
func cut(l *lossy, keep float64, seed uint64) (files, lost int) {
	l.mu.Lock()
	all := make([]*file, 0, len(l.files))
	for f := range l.files {
		all = append(all, f)
	}
	l.mu.Unlock()
	// The same seed cuts the same blocks: files in inode order.
	slices.SortFunc(all, func(a, b *file) int { return cmp.Compare(a.StableAttr().Ino, b.StableAttr().Ino) })
	for _, f := range all {
		f.NotifyContent(0, 0)
	}
	rnd := rand.New(rand.NewPCG(seed, 7))
	l.mu.Lock()
	for _, f := range all {
		lost += f.cut(rnd, keep)
	}
	l.mu.Unlock()
	for _, f := range all {
		f.NotifyContent(0, 0)
	}
	return len(all), lost
}
