package localai

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"conveyor/ops/failures"
	"conveyor/ops/fault"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLocalAIConfigFromEnvDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HealthPath != "/health" || cfg.OllamaURL != "http://127.0.0.1:11434" ||
		cfg.StartTimeout != 60*time.Second || cfg.Start != StartAuto || !cfg.Microservice() {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.Required() {
		t.Error("required without LOCAL_AI_URL")
	}
	if cfg.StartAllowed() {
		t.Error("start allowed in auto mode without a start command")
	}
}

func TestLocalAIConfigFromEnvAllSet(t *testing.T) {
	t.Parallel()
	cfg, err := ConfigFromEnv(envOf(map[string]string{
		EnvURL:             "http://127.0.0.1:8000/ai/",
		EnvHealthPath:      "/healthz",
		EnvOllamaURL:       "http://10.0.0.2:11434",
		EnvStartCommand:    "bin/local_ai_services start",
		EnvStopCommand:     "bin/local_ai_services stop",
		EnvStartTimeout:    "90",
		EnvStart:           "TRUE",
		EnvUseMicroservice: "yes",
		EnvPassEnv:         "HF_HOME CUDA_VISIBLE_DEVICES",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		URL: "http://127.0.0.1:8000/ai/", HealthPath: "/healthz", OllamaURL: "http://10.0.0.2:11434",
		StartCommand: "bin/local_ai_services start", StopCommand: "bin/local_ai_services stop",
		StartTimeout: 90 * time.Second, Start: StartAlways, PassEnv: []string{"HF_HOME", "CUDA_VISIBLE_DEVICES"},
	}
	got := cfg
	got.UseMicroservice = nil
	if !reflect.DeepEqual(got, want) || !cfg.Microservice() {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	if cfg.HealthURL() != "http://127.0.0.1:8000/ai/healthz" {
		t.Errorf("HealthURL = %q", cfg.HealthURL())
	}
	if !cfg.Required() || !cfg.StartAllowed() {
		t.Error("want required and start allowed")
	}
}

func TestLocalAIConfigEnvOverridesFile(t *testing.T) {
	t.Parallel()
	off := false
	file := Config{URL: "http://file:1", StartCommand: "from-file", UseMicroservice: &off, StartTimeout: time.Minute}
	cfg, err := file.WithEnv(envOf(map[string]string{EnvURL: "http://env:2", EnvStartTimeout: "2m30s"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://env:2" || cfg.StartCommand != "from-file" || cfg.Microservice() || cfg.StartTimeout != 150*time.Second {
		t.Errorf("merged = %+v", cfg)
	}
	if cfg.Required() {
		t.Error("USE_LOCAL_AI_MICROSERVICE=false in the file, yet required")
	}
}

func TestLocalAIConfigErrorsNameVariableAndValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env      map[string]string
		name     string
		value    string
		contains string
	}{
		{map[string]string{EnvStart: "maybe"}, EnvStart, "maybe", "want auto, true or false"},
		{map[string]string{EnvStartTimeout: "soon"}, EnvStartTimeout, "soon", "not a duration"},
		{map[string]string{EnvStartTimeout: "-5"}, EnvStartTimeout, "-5", "positive"},
		{map[string]string{EnvStartTimeout: "0s"}, EnvStartTimeout, "0s", "positive"},
		{map[string]string{EnvUseMicroservice: "perhaps"}, EnvUseMicroservice, "perhaps", "want true or false"},
		{map[string]string{EnvURL: "ftp://x"}, EnvURL, "ftp://x", "http"},
		{map[string]string{EnvURL: "://bad"}, EnvURL, "://bad", "not a URL"},
		{map[string]string{EnvURL: "http://"}, EnvURL, "http://", "no host"},
		{map[string]string{EnvURL: "http://h/?x=1"}, EnvURL, "http://h/?x=1", "no query"},
		{map[string]string{EnvOllamaURL: "localhost:11434"}, EnvOllamaURL, "localhost:11434", "http"},
		{map[string]string{EnvHealthPath: "health"}, EnvHealthPath, "health", `start with "/"`},
		{map[string]string{EnvURL: "http://h:1", EnvStart: "true"}, EnvStartCommand, "", "required when START_LOCAL_AI=true"},
	}
	for _, tt := range tests {
		_, err := ConfigFromEnv(envOf(tt.env))
		var se *SettingError
		if !errors.As(err, &se) {
			t.Errorf("%v: error %v, want a *SettingError", tt.env, err)
			continue
		}
		if se.Name != tt.name || se.Value != tt.value {
			t.Errorf("%v: names %s=%q, want %s=%q", tt.env, se.Name, se.Value, tt.name, tt.value)
		}
		if msg := err.Error(); !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.contains) {
			t.Errorf("%v: message %q lacks %q or %q", tt.env, msg, tt.name, tt.contains)
		}
	}
	// START_LOCAL_AI=true without a command is fine when local AI is not
	// required anyway.
	if _, err := ConfigFromEnv(envOf(map[string]string{EnvStart: "true"})); err != nil {
		t.Errorf("START_LOCAL_AI=true without LOCAL_AI_URL: %v", err)
	}
}

func TestRequired(t *testing.T) {
	t.Parallel()
	on, off := true, false
	tests := []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{URL: "http://h:1"}, true},
		{Config{URL: "http://h:1", UseMicroservice: &on}, true},
		{Config{URL: "http://h:1", UseMicroservice: &off}, false},
		{Config{UseMicroservice: &on}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.Required(); got != tt.want {
			t.Errorf("%+v: Required = %v, want %v", tt.cfg, got, tt.want)
		}
	}
}

func TestStartModeUnmarshalText(t *testing.T) {
	t.Parallel()
	var m StartMode
	for in, want := range map[string]StartMode{"auto": StartAuto, "AUTO": StartAuto, "true": StartAlways, "on": StartAlways, "0": StartNever, "false": StartNever} {
		if err := m.UnmarshalText([]byte(in)); err != nil || m != want {
			t.Errorf("UnmarshalText(%q) = %q, %v; want %q", in, m, err, want)
		}
	}
	if err := m.UnmarshalText([]byte("sometimes")); err == nil {
		t.Error("want an error for sometimes")
	}
}

func FuzzLocalAIConfigFromEnv(f *testing.F) {
	f.Add("http://127.0.0.1:8000", "/health", "http://127.0.0.1:11434", "60", "auto", "true")
	f.Add("", "", "", "", "", "")
	f.Add("://", "x", "ftp://", "-1", "maybe", "2")
	f.Add("http://[::1]:80/a b", "/\x00", "https://h/#f", "1h2m", "ON", "off")
	f.Fuzz(func(t *testing.T, url, path, ollama, timeout, start, use string) {
		cfg, err := ConfigFromEnv(envOf(map[string]string{
			EnvURL: url, EnvHealthPath: path, EnvOllamaURL: ollama,
			EnvStartTimeout: timeout, EnvStart: start, EnvUseMicroservice: use,
		}))
		if err != nil {
			var se *SettingError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SettingError", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if cfg.StartTimeout <= 0 {
			t.Fatalf("accepted timeout %v", cfg.StartTimeout)
		}
	})
}

// healthServer is a loopback stand-in for the microservice or Ollama whose
// answers the test sets.
type healthServer struct {
	*httptest.Server
	status atomic.Int32 // answer for every path not in paths
	hits   atomic.Int32
}

func newHealthServer(t *testing.T, status int, paths map[string]int) *healthServer {
	t.Helper()
	hs := &healthServer{}
	hs.status.Store(int32(status))
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.hits.Add(1)
		code := int(hs.status.Load())
		if c, ok := paths[r.URL.Path]; ok {
			code = c
		}
		w.WriteHeader(code)
		if code >= 300 {
			w.Write([]byte("model store broken\n  (try again)"))
		}
	}))
	t.Cleanup(hs.Close)
	return hs
}

func TestCheckLocalAI(t *testing.T) {
	t.Parallel()
	micro := newHealthServer(t, 200, nil)
	ollama := newHealthServer(t, 200, nil)
	cfg := Config{URL: micro.URL, OllamaURL: ollama.URL}
	results := Check(t.Context(), cfg, nil)
	if len(results) != 2 || !AllHealthy(results) {
		t.Fatalf("results = %+v", results)
	}
	if r := results[0]; r.Service != ServiceMicroservice || r.URL != micro.URL+"/health" || r.Status != "200 OK" || r.Err != nil || r.CheckedAt.IsZero() {
		t.Errorf("local_ai result = %+v", r)
	}
	if r := results[1]; r.Service != ServiceOllama || r.URL != ollama.URL+"/api/version" {
		t.Errorf("ollama result = %+v", r)
	}

	if got := Check(t.Context(), Config{}, nil); got != nil {
		t.Errorf("not required, yet checked: %+v", got)
	}
	off := false
	if got := Check(t.Context(), Config{URL: micro.URL, UseMicroservice: &off}, nil); got != nil {
		t.Errorf("microservice off, yet checked: %+v", got)
	}
}

func TestCheckLocalAIOllamaFallsBackToTags(t *testing.T) {
	t.Parallel()
	micro := newHealthServer(t, 200, nil)
	old := newHealthServer(t, 404, map[string]int{"/api/tags": 200})
	r := Check(t.Context(), Config{URL: micro.URL, OllamaURL: old.URL}, nil)[1]
	if !r.OK || r.URL != old.URL+"/api/tags" {
		t.Errorf("fallback result = %+v", r)
	}

	broken := newHealthServer(t, 500, nil)
	r = Check(t.Context(), Config{URL: micro.URL, OllamaURL: broken.URL}, nil)[1]
	if r.OK || r.Status != "500 Internal Server Error: model store broken (try again)" {
		t.Errorf("broken result = %+v", r)
	}
	if failures.Classify(r.Err) != fault.Transient {
		t.Errorf("a 500 from Ollama classifies as %q", failures.Classify(r.Err))
	}
}

func TestCheckLocalAIFailures(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	ollama := newHealthServer(t, 200, nil)

	r := Check(t.Context(), Config{URL: closed, OllamaURL: ollama.URL}, nil)[0]
	if r.OK || !strings.Contains(r.Status, "connection refused") || r.Err == nil {
		t.Errorf("closed port result = %+v", r)
	}
	if !strings.HasPrefix(r.String(), "local AI microservice at "+closed+"/health: ") {
		t.Errorf("String() = %q", r.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	r = Check(ctx, Config{URL: slow.URL, OllamaURL: ollama.URL}, nil)[0]
	if r.OK || !strings.Contains(r.Status, "deadline exceeded") {
		t.Errorf("slow endpoint result = %+v", r)
	}
}

func TestHealthResultJSON(t *testing.T) {
	t.Parallel()
	r := HealthResult{Service: ServiceOllama, URL: "http://h/api/version", OK: true, Status: "200 OK",
		Latency: 1500 * time.Microsecond, CheckedAt: time.Date(2026, 2, 21, 12, 0, 0, 0, time.UTC), Err: errors.New("hidden")}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"ollama","url":"http://h/api/version","ok":true,"status":"200 OK","latency_ms":1.5,"checked_at":"2026-02-21T12:00:00Z"}`
	if string(b) != want {
		t.Errorf("JSON\n got  %s\n want %s", b, want)
	}
}
