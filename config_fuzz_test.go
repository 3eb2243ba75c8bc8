package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"conveyor/data"
	"conveyor/jobs"
	"conveyor/lanes"
	"conveyor/queue"
	"conveyor/ui"
)

// FuzzConfigFile feeds configuration files to serve's settings, the way
// `serve --config FILE` reads them: it never panics, and it either refuses
// the file with an error that says it comes from the configuration and
// where (a line or a key), or returns settings that pass the checks their
// users make at start-up (the queue's, the lanes', the HTTP server's, the
// replica's, the connector's, local AI's, the failure pipeline's). The
// seeds are the YAML examples of the README and docs/ plus broken files.
// The file has no encoder, so there is no round trip to check.
func FuzzConfigFile(f *testing.F) {
	for _, seed := range docExamples(f) {
		f.Add(seed)
	}
	for _, seed := range []string{
		"",
		"listen: 127.0.0.1:7421\nlog_format: json\nshutdown_timeout: 0s\n",
		"retention: {done: 1d, done_limit: 0, dead: 0s}\nqueue_snapshot_interval: 0\n",
		"replica: off\nlitestream_config: litestream.yml\n",
		"litestream_config: litestream.yml\n",
		"replica: s3://bucket/prefix?region=eu-central-1&bogus=1\n",
		"replica: file://relative/dir\n",
		"replica: x\n",
		"lanes: [{name: a}]\n",
		"lanes: [{name: a, queues: [q], concurrency: 1001}]\n",
		"retention: {done: -1s}\n",
		"shutdown_timeout: 5\n",
		"max_args_bytes: -1\n",
		"log_format: xml\n",
		"unknown_key: 1\n",
		"listen: a\n---\nlisten: b\n",
		"dashboard: {session_ttl: 1s}\n",
		"redact: ['']\n",
		"dashboard: {password_hash: not-a-hash}\n",
		"queue_health: {queues: {sync: {max_size: -1}}}\n",
		"failure_retry: {batch_size: -5}\nfailure_write_rate: -1\n",
		"job_classes: [{name: x}]\n",
		"job_classes: [{name: ReportJob, command: [/bin/true]}, {name: ReportJob, command: [/bin/true]}]\n",
		"local_ai: {start: sometimes, watch_interval: 0s}\n",
		"connector_url: ftp://x\nconnector_timeout: 1x\n",
		"lanes: [\n",
		"\t- x",
		"local_ai: [1, 2]\n",
		"schedule_late_after: {a: 1}\n",
		"&a [*a]\n",
	} {
		f.Add(seed)
	}
	// What the HTTP server checks needs a store: one for the whole run.
	store, err := queue.Open(filepath.Join(f.TempDir(), "queue.bolt"), queue.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	reg := lanes.NewRegistry()
	dir := f.TempDir()
	path := filepath.Join(dir, "conveyor.yml")

	f.Fuzz(func(t *testing.T, file string) {
		var fc fileConfig
		decodeErr := decodeConfig([]byte(file), &fc)
		// A litestream_config naming a device or a pipe would be read
		// for ever: not the config file's parsing.
		if fi, err := os.Stat(fc.LitestreamConfig); decodeErr == nil && fc.LitestreamConfig != "" && err == nil && !fi.Mode().IsRegular() {
			return
		}
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := serveSettings([]string{"--data", dir, "--config", path}, envFunc(), io.Discard)
		if decodeErr != nil {
			if err == nil || !strings.Contains(err.Error(), decodeErr.Error()) {
				t.Fatalf("decodeConfig refused the file (%v), serve's settings answered %v", decodeErr, err)
			}
			if !namesLineOrKey(decodeErr.Error()) && !positionless(file, decodeErr) {
				t.Fatalf("the error names no line and no key: %v\n%q", decodeErr, file)
			}
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config") {
				t.Fatalf("the error does not say it comes from the configuration: %v\n%q", err, file)
			}
			return
		}
		if line := laterDocument(file); line > 0 {
			t.Fatalf("accepted a file with a second YAML document (line %d), read only the first:\n%q", line, file)
		}
		if err := checkSettings(st, store, reg); err != nil {
			t.Fatalf("accepted settings fail their own checks: %v\n%q", err, file)
		}
	})
}

// checkSettings makes the checks each part makes of its settings when
// serve starts.
func checkSettings(st settings, store *queue.Store, reg *lanes.Registry) error {
	q := st.Queue
	switch {
	case st.LogFormat != "text" && st.LogFormat != "json":
		return errors.New("log format " + st.LogFormat)
	case st.ShutdownTimeout <= 0:
		return errors.New("shutdown timeout " + st.ShutdownTimeout.String())
	case q.MaxArgsBytes < 0 || q.DoneRetention < 0 || q.DoneLimit < 0 || q.DeadRetention < 0 || q.DeadLimit < 0:
		return errors.New("negative queue options")
	case st.Storage.QueueSnapshotInterval < 0 || st.Schedule.LateAfter < 0 || st.Jobs.ConnectorTimeout < 0:
		return errors.New("a negative interval")
	case st.Failures.FailureWriteRate <= 0 || st.Failures.QueueHealth.Default.MaxSize < 0:
		return errors.New("failure write rate or queue health")
	case st.LocalAI.WatchInterval <= 0:
		return errors.New("local AI watch interval")
	}
	for _, th := range st.Failures.QueueHealth.Queues {
		if th.MaxSize < 0 || th.MaxLatency < 0 {
			return errors.New("queue health thresholds")
		}
	}
	if st.Storage.ReplicaURL != "" {
		if err := data.CheckReplicaURL(st.Storage.ReplicaURL); err != nil {
			return err
		}
	}
	if st.Jobs.ConnectorURL != "" {
		if err := jobs.CheckURL(st.Jobs.ConnectorURL); err != nil {
			return err
		}
	}
	d := st.Dashboard
	_, err := ui.New(ui.Config{Store: store, Registry: reg, Topology: st.Topology, Token: testToken,
		AllowedHosts: ui.HostsFor(defaultListen), PagesConfig: ui.PagesConfig{
			PasswordHash: d.PasswordHash, Redact: d.Redact, SessionTTL: d.SessionTTL, SecureCookies: d.SecureCookies}})
	return errors.Join(err, st.Topology.Validate(), st.LocalAI.Config.Validate(), st.Failures.AutoRetry.Validate())
}

// lineOrKey matches an error that names where: a line, or a key of the
// file (a word followed by a colon, a dot or a bracket, as the checks
// write them: "max_args_bytes must…", "local_ai.start", "job_classes[0]").
var lineOrKey = regexp.MustCompile(`line \d+|\b[a-z]+(_[a-z]+)+\b|\b(retention|lanes|listen|data|replica|schedule|redact|dashboard|local_ai)\b`)

func namesLineOrKey(msg string) bool { return lineOrKey.MatchString(msg) }

// positionless reports whether err is one of the YAML library's errors
// that carry no position: the parser's on the first line (where it names
// no line: the first line alone fails alike), and those of aliases,
// merges and values, which name what is at fault instead.
func positionless(file string, err error) bool {
	msg := err.Error()
	if !strings.HasPrefix(msg, "yaml: ") {
		return false
	}
	for _, what := range []string{"anchor '", "excessive aliasing", "map merge", "base64", "invalid map key"} {
		if strings.Contains(msg, what) {
			return true
		}
	}
	line, _, _ := strings.Cut(file, "\n")
	var fc fileConfig
	lerr := decodeConfig([]byte(line), &fc)
	return lerr != nil && lerr.Error() == msg
}

// laterDocument returns the line of the first thing in a YAML document
// after the first one of src, 0 when there is none (or src is not YAML).
func laterDocument(src string) int {
	dec := yaml.NewDecoder(strings.NewReader(src))
	for i := 0; ; i++ {
		var v yaml.Node
		if err := dec.Decode(&v); err != nil {
			return 0
		}
		if i > 0 && len(v.Content) > 0 && v.Content[0].ShortTag() != "!!null" {
			return v.Content[0].Line
		}
	}
}

// docExamples returns the ```yaml blocks of the README and docs/: the
// configuration examples the documentation shows.
func docExamples(f *testing.F) []string {
	files, _ := filepath.Glob("docs/*.md")
	var out []string
	for _, name := range append([]string{"README.md"}, files...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, part := range bytes.Split(b, []byte("```yaml\n"))[1:] {
			block, _, _ := bytes.Cut(part, []byte("```"))
			out = append(out, string(block))
		}
	}
	if len(out) == 0 {
		f.Fatal("no ```yaml example in README.md or docs/")
	}
	return out
}

// TestConfigFileErrorsSayWhere: what FuzzConfigFile found serve's settings
// accept, or refuse without saying where, is refused naming the key, the
// variable or the line.
func TestConfigFileErrorsSayWhere(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file string
		env  []string
		want string
	}{
		{file: "replica: x\n", want: "config replica: data: invalid replica URL"},
		{file: "replica: file://relative/dir\n", want: "config replica: data: invalid replica URL: a file replica needs an absolute path"},
		{env: []string{"CONVEYOR_REPLICA_URL=s3://b/p?bogus=1"}, want: `CONVEYOR_REPLICA_URL: data: invalid replica URL: unknown s3 query key "bogus"`},
		{file: "litestream_config: no-such.yml\n", want: "config litestream_config: data: litestream config: open no-such.yml"},
		{file: "dashboard: {password_hash: not-a-hash}\n", want: "config: dashboard.password_hash: not an argon2id hash"},
		{env: []string{"CONVEYOR_PASSWORD_HASH=$argon2id$x"}, want: "CONVEYOR_PASSWORD_HASH: not an argon2id hash"},
		{file: "redact: [password, ' ']\n", want: "config: redact[1] is empty"},
		{file: "listen: a\n---\nlisten: b\n", want: "line 3: a second YAML document"},
		{file: "listen: a\nlog_format: \x01\n", want: "line 2: yaml: control characters are not allowed"},
		{file: "listen: a\n\xff\n", want: "line 2: yaml: invalid leading UTF-8 octet"},
	} {
		dir := t.TempDir()
		args := []string{"--data", dir}
		if c.file != "" {
			path := filepath.Join(dir, "conveyor.yml")
			if err := os.WriteFile(path, []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--config", path)
		}
		_, err := serveSettings(args, envFunc(c.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want %q", c.file, c.env, err, c.want)
		}
	}
	// A trailing "---" starts no document; a leading one is the file's.
	for _, file := range []string{"listen: a\n---\n", "---\nlisten: a\n", "listen: a\n...\n"} {
		var fc fileConfig
		if err := decodeConfig([]byte(file), &fc); err != nil || fc.Listen != "a" {
			t.Errorf("%q: %v, listen %q", file, err, fc.Listen)
		}
	}
}
