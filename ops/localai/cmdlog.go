package localai

import (
	"fmt"
	"io"
	"os"
	"time"
)

// openLog opens LogFile for appending (rotating it to .1 past maxLogSize),
// writes a header line and returns the offset after it.
func (s *Supervisor) openLog(header string) (*os.File, int64, error) {
	if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
		return nil, 0, err
	}
	p := s.path(LogFile)
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxLogSize {
		os.Rename(p, p+".1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(f, "--- %s conveyor: %s\n", s.now().UTC().Format(time.RFC3339), header)
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, off, nil
}

// outputTail returns up to maxOutputTail bytes from the end of what was
// logged after offset, on one line.
func (s *Supervisor) outputTail(offset int64) string {
	f, err := os.Open(s.path(LogFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= offset {
		return ""
	}
	from := max(offset, fi.Size()-maxOutputTail)
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	return oneLine(buf[:n], maxOutputTail)
}
