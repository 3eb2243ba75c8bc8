package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const accountsUsage = `usage: conveyor accounts <add|list|disable|enable> [flags] [args]

  add USERNAME [--switches a,b,… | --all] [--disabled]
                 add an account (switches: continuous_processing,
                 story_auto_reply, feed_auto_engagement, profile_scan,
                 follow_graph_sync, avatar_sync, profile_refresh)
  list [--json]  list every account with its switches and feed-sync state
  disable ID|USERNAME
                 stop fanning anything out to an account
  enable ID|USERNAME

They talk to a running server (--server, env CONVEYOR_URL) with the token of
CONVEYOR_TOKEN or the data directory (--data).

flags:
`

// accountSwitches are the switch names the API takes, in column order.
var accountSwitches = []string{"continuous_processing", "story_auto_reply", "feed_auto_engagement", "profile_scan",
	"follow_graph_sync", "avatar_sync", "profile_refresh"}

// accountRow is the part of the API's account the CLI shows.
type accountRow struct {
	ID             int64          `json:"id"`
	Username       string         `json:"username"`
	Enabled        bool           `json:"enabled"`
	NextFeedSyncAt *time.Time     `json:"next_feed_sync_at"`
	LastSyncResult string         `json:"last_sync_result"`
	Raw            map[string]any `json:"-"` // every key, for the switches
}

// cmdAccounts runs "conveyor accounts …".
func cmdAccounts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, accountsUsage)
			return &usageError{"accounts: name a subcommand (add, list, disable, enable)"}
		}
		fmt.Fprint(stdout, accountsUsage)
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("accounts "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "server URL (env CONVEYOR_URL, default http://127.0.0.1:7420)")
	data := fs.String("data", "", "data directory holding the token when CONVEYOR_TOKEN is unset (env CONVEYOR_DATA, default ./var)")
	switches := fs.String("switches", "", "add: comma-separated switches to turn on")
	all := fs.Bool("all", false, "add: turn every switch on")
	disabled := fs.Bool("disabled", false, "add: add the account disabled")
	asJSON := fs.Bool("json", false, "list: print the API's JSON")
	fs.Usage = func() { fmt.Fprint(stderr, accountsUsage); fs.PrintDefaults() }
	// Allow the positional argument before the flags.
	var pos []string
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return flagError(err)
	}
	pos = append(pos, fs.Args()...)
	switch sub {
	case "add", "disable", "enable":
		if len(pos) != 1 {
			fs.Usage()
			return &usageError{fmt.Sprintf("accounts %s takes one account (got %d arguments)", sub, len(pos))}
		}
	case "list":
		if len(pos) != 0 {
			return &usageError{fmt.Sprintf("accounts list takes no arguments (got %q)", pos)}
		}
	default:
		fs.Usage()
		return &usageError{fmt.Sprintf("accounts: unknown subcommand %q (want add, list, disable or enable)", sub)}
	}
	body := map[string]any{}
	if sub == "add" {
		body["username"] = pos[0]
		if *disabled {
			body["enabled"] = false
		}
		on := map[string]bool{}
		if *all {
			for _, s := range accountSwitches {
				on[s] = true
			}
		}
		for _, s := range strings.Split(*switches, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if !slices.Contains(accountSwitches, s) {
				return &usageError{fmt.Sprintf("--switches: unknown switch %q (want %s)", s, strings.Join(accountSwitches, ", "))}
			}
			on[s] = true
		}
		for s := range on {
			body[s] = true
		}
	}
	c, err := newClient(*server, *data, getenv)
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		var a json.RawMessage
		if err := c.do(ctx, http.MethodPost, "/api/v1/accounts", body, &a); err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(a))
		return nil
	case "list":
		accts, raws, err := listAccounts(ctx, c)
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.MarshalIndent(map[string]any{"accounts": raws}, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return nil
		}
		printAccounts(stdout, accts)
		return nil
	default: // disable, enable
		id, err := accountID(ctx, c, pos[0])
		if err != nil {
			return err
		}
		var a json.RawMessage
		if err := c.do(ctx, http.MethodPatch, "/api/v1/accounts/"+strconv.FormatInt(id, 10), map[string]bool{"enabled": sub == "enable"}, &a); err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(a))
		return nil
	}
}

// listAccounts reads every page of GET /api/v1/accounts.
func listAccounts(ctx context.Context, c *client) ([]accountRow, []json.RawMessage, error) {
	var (
		rows []accountRow
		raws []json.RawMessage
	)
	for cursor := ""; ; {
		path := "/api/v1/accounts?size=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Accounts []json.RawMessage `json:"accounts"`
			Next     *string           `json:"next"`
		}
		if err := c.do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, nil, err
		}
		for _, raw := range page.Accounts {
			var r accountRow
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, nil, err
			}
			json.Unmarshal(raw, &r.Raw)
			rows = append(rows, r)
			raws = append(raws, raw)
		}
		if page.Next == nil {
			return rows, raws, nil
		}
		cursor = *page.Next
	}
}

// accountID resolves an id or a username.
func accountID(ctx context.Context, c *client, ref string) (int64, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	rows, _, err := listAccounts(ctx, c)
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		if r.Username == ref {
			return r.ID, nil
		}
	}
	return 0, fmt.Errorf("no account is named %q", ref)
}

// printAccounts writes a table: one row per account, a column per switch.
func printAccounts(w io.Writer, rows []accountRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No accounts. Add one with: conveyor accounts add USERNAME --all")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	short := []string{"cont", "story", "engage", "scan", "follow", "avatar", "refresh"}
	fmt.Fprintf(tw, "ID\tUSERNAME\tENABLED\t%s\tNEXT FEED SYNC\tLAST SYNC\n", strings.ToUpper(strings.Join(short, "\t")))
	for _, r := range rows {
		var sw []string
		for _, s := range accountSwitches {
			v, _ := r.Raw[s].(bool)
			sw = append(sw, yesNo(v))
		}
		next := "due"
		if r.NextFeedSyncAt != nil {
			next = r.NextFeedSyncAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Username, yesNo(r.Enabled), strings.Join(sw, "\t"), next, r.LastSyncResult)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}
