package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cmdEnqueue enqueues one job on a running server through its HTTP API.
func cmdEnqueue(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("enqueue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	q := fs.String("queue", "", "queue (default: the class's queue)")
	argsJSON := fs.String("args", "", "job args as JSON, e.g. '{\"ms\": 50}'")
	in := fs.String("in", "", "run after this long, e.g. 30s or 5m")
	at := fs.String("at", "", "run at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z)")
	unique := fs.String("unique-key", "", "enqueue nothing while another unfinished job holds this key")
	server := fs.String("server", "", "server URL (env CONVEYOR_URL, default http://127.0.0.1:7420)")
	data := fs.String("data", "", "data directory holding the token when CONVEYOR_TOKEN is unset (env CONVEYOR_DATA, default ./var)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor enqueue CLASS [flags]\n\nEnqueues one job on a running server and prints its id and state.\n\nflags:")
		fs.PrintDefaults()
	}
	// Allow the class before or after the flags.
	var class string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		class, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &usageError{err.Error()}
	}
	if class == "" && fs.NArg() > 0 {
		class = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if class == "" {
		fs.Usage()
		return &usageError{"enqueue needs a job class, e.g. conveyor enqueue NoopJob"}
	}
	body := map[string]any{"class": class}
	if *q != "" {
		body["queue"] = *q
	}
	if *argsJSON != "" {
		if !json.Valid([]byte(*argsJSON)) {
			return &usageError{fmt.Sprintf("--args %q is not valid JSON", *argsJSON)}
		}
		body["args"] = json.RawMessage(*argsJSON)
	}
	if *in != "" && *at != "" {
		return &usageError{"give --in or --at, not both"}
	}
	if *in != "" {
		d, err := parseDuration(*in)
		if err != nil {
			return &usageError{"--in: " + err.Error()}
		}
		body["in_seconds"] = d.Seconds()
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return &usageError{fmt.Sprintf("--at %q: want RFC 3339, e.g. 2026-12-01T09:00:00Z", *at)}
		}
		body["run_at"] = t.Format(time.RFC3339Nano)
	}
	if *unique != "" {
		body["unique_key"] = *unique
	}
	c, err := newClient(*server, *data, getenv)
	if err != nil {
		return err
	}
	var reply json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/api/v1/jobs", body, &reply); err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(reply))
	return nil
}

// client talks to a running server's API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(server, dataDir string, getenv func(string) string) (*client, error) {
	base := strings.TrimRight(first(server, getenv("CONVEYOR_URL"), "http://"+defaultListen), "/")
	token := getenv("CONVEYOR_TOKEN")
	if token == "" {
		path := filepath.Join(first(dataDir, getenv("CONVEYOR_DATA"), defaultDataDir), tokenFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no token: set CONVEYOR_TOKEN or point --data at the server's data directory (%v)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &client{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a JSON request and decodes a JSON reply; an error reply becomes an
// error carrying the server's message and field.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("is conveyor serving at %s? %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error, Field string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if e.Field != "" {
				return fmt.Errorf("server: %s (field %s)", e.Error, e.Field)
			}
			return fmt.Errorf("server: %s", e.Error)
		}
		return fmt.Errorf("server: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
