package ops

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The environment variables that configure local AI (the seed's names).
const (
	EnvLocalAIURL          = "LOCAL_AI_URL"
	EnvLocalAIHealthPath   = "LOCAL_AI_HEALTH_PATH"
	EnvOllamaURL           = "OLLAMA_URL"
	EnvLocalAIStartCommand = "LOCAL_AI_START_COMMAND"
	EnvLocalAIStopCommand  = "LOCAL_AI_STOP_COMMAND"
	EnvLocalAIStartTimeout = "LOCAL_AI_START_TIMEOUT"
	EnvStartLocalAI        = "START_LOCAL_AI"
	EnvUseLocalAI          = "USE_LOCAL_AI_MICROSERVICE"
)

// Defaults for LocalAIConfig's zero fields.
const (
	DefaultLocalAIHealthPath   = "/health"
	DefaultOllamaURL           = "http://127.0.0.1:11434"
	DefaultLocalAIStartTimeout = 60 * time.Second
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
		return &SettingError{Name: EnvStartLocalAI, Value: string(text), Reason: err.Error()}
	}
	*m = v
	return nil
}

// LocalAIConfig configures the local AI services: the microservice the AI
// jobs call and the Ollama server behind it. Zero fields take the defaults
// (see WithDefaults); a zero LocalAIConfig means "nothing configured", which
// is valid and not required.
type LocalAIConfig struct {
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

// LocalAIConfigFromEnv reads the local AI settings from the environment
// (pass os.Getenv) over the defaults. Empty variables count as unset. A bad
// value is a *SettingError naming the variable and the value.
func LocalAIConfigFromEnv(getenv func(string) string) (LocalAIConfig, error) {
	return LocalAIConfig{}.WithEnv(getenv)
}

// WithEnv returns c with every set local AI environment variable applied
// over it (the environment wins over the config file), defaults filled in
// and validated.
func (c LocalAIConfig) WithEnv(getenv func(string) string) (LocalAIConfig, error) {
	get := func(name string) (string, bool) {
		v := strings.TrimSpace(getenv(name))
		return v, v != ""
	}
	if v, ok := get(EnvLocalAIURL); ok {
		c.URL = v
	}
	if v, ok := get(EnvLocalAIHealthPath); ok {
		c.HealthPath = v
	}
	if v, ok := get(EnvOllamaURL); ok {
		c.OllamaURL = v
	}
	if v, ok := get(EnvLocalAIStartCommand); ok {
		c.StartCommand = v
	}
	if v, ok := get(EnvLocalAIStopCommand); ok {
		c.StopCommand = v
	}
	if v, ok := get(EnvLocalAIStartTimeout); ok {
		d, err := parseSeconds(v)
		if err != nil {
			return c, &SettingError{Name: EnvLocalAIStartTimeout, Value: v, Reason: err.Error()}
		}
		c.StartTimeout = d
	}
	if v, ok := get(EnvStartLocalAI); ok {
		m, err := ParseStartMode(v)
		if err != nil {
			return c, &SettingError{Name: EnvStartLocalAI, Value: v, Reason: err.Error()}
		}
		c.Start = m
	}
	if v, ok := get(EnvUseLocalAI); ok {
		b, err := parseBoolWord(strings.ToLower(v))
		if err != nil {
			return c, &SettingError{Name: EnvUseLocalAI, Value: v, Reason: "want true or false"}
		}
		c.UseMicroservice = &b
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c LocalAIConfig) WithDefaults() LocalAIConfig {
	c.HealthPath = cmp.Or(c.HealthPath, DefaultLocalAIHealthPath)
	c.OllamaURL = cmp.Or(c.OllamaURL, DefaultOllamaURL)
	c.StartTimeout = cmp.Or(c.StartTimeout, DefaultLocalAIStartTimeout)
	c.Start = cmp.Or(c.Start, StartAuto)
	return c
}

// Validate checks c (after WithDefaults) and returns a *SettingError for the
// first bad setting.
func (c LocalAIConfig) Validate() error {
	c = c.WithDefaults()
	if c.URL != "" {
		if err := checkBaseURL(c.URL); err != nil {
			return &SettingError{Name: EnvLocalAIURL, Value: c.URL, Reason: err.Error()}
		}
	}
	if !strings.HasPrefix(c.HealthPath, "/") {
		return &SettingError{Name: EnvLocalAIHealthPath, Value: c.HealthPath, Reason: `must start with "/"`}
	}
	if err := checkBaseURL(c.OllamaURL); err != nil {
		return &SettingError{Name: EnvOllamaURL, Value: c.OllamaURL, Reason: err.Error()}
	}
	if c.StartTimeout < 0 {
		return &SettingError{Name: EnvLocalAIStartTimeout, Value: c.StartTimeout.String(), Reason: "must be positive"}
	}
	switch c.Start {
	case StartAuto, StartAlways, StartNever:
	default:
		return &SettingError{Name: EnvStartLocalAI, Value: string(c.Start), Reason: "want auto, true or false"}
	}
	if c.Start == StartAlways && c.Required() && strings.TrimSpace(c.StartCommand) == "" {
		return &SettingError{Name: EnvLocalAIStartCommand, Value: c.StartCommand, Reason: "required when START_LOCAL_AI=true"}
	}
	return nil
}

// Microservice reports USE_LOCAL_AI_MICROSERVICE (true unless set false).
func (c LocalAIConfig) Microservice() bool { return c.UseMicroservice == nil || *c.UseMicroservice }

// Required reports whether local AI is required: the microservice is in use
// and its URL is configured. Only then does serve check (and maybe start) the
// services before the workers; the microservice uses Ollama, so both are
// checked.
func (c LocalAIConfig) Required() bool { return c.Microservice() && c.URL != "" }

// StartAllowed reports whether Conveyor may start the services: START_LOCAL_AI
// is true, or auto with a start command.
func (c LocalAIConfig) StartAllowed() bool {
	c = c.WithDefaults()
	hasCommand := strings.TrimSpace(c.StartCommand) != ""
	return c.Start == StartAlways || (c.Start == StartAuto && hasCommand)
}

// HealthURL is the microservice's health-check URL.
func (c LocalAIConfig) HealthURL() string {
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

// The services CheckLocalAI reports on.
const (
	ServiceLocalAI = "local_ai"
	ServiceOllama  = "ollama"
)

// HealthResult is one service's health check.
type HealthResult struct {
	Service   string        // ServiceLocalAI or ServiceOllama
	URL       string        // the URL last requested
	OK        bool          // a 2xx answer
	Status    string        // "200 OK", "503 Service Unavailable: <body>", or the error
	Latency   time.Duration // of the last request
	Err       error         // nil when OK
	CheckedAt time.Time
}

// Label is the service's name for people: "local AI microservice" or
// "Ollama".
func (r HealthResult) Label() string {
	switch r.Service {
	case ServiceLocalAI:
		return "local AI microservice"
	case ServiceOllama:
		return "Ollama"
	}
	return r.Service
}

// String is "<label> at <url>: <status>".
func (r HealthResult) String() string {
	return fmt.Sprintf("%s at %s: %s", r.Label(), r.URL, r.Status)
}

// MarshalJSON writes the result for `conveyor health --json` and /readyz.
func (r HealthResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Service   string    `json:"service"`
		URL       string    `json:"url"`
		OK        bool      `json:"ok"`
		Status    string    `json:"status"`
		LatencyMS float64   `json:"latency_ms"`
		CheckedAt time.Time `json:"checked_at"`
	}{r.Service, r.URL, r.OK, r.Status, float64(r.Latency.Microseconds()) / 1000, r.CheckedAt})
}

// AllHealthy reports whether there is at least one result and every result
// is OK.
func AllHealthy(results []HealthResult) bool {
	for _, r := range results {
		if !r.OK {
			return false
		}
	}
	return len(results) > 0
}

// HTTPStatusError is a health check's non-2xx answer. Its StatusCode lets
// Classify treat 5xx as transient.
type HTTPStatusError struct {
	Code   int
	Status string // "503 Service Unavailable"
	Body   string // the start of the body, on one line
}

// Error is the status line, then the start of the body.
func (e *HTTPStatusError) Error() string {
	if e.Body == "" {
		return e.Status
	}
	return e.Status + ": " + e.Body
}

// StatusCode returns the HTTP status code.
func (e *HTTPStatusError) StatusCode() int { return e.Code }

// CheckLocalAI checks the local AI services, concurrently, and returns one
// result per service: the microservice (GET URL+HealthPath, 2xx expected)
// and Ollama (GET OllamaURL/api/version, falling back to /api/tags when that
// answers non-2xx). It returns nil when local AI is not required (see
// Required): nothing is checked then. client may be nil (http.DefaultClient).
// Each request is bounded by DefaultHealthCheckTimeout unless ctx ends
// sooner.
func CheckLocalAI(ctx context.Context, cfg LocalAIConfig, client *http.Client) []HealthResult {
	if !cfg.Required() {
		return nil
	}
	cfg = cfg.WithDefaults()
	if client == nil {
		client = http.DefaultClient
	}
	results := make([]HealthResult, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		results[0] = probe(ctx, client, ServiceLocalAI, cfg.HealthURL())
	})
	wg.Go(func() {
		base := strings.TrimRight(cfg.OllamaURL, "/")
		r := probe(ctx, client, ServiceOllama, base+"/api/version")
		var se *HTTPStatusError
		if errors.As(r.Err, &se) {
			r = probe(ctx, client, ServiceOllama, base+"/api/tags")
		}
		results[1] = r
	})
	wg.Wait()
	return results
}

// maxBodySnippet is how much of a failing answer's body a result shows.
const maxBodySnippet = 200

func probe(ctx context.Context, client *http.Client, service, target string) (r HealthResult) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHealthCheckTimeout)
	defer cancel()
	r = HealthResult{Service: service, URL: target, CheckedAt: time.Now()}
	start := time.Now()
	defer func() { r.Latency = time.Since(start) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		r.Err, r.Status = err, err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Err = err
		r.Status = err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			r.Status = ue.Err.Error() // without the repeated method and URL
		}
		if errors.Is(err, context.DeadlineExceeded) {
			r.Status = fmt.Sprintf("no answer within %v: %s", time.Since(start).Round(time.Millisecond), r.Status)
		}
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		r.OK, r.Status = true, resp.Status
		return r
	}
	se := &HTTPStatusError{Code: resp.StatusCode, Status: resp.Status, Body: oneLine(body, maxBodySnippet)}
	r.Err, r.Status = se, se.Error()
	return r
}

// oneLine squeezes b into one line of at most n bytes of valid UTF-8.
func oneLine(b []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
