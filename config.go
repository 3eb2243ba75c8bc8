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

	"go.yaml.in/yaml/v3"

	"conveyor/lanes"
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

	// The features' own settings (app_failures.go, app_schedule.go, app_localai.go).
	Failures failureSettings
	Schedule scheduleSettings
	LocalAI  localAISettings
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

	// The features' own keys, at the top level of the file.
	failuresFile `yaml:",inline"`
	scheduleFile `yaml:",inline"`
	localAIFile  `yaml:",inline"`
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
		return err
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

// serveFlags parses serve's flags and resolves the settings.
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
	st.Failures.addFlags(fs)
	st.Schedule.addFlags(fs)
	st.LocalAI.addFlags(fs)
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
		st.Failures.resolve(fc.failuresFile, getenv, st.DataDir),
		st.Schedule.resolve(fc.scheduleFile, getenv, st.DataDir),
		st.LocalAI.resolve(fc.localAIFile, getenv, st.DataDir),
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
