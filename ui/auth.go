package ui

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// An authenticator recognises the caller of a request. It answers one of:
// the caller is who it says (authOK), the request carries this
// authenticator's kind of credential but it is wrong (authBad), the
// credential is right but the request may not be made with it
// (authForbidden: a cookie-authenticated change without its CSRF token or
// from another origin), or the request carries no credential of its kind
// (authAbsent) so the next authenticator is asked.
//
// The bearer token is asked first, then the browser session. Because a
// browser sends its cookie on its own, the session authenticator demands a
// CSRF token and a same-origin Origin on every state-changing request
// before it answers authOK. A bearer token needs neither: a browser never
// attaches it by itself.
type authenticator interface {
	authenticate(r *http.Request) authOutcome
}

type authResult uint8

const (
	authAbsent authResult = iota
	authOK
	authBad
	authForbidden
)

// authOutcome is an authenticator's answer; err says what was wrong
// (authBad, authForbidden), and sess is the browser session (authOK by
// cookie).
type authOutcome struct {
	result authResult
	err    error
	sess   *session
}

// bearer checks `Authorization: Bearer <token>` in constant time: both sides
// are hashed first, so neither the content nor the length of the token leaks
// through timing.
type bearer struct{ sum [32]byte }

func newBearer(token string) bearer { return bearer{sum: sha256.Sum256([]byte(token))} }

// matches compares a presented token with the bearer's in constant time.
func (b bearer) matches(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], b.sum[:]) == 1
}

func (b bearer) authenticate(r *http.Request) authOutcome {
	h := r.Header.Get("Authorization")
	if h == "" {
		return authOutcome{}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return authOutcome{}
	}
	if b.matches(strings.TrimSpace(tok)) {
		return authOutcome{result: authOK}
	}
	return authOutcome{result: authBad, err: &fieldError{kind: errUnauthenticated, Field: "Authorization", Msg: "the token is not valid"}}
}

// cookieAuth authenticates browser sessions (session.go) and guards their
// state-changing requests against cross-site forgery.
type cookieAuth struct {
	s     *sessions
	hosts map[string]bool
}

// safeMethod reports whether a request with this method changes nothing.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (c cookieAuth) authenticate(r *http.Request) authOutcome {
	sess, err := c.s.check(r)
	switch {
	case errors.Is(err, errNoSession):
		return authOutcome{}
	case err != nil:
		return authOutcome{result: authBad, err: &fieldError{kind: errUnauthenticated, Field: SessionCookie, Msg: err.Error()}}
	}
	if !safeMethod(r.Method) {
		if err := c.sameOrigin(r); err != nil {
			return authOutcome{result: authForbidden, err: err}
		}
		tok := r.Header.Get(csrfHeader)
		if tok == "" && isForm(r) {
			tok = r.PostFormValue(csrfField)
		}
		if tok == "" {
			return authOutcome{result: authForbidden, err: &fieldError{kind: errForbidden, Field: csrfHeader,
				Msg: "a change made with the session cookie needs the page's CSRF token: reload the page and try again"}}
		}
		if !c.s.checkCSRF(sess, tok) {
			return authOutcome{result: authForbidden, err: &fieldError{kind: errForbidden, Field: csrfHeader,
				Msg: "the CSRF token does not belong to this session: reload the page and try again"}}
		}
	}
	return authOutcome{result: authOK, sess: &sess}
}

// sameOrigin refuses a state-changing request that a browser says comes
// from another site: its Origin must be one of the served hosts (and the
// fetch metadata, when sent, must not say cross-site).
func (c cookieAuth) sameOrigin(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return &fieldError{kind: errForbidden, Field: "Origin", Msg: "refused: the request comes from another site"}
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return &fieldError{kind: errForbidden, Field: "Origin", Msg: "refused: a change made with the session cookie must carry the page's Origin"}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" || !c.hosts[strings.ToLower(u.Host)] {
		return &fieldError{kind: errForbidden, Field: "Origin", Msg: fmt.Sprintf("refused: origin %q is not this server", origin)}
	}
	return nil
}

// isForm reports whether the body is an HTML form.
func isForm(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.TrimSpace(strings.ToLower(ct)) == "application/x-www-form-urlencoded"
}

type ctxKey int

const ctxSession ctxKey = iota

// sessionOf returns the browser session that authenticated r, or nil when
// r was authenticated otherwise (bearer token) or not at all.
func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(ctxSession).(*session)
	return s
}

// authenticate asks each authenticator in turn.
func (s *Server) authenticate(r *http.Request) authOutcome {
	var bad authOutcome
	for _, a := range s.auth {
		switch out := a.authenticate(r); out.result {
		case authOK, authForbidden:
			return out
		case authBad:
			if bad.result == authAbsent {
				bad = out
			}
		}
	}
	return bad
}

// guard lets the request through when the route needs no authentication or
// an authenticator accepts the caller. Otherwise an API route answers 401
// with WWW-Authenticate (403 for a forbidden cookie request), and a page
// sends the browser to the login page: at once, without reading the body
// (refuse, body.go).
func (s *Server) guard(rt Route, h httprouter.Handle) httprouter.Handle {
	if !rt.Auth {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		out := s.authenticate(r)
		switch out.result {
		case authOK:
			if out.sess != nil {
				r = r.WithContext(context.WithValue(r.Context(), ctxSession, out.sess))
			}
			h(w, r, ps)
			return
		case authForbidden:
			s.refuse(w, r, out.err)
			return
		}
		if rt.Page && safeMethod(r.Method) {
			s.dropBody(w, r)
			s.toLogin(w, r)
			return
		}
		if out.result == authBad {
			w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor", error="invalid_token"`)
			s.refuse(w, r, out.err)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor"`)
		s.refuse(w, r, &fieldError{kind: errUnauthenticated, Field: "Authorization", Msg: "authentication required: send Authorization: Bearer <token>, or log in at /admin/login"})
	}
}

// HostsFor returns the Host header values a server listening on listenAddr
// should accept (Config.AllowedHosts). Pass the listener's actual address
// (ln.Addr().String()), so that port 0 has become the real port.
//
//   - A loopback address or "localhost" gives every loopback spelling with the
//     port: 127.0.0.1:P, localhost:P, [::1]:P (and the address itself).
//   - An unspecified address (":P", "0.0.0.0:P", "[::]:P") gives the same
//     loopback spellings only: the names other machines use to reach this one
//     cannot be known here, so the operator must add them.
//   - Any other address gives itself.
//
// On port 80 the spellings without a port are added too, since browsers leave
// the default port out of Host. An address that does not parse gives nil.
func HostsFor(listenAddr string) []string {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil || port == "" {
		return nil
	}
	host = strings.ToLower(host)
	var names []string
	loopback := []string{"127.0.0.1", "localhost", "::1"}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		names = loopback
	case host == "localhost" || (ip != nil && ip.IsLoopback()):
		names = append(slices.Clone(loopback), host)
	default:
		names = []string{host}
	}
	var out []string
	for _, n := range names {
		hp := net.JoinHostPort(n, port)
		if !slices.Contains(out, hp) {
			out = append(out, hp)
		}
		if port == "80" {
			bare := n
			if strings.Contains(n, ":") {
				bare = "[" + n + "]"
			}
			if !slices.Contains(out, bare) {
				out = append(out, bare)
			}
		}
	}
	return out
}
