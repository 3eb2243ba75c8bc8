package localai

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCommandsGetACleanEnvironment: the start and stop commands see the
// base variables, what LOCAL_AI_PASS_ENV names and the local AI settings,
// and nothing else of Conveyor's environment: not its API token, not cloud
// credentials. Not parallel: it sets the process's environment.
func TestCommandsGetACleanEnvironment(t *testing.T) {
	secrets := map[string]string{
		"CONVEYOR_TOKEN":        "secret-token-0123456789abcdef",
		"AWS_SECRET_ACCESS_KEY": "secret-aws-key",
		"LITESTREAM_SECRET":     "secret-litestream",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("CUDA_VISIBLE_DEVICES", "1")
	t.Setenv("HF_HOME", "/models")
	t.Setenv("LANG", "C.UTF-8")

	f := newFixture(t)
	startEnv, stopEnv := filepath.Join(f.dir, "start.env"), filepath.Join(f.dir, "stop.env")
	pidfile := filepath.Join(f.dir, "svc.pid")
	f.cfg.StartCommand = "env > " + shellQuote(startEnv) + "; " + helperCmd(t, "", "-addr", f.addr(), "-pidfile", pidfile) + " >/dev/null 2>&1 &"
	f.cfg.StopCommand = "env > " + shellQuote(stopEnv) + "; kill \"$(cat " + shellQuote(pidfile) + ")\""
	cfg, err := f.cfg.WithEnv(envOf(map[string]string{EnvPassEnv: "CUDA_VISIBLE_DEVICES, HF_HOME"}))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	s := f.supervisor()
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{startEnv, stopEnv} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Split(strings.TrimSpace(string(b)), "\n")
		for k, v := range secrets {
			for _, kv := range env {
				if strings.HasPrefix(kv, k+"=") || strings.Contains(kv, v) {
					t.Errorf("%s: the command got %s", filepath.Base(file), kv)
				}
			}
		}
		for _, want := range []string{"CUDA_VISIBLE_DEVICES=1", "HF_HOME=/models", "LANG=C.UTF-8",
			"LOCAL_AI_URL=" + f.cfg.URL, "OLLAMA_URL=" + f.cfg.OllamaURL} {
			if !slices.Contains(env, want) {
				t.Errorf("%s: %s missing from %q", filepath.Base(file), want, env)
			}
		}
		if p, ok := os.LookupEnv("PATH"); ok && !slices.Contains(env, "PATH="+p) {
			t.Errorf("%s: PATH not passed", filepath.Base(file))
		}
	}
}

func TestPassEnvNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "A", want: []string{"A"}},
		{in: " CUDA_VISIBLE_DEVICES,HF_HOME  _x9 ", want: []string{"CUDA_VISIBLE_DEVICES", "HF_HOME", "_x9"}},
		{in: "A=B", bad: true},
		{in: "9LIVES", bad: true},
		{in: "GOOD, bad-name", bad: true},
	} {
		cfg, err := ConfigFromEnv(envOf(map[string]string{EnvPassEnv: c.in}))
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), EnvPassEnv) {
				t.Errorf("%q: err = %v, want one naming %s", c.in, err, EnvPassEnv)
			}
			continue
		}
		if err != nil || !slices.Equal(cfg.PassEnv, c.want) {
			t.Errorf("%q: %q, %v; want %q", c.in, cfg.PassEnv, err, c.want)
		}
	}
}
