package lanes

import (
	"context"
	"fmt"
	"os"
	"sync"

	"conveyor/queue"
)

// ExecLog is a diagnostic record of every attempt, kept outside the data
// directory: a line "start <id> <attempt>" before the handler runs and
// "end <id> <attempt> ok" (or "… error") after it returns, each fsynced before
// the job goes on. The crash tests read it to prove that no acknowledged job is
// lost and that no job runs again once it is done. It costs two fsyncs per
// attempt: not for production loads.
type ExecLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenExecLog opens (creating or appending to) the log at path.
func OpenExecLog(path string) (*ExecLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("exec log: %w", err)
	}
	return &ExecLog{f: f}, nil
}

func (l *ExecLog) line(format string, a ...any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := fmt.Fprintf(l.f, format+"\n", a...); err != nil {
		return err
	}
	return l.f.Sync()
}

// Middleware records each attempt around the handler. If the log cannot be
// written the attempt fails (and is retried) rather than run unrecorded.
func (l *ExecLog) Middleware() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, j *queue.Job) error {
			if err := l.line("start %d %d", j.ID, j.Attempt); err != nil {
				return fmt.Errorf("exec log: %w", err)
			}
			err := next.Perform(ctx, j)
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			if lerr := l.line("end %d %d %s", j.ID, j.Attempt, outcome); lerr != nil && err == nil {
				return fmt.Errorf("exec log: %w", lerr)
			}
			return err
		})
	}
}

// Close closes the file.
func (l *ExecLog) Close() error { return l.f.Close() }
