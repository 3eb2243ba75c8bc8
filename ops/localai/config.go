package localai

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"conveyor/internal/procenv"
)

// The environment variables that configure local AI (the seed's names).
const (
	EnvURL             = "LOCAL_AI_URL"
	EnvHealthPath      = "LOCAL_AI_HEALTH_PATH"
	EnvOllamaURL       = "OLLAMA_URL"
	EnvStartCommand    = "LOCAL_AI_START_COMMAND"
	EnvStopCommand     = "LOCAL_AI_STOP_COMMAND"
	EnvStartTimeout    = "LOCAL_AI_START_TIMEOUT"
	EnvStart           = "START_LOCAL_AI"
	EnvUseMicroservice = "USE_LOCAL_AI_MICROSERVICE"
	// EnvPassEnv names the variables of Conveyor's environment the start
	// and stop commands get besides BaseEnv (comma- or space-separated).
	EnvPassEnv = "LOCAL_AI_PASS_ENV"
)

// BaseEnv are the variables of Conveyor's environment that the start and
// stop commands always get (when set): what a shell script needs to find
// programs and read and write text, none of which carries a credential.
// Everything else — CONVEYOR_TOKEN, cloud credentials — is left out unless
// Config.PassEnv names it. The commands also get LOCAL_AI_URL,
// LOCAL_AI_HEALTH_PATH and OLLAMA_URL as Conveyor resolved them.
var BaseEnv = procenv.Base

// Defaults for Config's zero fields.
const (
	DefaultHealthPath   = "/health"
	DefaultOllamaURL    = "http://127.0.0.1:11434"
	DefaultStartTimeout = 60 * time.Second
	// DefaultHealthCheckTimeout bounds one health request when the caller's
	// context has no earlier deadline.
	DefaultHealthCheckTimeout = 5 * time.Second
)

// StartMode is START_LOCAL_AI: whether Conveyor may start the local AI
// services itself.
type StartMode string

// The start modes.
const (
	// StartAuto (the default) starts the services when they are not healthy
	// and a start command is configured; without one, serve fails fast.
	StartAuto StartMode = "auto"
	// StartAlways starts them when they are not healthy; a start command is
	// required.
	StartAlways StartMode = "true"
	// StartNever never starts them: serve holds the AI lanes closed until
	// they are healthy.
	StartNever StartMode = "false"
)

// ParseStartMode parses START_LOCAL_AI: "auto", or a boolean word (true,
// false, 1, 0, yes, no, on, off; any case).
func ParseStartMode(s string) (StartMode, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == string(StartAuto) {
		return StartAuto, nil
	}
	b, err := parseBoolWord(v)
	if err != nil {
		return "", errors.New("want auto, true or false")
	}
	if b {
		return StartAlways, nil
	}
	return StartNever, nil
}

// UnmarshalText lets a config file say start: auto|true|false.
func (m *StartMode) UnmarshalText(text []byte) error {
	v, err := ParseStartMode(string(text))
	if err != nil {
		return &SettingError{Name: EnvStart, Value: string(text), Reason: err.Error()}
	}
	*m = v
	return nil
}

// Config configures the local AI services: the microservice the AI
// jobs call and the Ollama server behind it. Zero fields take the defaults
// (see WithDefaults); a zero Config means "nothing configured", which
// is valid and not required.
type Config struct {
	// URL is the microservice's base URL (LOCAL_AI_URL). Empty: not
	// configured; serve starts anyway and holds the AI lanes closed.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// HealthPath is appended to URL for the health check
	// (LOCAL_AI_HEALTH_PATH, default /health).
	HealthPath string `yaml:"health_path,omitempty" json:"health_path,omitempty"`
	// OllamaURL is Ollama's base URL (OLLAMA_URL, default
	// http://127.0.0.1:11434), checked with /api/version, falling back to
	// /api/tags.
	OllamaURL string `yaml:"ollama_url,omitempty" json:"ollama_url,omitempty"`
	// StartCommand starts the services (LOCAL_AI_START_COMMAND), run with
	// /bin/sh -c. It may stay in the foreground (Conveyor then owns its
	// process group) or start them in the background and exit 0.
	StartCommand string `yaml:"start_command,omitempty" json:"start_command,omitempty"`
	// StopCommand stops services a background start command started
	// (LOCAL_AI_STOP_COMMAND).
	StopCommand string `yaml:"stop_command,omitempty" json:"stop_command,omitempty"`
	// StartTimeout bounds the wait for health after starting, and a stop
	// command's run (LOCAL_AI_START_TIMEOUT, default 60s).
	StartTimeout time.Duration `yaml:"start_timeout,omitempty" json:"start_timeout,omitempty"`
	// Start is START_LOCAL_AI (default auto).
	Start StartMode `yaml:"start,omitempty" json:"start,omitempty"`
	// UseMicroservice is USE_LOCAL_AI_MICROSERVICE; nil means true.
	UseMicroservice *bool `yaml:"use_microservice,omitempty" json:"use_microservice,omitempty"`
	// PassEnv names the variables of Conveyor's environment passed to the
	// start and stop commands besides BaseEnv (LOCAL_AI_PASS_ENV, e.g.
	// "CUDA_VISIBLE_DEVICES HF_HOME"). The commands get no other variable.
	PassEnv []string `yaml:"pass_env,omitempty" json:"pass_env,omitempty"`
}

// SettingError reports a bad local AI setting, named by its environment
// variable whether it came from there or from the config file.
type SettingError struct {
	Name   string // e.g. START_LOCAL_AI
	Value  string
	Reason string
}

// Error is "NAME=\"value\": reason".
func (e *SettingError) Error() string {
	return fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Reason)
}

// ConfigFromEnv reads the local AI settings from the environment
// (pass os.Getenv) over the defaults. Empty variables count as unset. A bad
// value is a *SettingError naming the variable and the value.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	return Config{}.WithEnv(getenv)
}

// WithEnv returns c with every set local AI environment variable applied
// over it (the environment wins over the config file), defaults filled in
// and validated.
func (c Config) WithEnv(getenv func(string) string) (Config, error) {
	get := func(name string) (string, bool) {
		v := strings.TrimSpace(getenv(name))
		return v, v != ""
	}
	if v, ok := get(EnvURL); ok {
		c.URL = v
	}
	if v, ok := get(EnvHealthPath); ok {
		c.HealthPath = v
	}
	if v, ok := get(EnvOllamaURL); ok {
		c.OllamaURL = v
	}
	if v, ok := get(EnvStartCommand); ok {
		c.StartCommand = v
	}
	if v, ok := get(EnvStopCommand); ok {
		c.StopCommand = v
	}
	if v, ok := get(EnvStartTimeout); ok {
		d, err := parseSeconds(v)
		if err != nil {
			return c, &SettingError{Name: EnvStartTimeout, Value: v, Reason: err.Error()}
		}
		c.StartTimeout = d
	}
	if v, ok := get(EnvStart); ok {
		m, err := ParseStartMode(v)
		if err != nil {
			return c, &SettingError{Name: EnvStart, Value: v, Reason: err.Error()}
		}
		c.Start = m
	}
	if v, ok := get(EnvUseMicroservice); ok {
		b, err := parseBoolWord(strings.ToLower(v))
		if err != nil {
			return c, &SettingError{Name: EnvUseMicroservice, Value: v, Reason: "want true or false"}
		}
		c.UseMicroservice = &b
	}
	if v, ok := get(EnvPassEnv); ok {
		c.PassEnv = procenv.ParseNames(v)
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	c.HealthPath = cmp.Or(c.HealthPath, DefaultHealthPath)
	c.OllamaURL = cmp.Or(c.OllamaURL, DefaultOllamaURL)
	c.StartTimeout = cmp.Or(c.StartTimeout, DefaultStartTimeout)
	c.Start = cmp.Or(c.Start, StartAuto)
	return c
}

// Validate checks c (after WithDefaults) and returns a *SettingError for the
// first bad setting.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.URL != "" {
		if err := checkBaseURL(c.URL); err != nil {
			return &SettingError{Name: EnvURL, Value: c.URL, Reason: err.Error()}
		}
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return &SettingError{Name: EnvHealthPath, Value: c.HealthPath, Reason: `must start with "/"`}
	}
	if err := checkBaseURL(c.OllamaURL); err != nil {
		return &SettingError{Name: EnvOllamaURL, Value: c.OllamaURL, Reason: err.Error()}
	}
	if c.StartTimeout < 0 {
		return &SettingError{Name: EnvStartTimeout, Value: c.StartTimeout.String(), Reason: "must be positive"}
	}
	switch c.Start {
	case StartAuto, StartAlways, StartNever:
	default:
		return &SettingError{Name: EnvStart, Value: string(c.Start), Reason: "want auto, true or false"}
	}
	for _, name := range c.PassEnv {
		if !procenv.ValidName(name) {
			return &SettingError{Name: EnvPassEnv, Value: strings.Join(c.PassEnv, ","),
				Reason: fmt.Sprintf("%q is not a variable name (letters, digits and _, not starting with a digit)", name)}
		}
	}
	if c.Start == StartAlways && c.Required() && strings.TrimSpace(c.StartCommand) == "" {
		return &SettingError{Name: EnvStartCommand, Value: c.StartCommand, Reason: "required when START_LOCAL_AI=true"}
	}
	return nil
}

// Microservice reports USE_LOCAL_AI_MICROSERVICE (true unless set false).
func (c Config) Microservice() bool { return c.UseMicroservice == nil || *c.UseMicroservice }

// Required reports whether local AI is required: the microservice is in use
// and its URL is configured. Only then does serve check (and maybe start) the
// services before the workers; the microservice uses Ollama, so both are
// checked.
func (c Config) Required() bool { return c.Microservice() && c.URL != "" }

// StartAllowed reports whether Conveyor may start the services: START_LOCAL_AI
// is true, or auto with a start command.
func (c Config) StartAllowed() bool {
	c = c.WithDefaults()
	hasCommand := strings.TrimSpace(c.StartCommand) != ""
	return c.Start == StartAlways || (c.Start == StartAuto && hasCommand)
}

// HealthURL is the microservice's health-check URL.
func (c Config) HealthURL() string {
	c = c.WithDefaults()
	return strings.TrimRight(c.URL, "/") + c.HealthPath
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("a base URL takes no query or fragment")
	}
	return nil
}

// parseSeconds accepts a Go duration ("90s", "2m") or whole seconds ("60").
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(24*time.Hour/time.Second) {
			return 0, errors.New("want a positive number of seconds, at most a day")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("not a duration (want e.g. 60 or 90s)")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

func parseBoolWord(v string) (bool, error) {
	switch v {
	case "1", "t", "true", "y", "yes", "on":
		return true, nil
	case "0", "f", "false", "n", "no", "off":
		return false, nil
	}
	return false, errors.New("not a boolean")
}
