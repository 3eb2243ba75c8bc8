package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"conveyor/jobs"
	"conveyor/lanes"
	"conveyor/ops/localai"
	"conveyor/queue"
)

// Defaults of serve's settings.
const (
	defaultDataDir = "./var"
	defaultListen  = "127.0.0.1:7420"
)

// settings is everything serve needs, from flags, environment and the
// configuration file (in that order of strength), with defaults below them.
type settings struct {
	DataDir         string
	Listen          string
	ConfigFile      string
	LogFormat       string
	LogLevel        slog.Level
	ExecLog         string
	ShutdownTimeout time.Duration
	Topology        lanes.Topology
	Queue           queue.Options

	// The features' own settings (app_storage.go, app_failures.go,
	// app_schedule.go, app_localai.go, app_jobs.go, app_dashboard.go).
	Storage   storageSettings
	Failures  failureSettings
	Schedule  scheduleSettings
	LocalAI   localAISettings
	Jobs      jobsSettings
	Dashboard dashboardSettings
}

// fileConfig is the YAML configuration file (serve --config FILE). Unknown
// keys are errors, so a typo never silently changes behaviour.
type fileConfig struct {
	Data            string             `yaml:"data"`
	Listen          string             `yaml:"listen"`
	LogFormat       string             `yaml:"log_format"`
	ShutdownTimeout duration           `yaml:"shutdown_timeout"`
	MaxArgsBytes    int                `yaml:"max_args_bytes"`
	Retention       retentionConfig    `yaml:"retention"`
	Lanes           []lanes.LaneConfig `yaml:"lanes"`

	// The features' own keys, at the top level of the file; their schemas
	// follow.
	storageFile   `yaml:",inline"`
	failuresFile  `yaml:",inline"`
	scheduleFile  `yaml:",inline"`
	localAIFile   `yaml:",inline"`
	jobsFile      `yaml:",inline"`
	dashboardFile `yaml:",inline"`
}

// storageFile is the storage's part of the configuration file
// (app_storage.go):
//
//	replica: s3://bucket/conveyor?region=eu-central-1   # or file:///abs/dir, or off
//	litestream_config: litestream.yml                   # instead of replica
//	queue_snapshot_interval: 1m                         # 0 turns snapshots off (default 1m)
type storageFile struct {
	Replica               string    `yaml:"replica"`
	LitestreamConfig      string    `yaml:"litestream_config"`
	QueueSnapshotInterval *duration `yaml:"queue_snapshot_interval"`
}

// failuresFile is the failure pipeline's part of the configuration file
// (app_failures.go):
//
//	queue_health:
//	  max_latency: 5m
//	  max_size: 10000
//	  queues: {sync: {max_latency: 30m}}
//	failure_write_rate: 12000                           # failures written per second, at most
//	failure_retry:
//	  batch_size: 100
//	  scan_limit: 2000
//	  cool_down: 10m
//	  max_retries: 3
//	  per_fingerprint: 10
type failuresFile struct {
	QueueHealth      queueHealthFile  `yaml:"queue_health"`
	FailureRetry     failureRetryFile `yaml:"failure_retry"`
	FailureWriteRate int              `yaml:"failure_write_rate"`
}

type queueThresholdsFile struct {
	MaxLatency duration `yaml:"max_latency"`
	MaxSize    int64    `yaml:"max_size"`
}

type queueHealthFile struct {
	queueThresholdsFile `yaml:",inline"`
	Queues              map[string]queueThresholdsFile `yaml:"queues"`
}

type failureRetryFile struct {
	BatchSize      int      `yaml:"batch_size"`
	ScanLimit      int      `yaml:"scan_limit"`
	CoolDown       duration `yaml:"cool_down"`
	MaxRetries     int      `yaml:"max_retries"`
	PerFingerprint int      `yaml:"per_fingerprint"`
}

// scheduleFile is the schedule's part of the configuration file
// (app_schedule.go):
//
//	schedule: /etc/conveyor/schedule.yml   # replaces the default schedule
//	schedule_late_after: 30s               # liveness threshold
type scheduleFile struct {
	Schedule          string   `yaml:"schedule"`
	ScheduleLateAfter duration `yaml:"schedule_late_after"`
}

// jobsFile is the job catalog's part of the configuration file
// (app_jobs.go):
//
//	connector_url: https://connector.internal/conveyor   # or CONVEYOR_CONNECTOR_URL
//	connector_token: …                                   # or CONVEYOR_CONNECTOR_TOKEN
//	connector_timeout: 30s                               # or CONVEYOR_CONNECTOR_TIMEOUT
//	job_classes: [ … ]                                   # declared job classes (docs/jobs.md)
type jobsFile struct {
	ConnectorURL     string                `yaml:"connector_url"`
	ConnectorToken   string                `yaml:"connector_token"`
	ConnectorTimeout duration              `yaml:"connector_timeout"`
	JobClasses       []jobs.DeclaredConfig `yaml:"job_classes"`
}

// dashboardFile is the browser pages' part of the configuration file
// (app_dashboard.go):
//
//	redact: [password, token, secret, cookie]   # keys whose values pages and the API never show
//	dashboard:
//	  password_hash: "$argon2id$v=19$m=65536,t=3,p=2$…"   # from `conveyor passwd`; the token always works
//	  session_ttl: 12h
//	  secure_cookies: true                      # behind a TLS proxy
type dashboardFile struct {
	Redact    *[]string         `yaml:"redact"`
	Dashboard dashboardFileBody `yaml:"dashboard"`
}

type dashboardFileBody struct {
	PasswordHash  string   `yaml:"password_hash"`
	SessionTTL    duration `yaml:"session_ttl"`
	SecureCookies bool     `yaml:"secure_cookies"`
}

// localAIFile is the local-AI part of the configuration file
// (app_localai.go).
type localAIFile struct {
	LocalAI localAISection `yaml:"local_ai"`
}

// localAISection is the `local_ai:` section. Every key has an environment
// variable, which wins over it; values are written as in the environment.
type localAISection struct {
	URL             string `yaml:"url"`              // LOCAL_AI_URL
	HealthPath      string `yaml:"health_path"`      // LOCAL_AI_HEALTH_PATH, default /health
	OllamaURL       string `yaml:"ollama_url"`       // OLLAMA_URL, default http://127.0.0.1:11434
	StartCommand    string `yaml:"start_command"`    // LOCAL_AI_START_COMMAND
	StopCommand     string `yaml:"stop_command"`     // LOCAL_AI_STOP_COMMAND
	StartTimeout    string `yaml:"start_timeout"`    // LOCAL_AI_START_TIMEOUT: seconds (60) or a duration (90s)
	Start           string `yaml:"start"`            // START_LOCAL_AI: auto, true or false
	UseMicroservice string `yaml:"use_microservice"` // USE_LOCAL_AI_MICROSERVICE: true or false
	WatchInterval   string `yaml:"watch_interval"`   // LOCAL_AI_WATCH_INTERVAL, default 15s
	PassEnv         string `yaml:"pass_env"`         // LOCAL_AI_PASS_ENV: variable names for the start and stop commands
}

// byEnv maps each environment variable to the section's value for it and
// the key it came from.
func (s localAISection) byEnv() map[string][2]string {
	return map[string][2]string{
		localai.EnvURL:             {s.URL, "url"},
		localai.EnvHealthPath:      {s.HealthPath, "health_path"},
		localai.EnvOllamaURL:       {s.OllamaURL, "ollama_url"},
		localai.EnvStartCommand:    {s.StartCommand, "start_command"},
		localai.EnvStopCommand:     {s.StopCommand, "stop_command"},
		localai.EnvStartTimeout:    {s.StartTimeout, "start_timeout"},
		localai.EnvStart:           {s.Start, "start"},
		localai.EnvUseMicroservice: {s.UseMicroservice, "use_microservice"},
		envLocalAIWatchInterval:    {s.WatchInterval, "watch_interval"},
		localai.EnvPassEnv:         {s.PassEnv, "pass_env"},
	}
}

type retentionConfig struct {
	Done      duration `yaml:"done"`
	DoneLimit int      `yaml:"done_limit"`
	Dead      duration `yaml:"dead"`
	DeadLimit int      `yaml:"dead_limit"`
}

// duration is a time.Duration written as "25s", "4h" or "180d" in YAML.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = duration(v)
	return nil
}

// parseDuration is time.ParseDuration that also takes whole days ("180d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 25s, 10m, 4h, 180d)", s)
	}
	return d, nil
}

// loadConfigFile reads and checks a configuration file.
func loadConfigFile(path string) (fileConfig, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config: %w", err)
	}
	if err := decodeConfig(b, &fc); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

func decodeConfig(b []byte, fc *fileConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil && !errors.Is(err, io.EOF) {
		if line := badCharLine(b); line > 0 && !strings.Contains(err.Error(), "line ") {
			return fmt.Errorf("line %d: %w", line, err) // the YAML reader names none
		}
		return err
	}
	// The decoder reads one document: refuse another rather than ignore it
	// (an empty one, as a trailing "---" starts, holds nothing).
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n := more.Content; len(n) > 0 && n[0].ShortTag() != "!!null" {
			return fmt.Errorf("line %d: a second YAML document (after ---): the configuration is one document", n[0].Line)
		}
	}
	if fc.MaxArgsBytes < 0 {
		return fmt.Errorf("max_args_bytes must not be negative (got %d)", fc.MaxArgsBytes)
	}
	if fc.Retention.DoneLimit < 0 || fc.Retention.DeadLimit < 0 {
		return fmt.Errorf("retention limits must not be negative")
	}
	switch fc.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("log_format %q: want text or json", fc.LogFormat)
	}
	return nil
}

// badCharLine returns the line of the first character YAML refuses to read
// (not UTF-8, or a control character), 0 when there is none or the text is
// UTF-16 (which the YAML reader decodes first).
func badCharLine(b []byte) int {
	if bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff}) {
		return 0
	}
	line := 1
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		ok := r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
			(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd) || r >= 0x10000
		if !ok || (r == utf8.RuneError && n == 1) {
			return line
		}
		if r == '\n' {
			line++
		}
		b = b[n:]
	}
	return 0
}

// serveSettings parses serve's flags and resolves the settings.
func serveSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "data directory (env CONVEYOR_DATA, default ./var)")
	listen := fs.String("listen", "", "address to listen on (env CONVEYOR_LISTEN, default 127.0.0.1:7420)")
	config := fs.String("config", "", "YAML configuration file (env CONVEYOR_CONFIG): lanes, retention, limits")
	logFormat := fs.String("log-format", "", "log format: text or json (env CONVEYOR_LOG_FORMAT, default text)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	execLog := fs.String("exec-log", "", "diagnostic: append every job's start and end to this file, fsynced (env CONVEYOR_EXEC_LOG)")
	shutdown := fs.String("shutdown-timeout", "", "how long running jobs may finish on SIGTERM (default 25s)")
	var st settings
	st.Storage.addFlags(fs)
	st.Schedule.addFlags(fs)
	st.LocalAI.addFlags(fs)
	st.Jobs.addFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor serve [flags]\n\nRuns the queue, the lanes and the HTTP API until SIGINT or SIGTERM.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return settings{}, flagError(err)
	}
	if fs.NArg() > 0 {
		return settings{}, &usageError{fmt.Sprintf("serve takes no arguments (got %q)", fs.Args())}
	}
	st.ConfigFile = first(*config, getenv("CONVEYOR_CONFIG"))
	var fc fileConfig
	if st.ConfigFile != "" {
		var err error
		if fc, err = loadConfigFile(st.ConfigFile); err != nil {
			return settings{}, err
		}
	}
	st.DataDir = first(*data, getenv("CONVEYOR_DATA"), fc.Data, defaultDataDir)
	st.Listen = first(*listen, getenv("CONVEYOR_LISTEN"), fc.Listen, defaultListen)
	st.LogFormat = first(*logFormat, getenv("CONVEYOR_LOG_FORMAT"), fc.LogFormat, "text")
	if st.LogFormat != "text" && st.LogFormat != "json" {
		return settings{}, &usageError{fmt.Sprintf("--log-format %q: want text or json", st.LogFormat)}
	}
	if err := st.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return settings{}, &usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	st.ExecLog = first(*execLog, getenv("CONVEYOR_EXEC_LOG"))
	st.ShutdownTimeout = cmp.Or(time.Duration(fc.ShutdownTimeout), lanes.DefaultShutdownTimeout)
	if *shutdown != "" {
		d, err := parseDuration(*shutdown)
		if err != nil {
			return settings{}, &usageError{"--shutdown-timeout: " + err.Error()}
		}
		st.ShutdownTimeout = d
	}
	st.Queue = queue.Options{
		MaxArgsBytes:  fc.MaxArgsBytes,
		DoneRetention: time.Duration(fc.Retention.Done),
		DoneLimit:     fc.Retention.DoneLimit,
		DeadRetention: time.Duration(fc.Retention.Dead),
		DeadLimit:     fc.Retention.DeadLimit,
	}
	st.Topology = lanes.DefaultTopology()
	if len(fc.Lanes) > 0 {
		t, err := lanes.FromConfig(fc.Lanes)
		if err != nil {
			return settings{}, fmt.Errorf("config %s: %w", st.ConfigFile, err)
		}
		st.Topology = t
	}
	if err := st.Topology.ApplyEnv(getenv); err != nil {
		return settings{}, err
	}
	if err := errors.Join(
		st.Storage.resolve(fc.storageFile, getenv, st.DataDir),
		st.Failures.resolve(fc.failuresFile),
		st.Schedule.resolve(fc.scheduleFile, getenv, st.DataDir),
		st.LocalAI.resolve(fc.localAIFile, getenv, st.DataDir),
		st.Jobs.resolve(fc.jobsFile, getenv, st.DataDir),
		st.Dashboard.resolve(fc.dashboardFile, getenv),
	); err != nil {
		return settings{}, err
	}
	return st, nil
}

// first returns the first non-empty string.
func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// flagError turns flag's errors into usage errors; --help stays flag.ErrHelp,
// which commands answer with a nil error once the usage is printed.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err.Error()}
}

func newLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// quieter returns a logger for a chatty library: it passes warnings and
// errors, and everything else only when the operator asked for debug logs.
// (litestream logs every monitor it starts at info.)
func quieter(log *slog.Logger, level slog.Level) *slog.Logger {
	if level <= slog.LevelDebug {
		return log
	}
	return slog.New(minLevel{Handler: log.Handler(), min: slog.LevelWarn})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
