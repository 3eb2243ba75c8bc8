package lossyfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrUnavailable is returned by Mount when this machine cannot mount the
// filesystem; the error says what is missing.
var ErrUnavailable = errors.New("lossyfs: cannot mount a FUSE filesystem here")

// FS is a mounted lossy filesystem, served by a process of its own.
type FS struct {
	// Dir is where it is mounted.
	Dir    string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr strings.Builder
	exited chan error
}

// Mount starts the running program again as the filesystem's server (its
// TestMain must call ServeIfAsked first) and mounts it at dir, an empty
// directory. Close unmounts it.
func Mount(dir string) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: no /dev/fuse (%v)", ErrUnavailable, err)
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return nil, fmt.Errorf("%w: not root (uid %d) and no fusermount3 (the fuse3 package)", ErrUnavailable, os.Geteuid())
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f := &FS{Dir: dir, exited: make(chan error, 1)}
	f.cmd = exec.Command(self, "-test.run=^$")
	f.cmd.Env = append(os.Environ(), EnvServe+"="+dir)
	f.cmd.Stderr = &f.stderr
	// A server whose test died goes with it (its mount then needs umount -l).
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if f.in, err = f.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f.out = bufio.NewScanner(stdout)
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { f.exited <- f.cmd.Wait() }()
	line, err := f.read()
	if err != nil {
		return nil, err
	}
	if line != "mounted" {
		f.in.Close()
		<-f.exited
		// The mount itself failed: no right to mount (EPERM in a container),
		// no fuse module (ENODEV)… the machine cannot, and the error says why.
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.TrimPrefix(line, "error "))
	}
	return f, nil
}

// read returns the server's next line.
func (f *FS) read() (string, error) {
	if f.out.Scan() {
		return f.out.Text(), nil
	}
	err := f.out.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return "", fmt.Errorf("lossyfs: the server stopped answering (%v): %s", err, f.stderr.String())
}

// do sends one command and returns the detail of its "ok" answer.
func (f *FS) do(cmd string) (string, error) {
	if _, err := fmt.Fprintln(f.in, cmd); err != nil {
		return "", fmt.Errorf("lossyfs: %s: %w", cmd, err)
	}
	line, err := f.read()
	if err != nil {
		return "", err
	}
	if line != "ok" && !strings.HasPrefix(line, "ok ") {
		return "", fmt.Errorf("lossyfs: %s: %s", cmd, line)
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, "ok"), " "), nil
}

// Cut is a power cut: every block written and not synced since survives
// with probability keep (0: none does), chosen by seed; the rest is lost,
// and the kernel's cache forgets it too. Nothing may have the mount's files
// open meanwhile (the processes that used them are dead, as after a real
// power cut). It returns the server's account ("files=N lost_blocks=N").
func (f *FS) Cut(keep float64, seed uint64) (string, error) {
	return f.do(fmt.Sprintf("cut %g %d", keep, seed))
}

// FailSyncs makes every file sync fail with EIO (on), or succeed again.
func (f *FS) FailSyncs(on bool) error {
	arg := "off"
	if on {
		arg = "on"
	}
	_, err := f.do("failsync " + arg)
	return err
}

// Stats returns the server's counters ("syncs=N failed=N files=N").
func (f *FS) Stats() (string, error) { return f.do("stats") }

// Close unmounts the filesystem and stops its server. Whatever used the
// mount must be closed first. A server that does not stop is killed, and its
// mount detached (umount -l).
func (f *FS) Close() error {
	f.in.Close()
	var err error
	select {
	case werr := <-f.exited:
		if werr != nil {
			err = fmt.Errorf("lossyfs: server: %v: %s", werr, f.stderr.String())
		}
	case <-time.After(30 * time.Second):
		f.cmd.Process.Kill()
		<-f.exited
		err = fmt.Errorf("lossyfs: the server did not stop; killed: %s", f.stderr.String())
	}
	// Whatever happened, leave no mount behind (a dead server's mount
	// answers "transport endpoint is not connected" until detached).
	if mounted(f.Dir) {
		syscall.Unmount(f.Dir, syscall.MNT_DETACH)
	}
	return err
}

// mounted reports whether something is mounted at dir.
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true // cannot tell: detaching what is not mounted is harmless
	}
	for _, line := range strings.Split(string(b), "\n") {
		// Field 5 is the mount point, with spaces and the like as octal escapes.
		if fs := strings.Fields(line); len(fs) > 4 && unescapeMountPath(fs[4]) == filepath.Clean(dir) {
			return true
		}
	}
	return false
}

func unescapeMountPath(p string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(p)
}
