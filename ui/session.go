package ui

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"conveyor/internal/durable"
)

// Browser sessions are stateless: the cookie carries its expiry and a random
// id, signed with HMAC-SHA256 under the session key, so nothing is stored
// per session. A session's CSRF token is the HMAC of its id under the same
// key: a page embeds it, scripts send it back in X-CSRF-Token, and no other
// site can read or forge it. Logging out adds the id to a small revocation
// list (kept in a file when Config.SessionRevokedFile is set, so that a
// restart does not bring a logged-out cookie back), pruned as entries expire.

// Session defaults.
const (
	// SessionCookie is the session cookie's name.
	SessionCookie = "conveyor_session"
	// DefaultSessionTTL is how long a login lasts.
	DefaultSessionTTL = 12 * time.Hour
	// MinSessionKeyLen is the shortest session key New accepts.
	MinSessionKeyLen = 32
	// csrfHeader carries the CSRF token on scripted requests; csrfField
	// in forms.
	csrfHeader = "X-CSRF-Token"
	csrfField  = "csrf_token"
	// sessionVersion prefixes every cookie value, so the format can change.
	sessionVersion = "v1"
	// maxRevoked bounds the revocation list; the oldest go first.
	maxRevoked = 10_000
)

// sessions signs and checks session cookies and CSRF tokens.
type sessions struct {
	key     []byte
	ttl     time.Duration
	now     func() time.Time
	secure  bool // Secure cookies even on plain HTTP (behind a TLS proxy)
	revFile string

	mu      sync.Mutex
	revoked map[string]time.Time // session id → its expiry
}

func newSessions(key []byte, ttl time.Duration, now func() time.Time, secure bool, revFile string) (*sessions, error) {
	s := &sessions{key: key, ttl: ttl, now: now, secure: secure, revFile: revFile, revoked: map[string]time.Time{}}
	if revFile != "" {
		if err := s.loadRevoked(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// session is a verified session.
type session struct {
	id      string
	expires time.Time
}

func (s *sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(strings.Join(parts, "|")))
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding.Strict() // one spelling per value

// issue makes a new session and its cookie.
func (s *sessions) issue(r *http.Request) (session, *http.Cookie, error) {
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return session{}, nil, err
	}
	sess := session{id: b64.EncodeToString(raw), expires: s.now().Add(s.ttl).Truncate(time.Second)}
	exp := strconv.FormatInt(sess.expires.Unix(), 10)
	val := sessionVersion + "." + exp + "." + sess.id + "." + b64.EncodeToString(s.mac("session", sessionVersion, exp, sess.id))
	return sess, s.cookie(r, val, sess.expires), nil
}

// cookie builds the session cookie: HttpOnly, SameSite=Strict, Path=/,
// Secure over TLS.
func (s *sessions) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secure || r.TLS != nil}
	if value == "" {
		c.MaxAge = -1
		c.Expires = time.Unix(1, 0)
	} else {
		c.Expires = expires
		c.MaxAge = int(time.Until(expires).Seconds())
		if c.MaxAge < 1 {
			c.MaxAge = 1
		}
	}
	return c
}

// errNoSession, errBadSession: the request carries no session cookie, or
// one that is forged, damaged, expired or logged out.
var (
	errNoSession  = errors.New("no session")
	errBadSession = errors.New("the session is not valid (expired, logged out, or from another server): log in again")
)

// check verifies the request's session cookie.
func (s *sessions) check(r *http.Request) (session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return session{}, errNoSession
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 || parts[0] != sessionVersion {
		return session{}, errBadSession
	}
	sig, err := b64.DecodeString(parts[3])
	if err != nil || !hmac.Equal(sig, s.mac("session", parts[0], parts[1], parts[2])) {
		return session{}, errBadSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return session{}, errBadSession
	}
	sess := session{id: parts[2], expires: time.Unix(exp, 0)}
	if !s.now().Before(sess.expires) {
		return session{}, errBadSession
	}
	s.mu.Lock()
	_, revoked := s.revoked[sess.id]
	s.mu.Unlock()
	if revoked {
		return session{}, errBadSession
	}
	return sess, nil
}

// csrfToken is the session's CSRF token.
func (s *sessions) csrfToken(sess session) string {
	return b64.EncodeToString(s.mac("csrf", sess.id))
}

// checkCSRF compares a token from the request with the session's, in
// constant time.
func (s *sessions) checkCSRF(sess session, token string) bool {
	got, err := b64.DecodeString(token)
	return err == nil && hmac.Equal(got, s.mac("csrf", sess.id))
}

// revoke logs a session out for good (until it would have expired anyway).
func (s *sessions) revoke(sess session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, exp := range s.revoked {
		if !now.Before(exp) {
			delete(s.revoked, id)
		}
	}
	for len(s.revoked) >= maxRevoked {
		var oldest string
		for id, exp := range s.revoked {
			if oldest == "" || exp.Before(s.revoked[oldest]) {
				oldest = id
			}
		}
		delete(s.revoked, oldest)
	}
	s.revoked[sess.id] = sess.expires
	return s.saveRevokedLocked()
}

// loadRevoked reads the revocation file: one "<id> <expiry unix>" a line.
func (s *sessions) loadRevoked() error {
	b, err := os.ReadFile(s.revFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ui: session revocations: %w", err)
	}
	now := s.now()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		id, exp, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || id == "" {
			continue // a damaged line only forgets one logout
		}
		if t := time.Unix(n, 0); now.Before(t) {
			s.revoked[id] = t
		}
	}
	return nil
}

func (s *sessions) saveRevokedLocked() error {
	if s.revFile == "" {
		return nil
	}
	var buf bytes.Buffer
	for id, exp := range s.revoked {
		fmt.Fprintf(&buf, "%s %d\n", id, exp.Unix())
	}
	return durable.WriteFile(s.revFile, buf.Bytes(), 0o600)
}

// loginLimiter limits failed logins per client address: after burst
// failures, one more attempt is allowed every interval. Successful logins
// are not counted; attempts while limited are refused before any
// comparison.
type loginLimiter struct {
	burst    int
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	clients map[string]*bucket
}

// bucket is a client's failed-attempt allowance: tokens refill one per
// interval up to burst.
type bucket struct {
	tokens float64
	at     time.Time
}

// Defaults of the login limiter: five failures at once, then one a
// per 12 s (five a minute).
const (
	defaultLoginBurst    = 5
	defaultLoginInterval = 12 * time.Second
	maxLimiterClients    = 4096
)

func newLoginLimiter(burst int, interval time.Duration, now func() time.Time) *loginLimiter {
	return &loginLimiter{burst: burst, interval: interval, now: now, clients: map[string]*bucket{}}
}

// clientKey is the address a request comes from, without the port.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (l *loginLimiter) refill(key string) *bucket {
	now := l.now()
	b := l.clients[key]
	if b == nil {
		if len(l.clients) >= maxLimiterClients {
			for k, o := range l.clients { // forget the full ones first
				if l.level(o, now) >= float64(l.burst) {
					delete(l.clients, k)
				}
			}
		}
		b = &bucket{tokens: float64(l.burst), at: now}
		l.clients[key] = b
	}
	b.tokens, b.at = l.level(b, now), now
	return b
}

func (l *loginLimiter) level(b *bucket, now time.Time) float64 {
	return min(float64(l.burst), b.tokens+float64(now.Sub(b.at))/float64(l.interval))
}

// allow reports whether the client may try now, and if not, how long to
// wait.
func (l *loginLimiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.interval))
}

// failed spends one of the client's attempts.
func (l *loginLimiter) failed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key)
	b.tokens = max(0, b.tokens-1)
}

// SessionKeyFile returns the session key kept in path, making it (32
// random bytes, mode 0600) on first use. A key readable by group or others
// is refused.
func SessionKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < MinSessionKeyLen {
			return nil, fmt.Errorf("session key %s is damaged: delete it to make a new one (everyone logs in again)", path)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("session key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		return key, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("session key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Durably: a power cut must not leave an empty key that stops the start.
	if err := durable.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return key, nil
}
