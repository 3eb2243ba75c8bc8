package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"conveyor/ui"
)

// conveyor top: the dashboard in a terminal. It reads the snapshot from
// GET /api/v1/dashboard and redraws when GET /api/v1/events names a change,
// with r3labs/sse's client: it reconnects with a backoff that never gives
// up (r3labs' default stops after 15 minutes), re-reads everything on every
// (re)connect since events are not replayed, and stops at once with a
// clear message when the token is refused (r3labs would retry a 401 like a
// network error). When the server goes away the frame says so and why
// ("server lost, reconnecting in 2s: connection refused") over the last
// figures it read, until the server is back.

// topPanels are the snapshot panels top shows.
const topPanels = "totals,queues,lanes,rates,issues"

// topMinRedraw spaces redraws: events arrive at most every 250 ms from the
// server's coalescing, and a terminal need not redraw faster.
const topMinRedraw = 200 * time.Millisecond

func cmdTop(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "server URL (env CONVEYOR_URL, default http://127.0.0.1:7420)")
	data := fs.String("data", "", "data directory holding the token when CONVEYOR_TOKEN is unset (env CONVEYOR_DATA, default ./var)")
	once := fs.Bool("once", false, "print the dashboard once and exit (no live updates)")
	plain := fs.Bool("plain", false, "do not clear the screen between frames (for logs and pipes)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor top [flags]\n\nShows the dashboard of a running server — queues, lanes, rates, open issues — and redraws it\nwhen it changes. Ctrl-C quits.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("top takes no arguments (got %q)", fs.Args())}
	}
	c, err := newClient(*server, *data, getenv)
	if err != nil {
		return err
	}
	t := &top{c: c, out: stdout, clear: !*plain && !*once, now: time.Now}
	if *once {
		return t.draw(ctx)
	}
	return t.run(ctx)
}

// top is one run of conveyor top.
type top struct {
	c     *client
	out   io.Writer
	clear bool
	now   func() time.Time

	mu     sync.Mutex
	status string                // "live", "server lost, reconnecting in 2s: …"
	last   *ui.DashboardSnapshot // the last snapshot read, drawn while the server is lost
	lastAt time.Time
}

func (t *top) setStatus(s string) {
	t.mu.Lock()
	t.status = s
	t.mu.Unlock()
}

// run subscribes to the events and redraws on each change until ctx ends
// or the server refuses the token.
func (t *top) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	sc := sse.NewClient(t.c.base + "/api/v1/events")
	sc.Headers["Authorization"] = "Bearer " + t.c.token
	sc.Connection = &http.Client{} // no timeout: the stream stays open
	bo := backoff.NewExponentialBackOff()
	bo.MaxElapsedTime = 0 // never give up
	bo.MaxInterval = 10 * time.Second
	sc.ReconnectStrategy = backoff.WithContext(bo, ctx)
	sc.ReconnectNotify = func(err error, next time.Duration) {
		t.setStatus(lostStatus(err, next))
		mark()
	}
	// ended paces reconnecting after the server ended the stream cleanly
	// (it stopped or restarted): r3labs takes that for a finished
	// subscription and returns, so top subscribes again itself.
	ended := backoff.NewExponentialBackOff()
	ended.MaxElapsedTime = 0
	ended.MaxInterval = bo.MaxInterval
	sc.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			// Unwrapped: backoff matches *PermanentError by type.
			return backoff.Permanent(fmt.Errorf("the server refused the token (%s): %s", resp.Status, strings.TrimSpace(string(body))))
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			return &streamStatusError{resp.Status}
		}
		// (Re)connected: nothing was replayed, so read everything again.
		ended.Reset()
		t.setStatus("live")
		mark()
		return nil
	}
	subErr := make(chan error, 1)
	go func() {
		for {
			err := sc.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
				if len(ev.Event) > 0 {
					mark()
				}
			})
			if err != nil || ctx.Err() != nil {
				subErr <- err
				return
			}
			next := ended.NextBackOff()
			t.setStatus(lostStatus(errStreamEnded, next))
			mark()
			timer := time.NewTimer(next)
			select {
			case <-ctx.Done():
				timer.Stop()
				subErr <- nil
				return
			case <-timer.C:
			}
		}
	}()
	t.setStatus("connecting")
	mark()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-subErr:
			if ctx.Err() != nil {
				return nil
			}
			var pe *backoff.PermanentError
			if errors.As(err, &pe) {
				return pe.Err
			}
			return err
		case <-dirty:
		}
		if wait := topMinRedraw - t.now().Sub(last); wait > 0 && !last.IsZero() {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
			}
		}
		last = t.now()
		if err := t.drawLive(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// errStreamEnded is why top reconnects when the server ended the stream.
var errStreamEnded = errors.New("the server closed the event stream")

// lostStatus is the frame's status while top reconnects.
func lostStatus(err error, next time.Duration) string {
	var se *streamStatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("reconnecting in %s: %v", next.Round(100*time.Millisecond), err)
	}
	return fmt.Sprintf("server lost, reconnecting in %s: %s", next.Round(100*time.Millisecond), netReason(err))
}

// netReason is a network error without the request around it.
func netReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection broke"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// streamStatusError is an event stream answer other than 200: the server
// is there, and says why not.
type streamStatusError struct{ status string }

func (e *streamStatusError) Error() string { return "the event stream answered " + e.status }

// draw reads the snapshot and writes one frame.
func (t *top) draw(ctx context.Context) error {
	var s ui.DashboardSnapshot
	if err := t.c.do(ctx, http.MethodGet, "/api/v1/dashboard?panels="+topPanels, nil, &s); err != nil {
		return err
	}
	t.mu.Lock()
	status := t.status
	t.last, t.lastAt = &s, t.now()
	t.mu.Unlock()
	return t.write(&s, status)
}

// drawLive draws a frame; when the snapshot cannot be read it draws the
// last one read, saying why and from when. Only a failing terminal is an
// error.
func (t *top) drawLive(ctx context.Context) error {
	err := t.draw(ctx)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	t.mu.Lock()
	status, last, at := t.status, t.last, t.lastAt
	t.mu.Unlock()
	if status == "live" || status == "connecting" {
		status = "cannot read the dashboard: " + netReason(err)
	}
	if last == nil {
		last = &ui.DashboardSnapshot{}
	} else {
		status += " — figures from " + at.Format("15:04:05")
	}
	return t.write(last, status)
}

// write writes one frame.
func (t *top) write(s *ui.DashboardSnapshot, status string) error {
	var b bytes.Buffer
	if t.clear {
		b.WriteString("\x1b[H\x1b[2J")
	}
	renderTop(&b, s, t.c.base, status, t.now())
	_, err := t.out.Write(b.Bytes())
	return err
}

// renderTop writes a frame: totals, rates, queues, lanes, issues.
func renderTop(w io.Writer, s *ui.DashboardSnapshot, base, status string, now time.Time) {
	fmt.Fprintf(w, "Conveyor at %s — %s", base, now.Format("15:04:05"))
	if status != "" {
		fmt.Fprintf(w, " — %s", status)
	}
	fmt.Fprintln(w)
	if tt := s.Totals; tt != nil {
		fmt.Fprintf(w, "processed/min %d  failed/min %d  busy %d/%d  oldest ready %s",
			tt.ProcessedMinute, tt.FailedMinute, tt.Busy, tt.Workers, humanMS(tt.OldestReadyMS))
		if tt.OldestQueue != "" && tt.OldestReadyMS > 0 {
			fmt.Fprintf(w, " (%s)", tt.OldestQueue)
		}
		if tt.Quiet {
			fmt.Fprint(w, "  QUIET: no lane claims jobs")
		}
		fmt.Fprintf(w, "\nready %d  running %d  scheduled %d  retry %d  dead %d  done %d\n",
			tt.Counts["ready"], tt.Counts["running"], tt.Counts["scheduled"], tt.Counts["retry"], tt.Counts["dead"], tt.Counts["done"])
	}
	if r := s.Rates; r != nil {
		fmt.Fprintf(w, "processed %s\nfailed    %s\n", sparkline(r.Processed, 40), sparkline(r.Failed, 40))
	}
	fmt.Fprintf(w, "\n%-24s %-20s %10s %10s %8s %8s\n", "QUEUE", "LANE", "SIZE", "LATENCY", "RETRY", "DEAD")
	for _, q := range s.Queues {
		name := q.Name
		if q.Paused {
			name += " (paused)"
		}
		lane := q.Lane
		if lane == "" {
			lane = "(no lane)"
		}
		lat := "–"
		if q.Size > 0 {
			lat = humanMS(q.LatencyMS)
		}
		fmt.Fprintf(w, "%-24s %-20s %10d %10s %8d %8d\n", name, lane, q.Size, lat, q.Counts["retry"], q.Counts["dead"])
	}
	if l := s.Lanes; l != nil {
		fmt.Fprintf(w, "\n%-20s %9s %-40s %10s %8s\n", "LANE", "BUSY", "GATE", "PROCESSED", "FAILED")
		for _, ln := range l.Lanes {
			gate := "open"
			if !ln.Open {
				gate = "held"
				if ln.Reason != "" {
					gate += ": " + ln.Reason
				}
			}
			if len(gate) > 40 {
				gate = gate[:39] + "…"
			}
			fmt.Fprintf(w, "%-20s %9s %-40s %10d %8d\n", ln.Name, fmt.Sprintf("%d/%d", ln.Busy, ln.Concurrency), gate, ln.Processed, ln.Failed)
		}
	}
	if is := s.Issues; is != nil {
		fmt.Fprintf(w, "\nOPEN ISSUES %d\n", is.Open)
		for i, x := range is.Issues {
			if i == 5 {
				break
			}
			fmt.Fprintf(w, "  %6d× %s (%s)\n", x.Occurrences, x.Title, x.Kind)
		}
	}
	for panel, msg := range s.Errors {
		fmt.Fprintf(w, "(%s unavailable: %s)\n", panel, msg)
	}
}

// sparkline draws the last n values with block characters.
func sparkline(vals []int64, n int) string {
	if len(vals) > n {
		vals = vals[len(vals)-n:]
	}
	var hi int64
	for _, v := range vals {
		hi = max(hi, v)
	}
	const ticks = "▁▂▃▄▅▆▇█"
	runes := []rune(ticks)
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > 0 {
			i = int(v * int64(len(runes)-1) / hi)
		}
		b.WriteRune(runes[i])
	}
	fmt.Fprintf(&b, " max %d/min", hi)
	return b.String()
}

// humanMS writes milliseconds as the dashboard does.
func humanMS(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", ms)
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}
