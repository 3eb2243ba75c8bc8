package ui

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
)

// AccountsConfig is the accounts' part of Config.
type AccountsConfig struct {
	// AccountsDB serves the /api/v1/accounts endpoints and a job's outside
	// calls and account actions (/api/v1/jobs/{id}/records). Nil answers
	// them with 503.
	AccountsDB *data.DB
	// AccountsChanged is called after an account was created or changed
	// (the app publishes profiles_table_changed). Optional.
	AccountsChanged func()
}

// Bounds of the accounts endpoints.
const (
	defaultAccountsPage = 50
	maxAccountsPage     = 1000
	maxUsernameLen      = 64
)

// accountsRoutes are the accounts endpoints:
//
//	GET   /api/v1/accounts?cursor=&size=  → 200 {"accounts":[…],"next":"<cursor>"|null}
//	POST  /api/v1/accounts                → 201 the account
//	PATCH /api/v1/accounts/{id}           → 200 the account
func (s *Server) accountsRoutes() []Route {
	api := func(method, path string, h endpointFunc) Route {
		return Route{Method: method, Path: path, Auth: true, handle: s.endpoint(h)}
	}
	return []Route{
		api(http.MethodGet, "/api/v1/accounts", s.listAccounts),
		api(http.MethodPost, "/api/v1/accounts", s.createAccount),
		api(http.MethodPatch, "/api/v1/accounts/:id", s.updateAccount),
	}
}

// accountJSON is an account as the API shows it: its switches (one per
// orchestrator of the job catalog) and its continuous-processing state.
// The /admin/accounts page is built on exactly this shape.
type accountJSON struct {
	ID                   int64  `json:"id"`
	Username             string `json:"username"`
	Enabled              bool   `json:"enabled"`
	ContinuousProcessing bool   `json:"continuous_processing"`
	StoryAutoReply       bool   `json:"story_auto_reply"`
	FeedAutoEngagement   bool   `json:"feed_auto_engagement"`
	ProfileScan          bool   `json:"profile_scan"`
	FollowGraphSync      bool   `json:"follow_graph_sync"`
	AvatarSync           bool   `json:"avatar_sync"`
	ProfileRefresh       bool   `json:"profile_refresh"`
	NextFeedSyncAt       stamp  `json:"next_feed_sync_at"`
	LastFeedCaptureAt    stamp  `json:"last_feed_capture_at"`
	LastSyncAt           stamp  `json:"last_sync_at"`
	LastSyncResult       string `json:"last_sync_result"`
	CreatedAt            stamp  `json:"created_at"`
	UpdatedAt            stamp  `json:"updated_at"`
}

func accountView(a *data.Account) accountJSON {
	return accountJSON{
		ID: a.ID, Username: a.Username, Enabled: !a.Disabled,
		ContinuousProcessing: a.ContinuousProcessing, StoryAutoReply: a.StoryAutoReply,
		FeedAutoEngagement: a.FeedAutoEngagement, ProfileScan: a.ProfileScan, FollowGraphSync: a.FollowGraphSync,
		AvatarSync: a.AvatarSync, ProfileRefresh: a.ProfileRefresh,
		NextFeedSyncAt: stamp(a.NextFeedSyncAt), LastFeedCaptureAt: stamp(a.LastFeedCaptureAt),
		LastSyncAt: stamp(a.LastSyncAt), LastSyncResult: a.LastSyncResult,
		CreatedAt: stamp(a.CreatedAt), UpdatedAt: stamp(a.UpdatedAt),
	}
}

// accountsJSON answers GET /api/v1/accounts; next is null on the last page.
type accountsJSON struct {
	Accounts []accountJSON `json:"accounts"`
	Next     *string       `json:"next"`
}

// accountRequest is the body of POST and PATCH: every field optional but
// username on POST. Switches left out are off on POST and unchanged on
// PATCH; enabled defaults to true on POST.
type accountRequest struct {
	Username             *string `json:"username"`
	Enabled              *bool   `json:"enabled"`
	ContinuousProcessing *bool   `json:"continuous_processing"`
	StoryAutoReply       *bool   `json:"story_auto_reply"`
	FeedAutoEngagement   *bool   `json:"feed_auto_engagement"`
	ProfileScan          *bool   `json:"profile_scan"`
	FollowGraphSync      *bool   `json:"follow_graph_sync"`
	AvatarSync           *bool   `json:"avatar_sync"`
	ProfileRefresh       *bool   `json:"profile_refresh"`
}

// apply sets what req gives on a.
func (req accountRequest) apply(a *data.Account) error {
	if req.Username != nil {
		u := strings.TrimSpace(*req.Username)
		if err := checkUsername(u); err != nil {
			return err
		}
		a.Username = u
	}
	if req.Enabled != nil {
		a.Disabled = !*req.Enabled
	}
	for sw, v := range map[data.Switch]*bool{
		data.SwitchContinuousProcessing: req.ContinuousProcessing, data.SwitchStoryAutoReply: req.StoryAutoReply,
		data.SwitchFeedAutoEngagement: req.FeedAutoEngagement, data.SwitchProfileScan: req.ProfileScan,
		data.SwitchFollowGraphSync: req.FollowGraphSync, data.SwitchAvatarSync: req.AvatarSync,
		data.SwitchProfileRefresh: req.ProfileRefresh,
	} {
		if v != nil {
			*a.Switch(sw) = *v
		}
	}
	return nil
}

// checkUsername accepts 1 to 64 printable characters without spaces.
func checkUsername(u string) error {
	if u == "" {
		return invalid("username", "is required")
	}
	if len(u) > maxUsernameLen || !utf8.ValidString(u) {
		return invalid("username", "must be valid UTF-8 of at most %d bytes", maxUsernameLen)
	}
	for _, r := range u {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return invalid("username", "may not hold spaces or unprintable characters")
		}
	}
	return nil
}

func (s *Server) accountsDB() (*data.DB, error) {
	if s.cfg.AccountsDB == nil {
		return nil, &fieldError{kind: errUnavailable, Msg: "accounts are not served by this server"}
	}
	return s.cfg.AccountsDB, nil
}

// listAccounts serves GET /api/v1/accounts: accounts by ascending id;
// cursor is a previous page's next.
func (s *Server) listAccounts(r *http.Request, _ httprouter.Params) (int, any, error) {
	db, err := s.accountsDB()
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	for k := range q {
		if k != "cursor" && k != "size" {
			return 0, nil, malformed(k, "unknown parameter (want cursor, size)")
		}
	}
	size := defaultAccountsPage
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAccountsPage {
			return 0, nil, invalid("size", "must be 1..%d (got %q)", maxAccountsPage, v)
		}
		size = n
	}
	var after int64
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, nil, malformed("cursor", "bad cursor: pass back the next value of a previous page")
		}
		after = n
	}
	accts, err := db.AccountsAfter(r.Context(), after, size+1)
	if err != nil {
		return 0, nil, dataError(err, "account")
	}
	out := accountsJSON{Accounts: make([]accountJSON, 0, min(len(accts), size))}
	if len(accts) > size {
		accts = accts[:size]
		next := strconv.FormatInt(accts[size-1].ID, 10)
		out.Next = &next
	}
	for _, a := range accts {
		out.Accounts = append(out.Accounts, accountView(a))
	}
	return http.StatusOK, out, nil
}

// createAccount serves POST /api/v1/accounts.
func (s *Server) createAccount(r *http.Request, _ httprouter.Params) (int, any, error) {
	db, err := s.accountsDB()
	if err != nil {
		return 0, nil, err
	}
	var req accountRequest
	if err := decodeBody(r.Body, &req, ""); err != nil {
		return 0, nil, err
	}
	if req.Username == nil {
		return 0, nil, invalid("username", "is required")
	}
	a := &data.Account{}
	if err := req.apply(a); err != nil {
		return 0, nil, err
	}
	if err := db.CreateAccount(r.Context(), a); err != nil {
		return 0, nil, accountError(err, a.Username)
	}
	s.accountsChanged()
	return http.StatusCreated, accountView(a), nil
}

// updateAccount serves PATCH /api/v1/accounts/{id}.
func (s *Server) updateAccount(r *http.Request, ps httprouter.Params) (int, any, error) {
	db, err := s.accountsDB()
	if err != nil {
		return 0, nil, err
	}
	id, err := strconv.ParseInt(ps.ByName("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, malformed("id", "want a positive account id (got %q)", ps.ByName("id"))
	}
	var req accountRequest
	if err := decodeBody(r.Body, &req, ""); err != nil {
		return 0, nil, err
	}
	a, err := db.AccountByID(r.Context(), id)
	if err != nil {
		return 0, nil, dataError(err, "account")
	}
	if err := req.apply(a); err != nil {
		return 0, nil, err
	}
	if err := db.UpdateAccount(r.Context(), a); err != nil {
		return 0, nil, accountError(err, a.Username)
	}
	s.accountsChanged()
	return http.StatusOK, accountView(a), nil
}

func accountError(err error, username string) error {
	if errors.Is(err, data.ErrConflict) {
		return &fieldError{kind: errConflict, Field: "username", Msg: "another account has the username " + strconv.Quote(username)}
	}
	return dataError(err, "account")
}

func (s *Server) accountsChanged() {
	if s.cfg.AccountsChanged != nil {
		s.cfg.AccountsChanged()
	}
}
