package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"conveyor/ops/fault"
)

// Defaults of BridgeOptions.
const (
	// DefaultCallTimeout bounds one call when the job's context has no
	// earlier deadline.
	DefaultCallTimeout = 30 * time.Second
	// MaxRetryAfter bounds a Retry-After honoured as a snooze.
	MaxRetryAfter = time.Hour
	// maxResultBytes bounds an answer's body.
	maxResultBytes = 16 << 20
	// maxMessageBytes bounds the part of an error answer kept as its message.
	maxMessageBytes = 512
)

// BridgeOptions configure a Bridge.
type BridgeOptions struct {
	// URL receives every call as a POST of the Request as JSON. Required:
	// http or https with a host.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Timeout bounds one call (default DefaultCallTimeout).
	Timeout time.Duration
	// Client is the HTTP client (default: one that follows no redirects).
	Client *http.Client
}

// Bridge is the HTTP connector: it posts each call to the operator's
// connector service and maps the answer. 2xx: done, the JSON body is the
// result. 401/403: authentication. 408, 429, 5xx, timeouts and connection
// errors: transient, with Retry-After (seconds or an HTTP date, at most
// MaxRetryAfter) honoured as a snooze. Any other status: runtime.
type Bridge struct {
	url    string
	token  string
	client *http.Client
	now    func() time.Time
}

// NewBridge checks opts and returns the bridge.
func NewBridge(opts BridgeOptions) (*Bridge, error) {
	if err := CheckURL(opts.URL); err != nil {
		return nil, fmt.Errorf("jobs: connector URL: %w", err)
	}
	if opts.Timeout < 0 {
		return nil, errors.New("jobs: connector timeout must not be negative")
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if client.Timeout == 0 {
		c := *client
		c.Timeout = cmp.Or(opts.Timeout, DefaultCallTimeout)
		client = &c
	}
	return &Bridge{url: opts.URL, token: opts.Token, client: client, now: time.Now}, nil
}

// CheckURL checks a service URL: http or https, with a host.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("is empty")
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http:// or https:// URL", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// Call posts req and maps the answer.
func (b *Bridge) Call(ctx context.Context, req Request) (json.RawMessage, error) {
	return postJSON(ctx, b.client, b.url, b.token, nil, req, req.Class, b.now)
}

// postJSON posts body as JSON to target and maps the answer as Bridge
// documents; what names the call in errors.
func postJSON(ctx context.Context, client *http.Client, target, token string, hdr http.Header, body any, what string, now func() time.Time) (json.RawMessage, error) {
	endpoint := "POST " + target
	if what != "" {
		endpoint += " " + what
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, &CallError{Endpoint: endpoint, Kind: fault.Runtime, Message: "encode the request: " + err.Error()}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return nil, &CallError{Endpoint: endpoint, Kind: fault.Runtime, Message: err.Error()}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	for k, vs := range hdr {
		hreq.Header[k] = vs
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, transportError(ctx, endpoint, err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResultBytes+1))
	if rerr != nil {
		return nil, transportError(ctx, endpoint, rerr)
	}
	st := resp.StatusCode
	if st >= 200 && st < 300 {
		switch {
		case len(data) > maxResultBytes:
			return nil, &CallError{Endpoint: endpoint, Status: st, Kind: fault.Runtime, Message: fmt.Sprintf("the answer is over %d bytes", maxResultBytes)}
		case len(bytes.TrimSpace(data)) == 0:
			return json.RawMessage("null"), nil
		case !json.Valid(data):
			return nil, &CallError{Endpoint: endpoint, Status: st, Kind: fault.Runtime, Message: "the answer is not JSON: " + excerpt(data)}
		}
		return json.RawMessage(bytes.TrimSpace(data)), nil
	}
	ce := &CallError{Endpoint: endpoint, Status: st, Kind: fault.Runtime, Message: answerMessage(resp.Status, data)}
	switch {
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		ce.Kind = fault.Authentication
	case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500:
		ce.Kind = fault.Transient
		ce.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now())
	}
	return nil, ce
}

// transportError maps an error without an answer: the job's own
// cancellation is passed through (the lane decides), everything else
// (timeouts, refused or reset connections) is transient.
func transportError(ctx context.Context, endpoint string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := err.Error()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		msg = "timed out: " + msg
	}
	return &CallError{Endpoint: endpoint, Kind: fault.Transient, Message: msg}
}

// answerMessage is the message of an error answer: its JSON "error" (or
// "message") when it has one, else the start of its text, else the status.
func answerMessage(status string, body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if m := cmp.Or(e.Error, e.Message); m != "" {
			return excerpt([]byte(m))
		}
	}
	if t := bytes.TrimSpace(body); len(t) > 0 {
		return excerpt(t)
	}
	_, text, _ := strings.Cut(status, " ")
	return text
}

// excerpt returns the start of b as one line of valid UTF-8.
func excerpt(b []byte) string {
	if len(b) > maxMessageBytes {
		b = b[:maxMessageBytes]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}

// retryAfter reads a Retry-After value: seconds or an HTTP date, bounded
// by MaxRetryAfter; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
