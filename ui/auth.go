package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// An authenticator recognises the caller of a request. It answers one of:
// the caller is who it says (authOK), the request carries this
// authenticator's kind of credential but it is wrong (authBad), or the
// request carries no credential of its kind (authAbsent) so the next
// authenticator is asked.
//
// The bearer token is the only authenticator today. The dashboard's cookie
// session will be a second one; because a cookie is sent by the browser on its
// own, that authenticator must also demand a CSRF token on every
// state-changing request before it answers authOK. A bearer token needs none:
// a browser never attaches it by itself.
type authenticator interface {
	authenticate(r *http.Request) authResult
}

type authResult uint8

const (
	authAbsent authResult = iota
	authOK
	authBad
)

// bearer checks `Authorization: Bearer <token>` in constant time: both sides
// are hashed first, so neither the content nor the length of the token leaks
// through timing.
type bearer struct{ sum [32]byte }

func newBearer(token string) bearer { return bearer{sum: sha256.Sum256([]byte(token))} }

func (b bearer) authenticate(r *http.Request) authResult {
	h := r.Header.Get("Authorization")
	if h == "" {
		return authAbsent
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return authAbsent
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(got[:], b.sum[:]) == 1 {
		return authOK
	}
	return authBad
}

// guard lets the request through when the route needs no authentication or an
// authenticator accepts the caller; otherwise it answers 401 with
// WWW-Authenticate.
func (s *Server) guard(auth bool, h httprouter.Handle) httprouter.Handle {
	if !auth {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		bad := false
		for _, a := range s.auth {
			switch a.authenticate(r) {
			case authOK:
				h(w, r, ps)
				return
			case authBad:
				bad = true
			}
		}
		if bad {
			w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor", error="invalid_token"`)
			s.writeError(w, r, &fieldError{kind: errUnauthenticated, Field: "Authorization", Msg: "the token is not valid"})
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor"`)
		s.writeError(w, r, &fieldError{kind: errUnauthenticated, Field: "Authorization", Msg: "authentication required: send Authorization: Bearer <token>"})
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
