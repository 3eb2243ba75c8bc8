package main

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"conveyor/data"
	"conveyor/ui"
)

// Files of the browser pages in the data directory.
const (
	// sessionKeyFile signs the session cookies and CSRF tokens (0600).
	sessionKeyFile = "session.key"
	// revokedFile keeps the logged-out sessions until they expire.
	revokedFile = "sessions.revoked"
)

// dashboardSettings are the browser pages' settings.
type dashboardSettings struct {
	// PasswordHash is an argon2id hash of a password that logs in besides
	// the token ("": the token only).
	PasswordHash string
	// SessionTTL is how long a login lasts (0: ui.DefaultSessionTTL).
	SessionTTL time.Duration
	// SecureCookies marks the session cookie Secure on plain HTTP too
	// (behind a TLS proxy).
	SecureCookies bool
	// Redact are the key patterns masked in args and context; nil: the
	// default list.
	Redact []string
}

func (s *dashboardSettings) resolve(fc dashboardFile, getenv func(string) string) error {
	s.PasswordHash = first(getenv("CONVEYOR_PASSWORD_HASH"), fc.Dashboard.PasswordHash)
	s.SessionTTL = time.Duration(fc.Dashboard.SessionTTL)
	s.SecureCookies = fc.Dashboard.SecureCookies
	if fc.Redact != nil {
		s.Redact = append([]string{}, *fc.Redact...)
	}
	if s.SessionTTL != 0 && s.SessionTTL < time.Minute {
		return fmt.Errorf("config: dashboard.session_ttl must be at least a minute (got %s)", s.SessionTTL)
	}
	if s.PasswordHash != "" {
		if err := ui.CheckPasswordHash(s.PasswordHash); err != nil {
			if getenv("CONVEYOR_PASSWORD_HASH") != "" {
				return fmt.Errorf("CONVEYOR_PASSWORD_HASH: %w", err)
			}
			return fmt.Errorf("config: dashboard.password_hash: %w", err)
		}
	}
	for i, p := range s.Redact {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("config: redact[%d] is empty: a pattern is part of a key, e.g. password", i)
		}
	}
	return nil
}

// dashboardUI hands the pages their parts: the session key kept in the
// data directory, the password, the redaction, and the dashboard's views of
// the local AI health and the replication.
func (a *app) dashboardUI(cfg *ui.Config) error {
	key, err := ui.SessionKeyFile(filepath.Join(a.st.DataDir, sessionKeyFile))
	if err != nil {
		return err
	}
	st := a.st.Dashboard
	cfg.PagesConfig = ui.PagesConfig{
		SessionKey: key, SessionRevokedFile: filepath.Join(a.st.DataDir, revokedFile),
		SessionTTL: cmp.Or(st.SessionTTL, ui.DefaultSessionTTL), SecureCookies: st.SecureCookies,
		PasswordHash: st.PasswordHash, Redact: st.Redact,
		AI:          a.aiView,
		Replication: a.replicationView,
	}
	return nil
}

// aiView is the local AI health for the dashboard.
func (a *app) aiView() ui.AIView {
	st := a.localAI.health.State()
	v := ui.AIView{Required: st.Required, Healthy: st.Healthy, LanesOpen: st.LanesOpen, Reason: st.Reason,
		CheckedAt: st.CheckedAt, Since: st.Since}
	for _, r := range st.Results {
		v.Checks = append(v.Checks, ui.Check{Name: r.Label(), OK: r.OK,
			Detail: fmt.Sprintf("%s in %s", r.Status, r.Latency.Round(time.Millisecond))})
	}
	return v
}

// replicationView is the replication state for the dashboard.
func (a *app) replicationView() ui.ReplicationView {
	f := &a.storage
	v := ui.ReplicationView{Enabled: f.repl != nil}
	if f.repl == nil {
		return v
	}
	v.Replica = data.RedactReplicaURL(a.st.Storage.ReplicaURL)
	v.LastSync = f.repl.LastSync()
	if f.snaps != nil {
		f.snaps.mu.Lock()
		v.QueueSnapshotAt = f.snaps.last
		f.snaps.mu.Unlock()
	}
	return v
}
