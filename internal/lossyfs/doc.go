// Package lossyfs is a filesystem for power-loss tests: a FUSE filesystem
// that keeps every file in memory, remembers what each file held at its last
// fsync or fdatasync, and on command forgets the rest, as a machine that
// loses power forgets its page cache. It can also fail every sync with EIO,
// as a dying disk does.
//
// The model: file data (writes, truncations, the size) is durable only once
// the file is synced; at a power cut each 4 KiB block written since then
// survives or not at random (a disk reorders the writes it was given), so a
// store that orders its syncs right survives and one that relies on write
// order or skips a sync does not. Names (create, rename, unlink, mkdir) are
// durable at once, as a journaling filesystem's metadata nearly is; a test
// of directory syncs needs a stricter model.
//
// The server must run in a process of its own: a process that maps a file of
// the mount (bbolt does) while serving it deadlocks when a page fault waits
// for a server goroutine that waits for the garbage collector. Mount starts
// the running program again as the server (the test binary: its TestMain
// calls ServeIfAsked first) and drives it over a pipe. Mounting needs
// /dev/fuse and the right to mount (root, or fusermount3 installed): Mount
// returns ErrUnavailable, saying what is missing, when the machine cannot.
//
// It is test support: nothing in the product imports it.
package lossyfs
