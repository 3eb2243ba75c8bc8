package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"conveyor/ops/fault"
)

// AnalyzePath is the local AI service's analysis endpoint, under its URL.
const AnalyzePath = "/analyze"

// LocalAI is the local AI service as the post-analysis pipeline uses it:
// AnalyzePostJob posts an AnalyzeRequest to <url>/analyze, each later step
// a StepRequest to its own path (Steps), and every answer is a JSON object.
// Its answers map to failure kinds as the connector bridge's do: 5xx, 408,
// 429, timeouts and refused connections transient (Retry-After honoured),
// 401 and 403 authentication, any other status runtime.
type LocalAI struct {
	base   string
	client *http.Client
	now    func() time.Time
}

// NewLocalAI returns the client of the local AI service at baseURL (the
// local-AI guardrails' LOCAL_AI_URL).
func NewLocalAI(baseURL string, timeout time.Duration) (*LocalAI, error) {
	if err := CheckURL(baseURL); err != nil {
		return nil, fmt.Errorf("jobs: local AI URL: %w", err)
	}
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	return &LocalAI{base: strings.TrimRight(baseURL, "/"),
		client: &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now:    time.Now}, nil
}

// Analyze asks for the analysis of one post; attempt is the job's.
func (l *LocalAI) Analyze(ctx context.Context, req AnalyzeRequest, attempt int) (json.RawMessage, error) {
	return l.post(ctx, AnalyzePath, req, attempt)
}

// Step posts one pipeline step's request to path (a Step's Path); attempt
// is the job's.
func (l *LocalAI) Step(ctx context.Context, path string, req StepRequest, attempt int) (json.RawMessage, error) {
	return l.post(ctx, path, req, attempt)
}

// Endpoint names the call to path, as the job records show it.
func (l *LocalAI) Endpoint(path string) string { return "POST " + l.base + path }

// post posts body to path and wants a JSON object back.
func (l *LocalAI) post(ctx context.Context, path string, body any, attempt int) (json.RawMessage, error) {
	hdr := http.Header{"X-Conveyor-Attempt": {strconv.Itoa(attempt)}}
	out, err := postJSON(ctx, l.client, l.base+path, "", hdr, body, "", l.now)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0] != '{' {
		return nil, &CallError{Endpoint: l.Endpoint(path), Status: http.StatusOK, Kind: fault.Runtime,
			Message: "the answer is not a JSON object: " + excerpt(out)}
	}
	return out, nil
}
