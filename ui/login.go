package ui

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
)

// loginData is the login page's own data.
type loginData struct {
	Next     string
	Password bool // a password is configured besides the token
}

// loginPage serves GET /admin/login; a visitor already logged in goes on.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, err := s.sess.check(r); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "", pageData{Title: "Log in", D: loginData{Next: next, Password: s.password != nil}})
}

// login serves POST /admin/login (a form with secret and next): the
// operator's token, or the configured password, gives a session cookie.
// Failed attempts are limited per client address; the form must come from
// this server's own page (Origin), so no other site can log a browser in.
func (s *Server) login(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	fail := func(status int, msg string) {
		s.render(w, r, status, "login", "", pageData{Title: "Log in", Error: msg,
			D: loginData{Next: safeNext(r.PostFormValue("next")), Password: s.password != nil}})
	}
	if err := (cookieAuth{s: s.sess, hosts: s.hosts}).sameOrigin(r); err != nil {
		fail(http.StatusForbidden, err.Error())
		return
	}
	client := clientKey(r)
	if ok, wait := s.limiter.allow(client); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.log.Warn("login refused: too many failed attempts", "client", client)
		fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from your address: try again in %d s.", secs))
		return
	}
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			fail(http.StatusRequestEntityTooLarge, "The form is too large.")
			return
		}
		fail(http.StatusBadRequest, "The form could not be read.")
		return
	}
	secret := r.PostForm.Get("secret")
	ok := secret != "" && s.token.matches(secret)
	if !ok && secret != "" && s.password != nil {
		ok = s.password.verify(secret)
	}
	if !ok {
		s.limiter.failed(client)
		s.log.Warn("login failed", "client", client)
		what := "token"
		if s.password != nil {
			what = "token or password"
		}
		fail(http.StatusUnauthorized, "That "+what+" is not right.")
		return
	}
	_, c, err := s.sess.issue(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	http.SetCookie(w, c)
	s.log.Info("login", "client", client)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// logout serves POST /admin/logout: the session ends for good (its cookie
// is refused from now on, not only deleted) and the browser goes to the
// login page.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if sess := sessionOf(r); sess != nil {
		if err := s.sess.revoke(*sess); err != nil {
			s.log.Error("logout: keep the revocation", "err", err)
		}
	}
	http.SetCookie(w, s.sess.cookie(r, "", time.Time{}))
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}
