package localai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The services Check reports on.
const (
	ServiceMicroservice = "local_ai"
	ServiceOllama       = "ollama"
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
	case ServiceMicroservice:
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

// Check checks the local AI services, concurrently, and returns one
// result per service: the microservice (GET URL+HealthPath, 2xx expected)
// and Ollama (GET OllamaURL/api/version, falling back to /api/tags when that
// answers non-2xx). It returns nil when local AI is not required (see
// Required): nothing is checked then. client may be nil (http.DefaultClient).
// Each request is bounded by DefaultHealthCheckTimeout unless ctx ends
// sooner.
func Check(ctx context.Context, cfg Config, client *http.Client) []HealthResult {
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
		results[0] = probe(ctx, client, ServiceMicroservice, cfg.HealthURL())
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
