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

// LocalAI is the local AI service as AnalyzePostJob uses it: POST
// <url>/analyze with an AnalyzeRequest, answered with a JSON object. Its
// answers map to failure kinds as the connector bridge's do.
type LocalAI struct {
	url    string
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
	return &LocalAI{url: strings.TrimRight(baseURL, "/") + AnalyzePath,
		client: &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now:    time.Now}, nil
}

// Analyze asks for the analysis of one post; attempt is the job's.
func (l *LocalAI) Analyze(ctx context.Context, req AnalyzeRequest, attempt int) (json.RawMessage, error) {
	hdr := http.Header{"X-Conveyor-Attempt": {strconv.Itoa(attempt)}}
	out, err := postJSON(ctx, l.client, l.url, "", hdr, req, "", l.now)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0] != '{' {
		return nil, &CallError{Endpoint: "POST " + l.url, Status: http.StatusOK, Kind: fault.Runtime,
			Message: "the analysis is not a JSON object: " + excerpt(out)}
	}
	return out, nil
}
