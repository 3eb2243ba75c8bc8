// Package sandbox is a stand-in for the outside services Conveyor's account
// jobs drive: an Instagram-like service (accounts, home-feed pages, stories,
// follow lists, profiles) behind the connector contract, and a local AI
// service (health, Ollama's version and tags, post analysis and every step
// of the post-analysis pipeline: visual analysis, faces, OCR, metadata,
// video processing, frame generation).
//
// Its media are small synthetic images and videos (media.go) that the
// local AI stand-in reads back, so its answers follow from the post: text
// regions and OCR text for an image with text in it, faces as many as the
// image holds, keyframes within a video's duration. Of any five
// consecutive posts of a feed one is a video and one an image with text.
//
// Everything it answers is a pure function of its seed, the request and the
// clock: the same seed gives the same accounts, feeds, follow lists and
// faults, so the demo and the tests exercise cursors, pacing, fan-out and
// failures for real and reproducibly. Faults are drawn per call (class,
// args, attempt) at FaultRate: transient (503, half of them with a
// Retry-After), runtime (400) and authentication (401); the local AI
// stand-in's faults are transient only.
//
// A Sandbox is a jobs.Connector itself (the demo calls it in-process), and
// Handler serves the same contract over HTTP — the connector bridge's — so
// tests run it as a real server on loopback; AIHandler is the local AI
// stand-in.
package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"conveyor/jobs"
	"conveyor/ops/fault"
)

// The environment variables that configure the sandbox, and their defaults.
const (
	EnvSeed      = "CONVEYOR_SANDBOX_SEED"
	EnvAccounts  = "CONVEYOR_SANDBOX_ACCOUNTS"
	EnvLatencyMS = "CONVEYOR_SANDBOX_LATENCY_MS"
	EnvFaultRate = "CONVEYOR_SANDBOX_FAULT_RATE"

	DefaultSeed      = 1
	DefaultAccounts  = 25
	DefaultLatency   = 30 * time.Millisecond
	DefaultFaultRate = 0.03
	// MaxAccounts bounds CONVEYOR_SANDBOX_ACCOUNTS.
	MaxAccounts = 100_000
)

// The shape of the sandbox's world.
const (
	// PostEvery is how often each account's home feed gets a new post.
	PostEvery = 10 * time.Minute
	// FeedPageSize is the posts per feed page, and FeedPages how deep the
	// feed goes (older posts are not served).
	FeedPageSize = 5
	FeedPages    = 3
	// FollowPageSize is the profiles per follow-list page.
	FollowPageSize = 25
	// RetryAfter is the Retry-After of the transient faults that carry one.
	RetryAfter = 5 * time.Second
)

// epoch is the sandbox feed's first post.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configure a Sandbox. The zero value is usable: a zero Latency or
// FaultRate means none (OptionsFromEnv fills the defaults).
type Options struct {
	Seed      int64
	Accounts  int
	Latency   time.Duration
	FaultRate float64
	// Now is the clock (default time.Now): the feed grows with it and
	// follow lists change with its day.
	Now func() time.Time
}

// OptionsFromEnv reads the sandbox's environment variables over the
// defaults. A bad value is an error naming the variable.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	o := Options{Seed: DefaultSeed, Accounts: DefaultAccounts, Latency: DefaultLatency, FaultRate: DefaultFaultRate}
	if v := strings.TrimSpace(getenv(EnvSeed)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("%s=%q: want an integer", EnvSeed, v)
		}
		o.Seed = n
	}
	if v := strings.TrimSpace(getenv(EnvAccounts)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxAccounts {
			return o, fmt.Errorf("%s=%q: want a number of accounts from 0 to %d", EnvAccounts, v, MaxAccounts)
		}
		o.Accounts = n
	}
	if v := strings.TrimSpace(getenv(EnvLatencyMS)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 60_000 {
			return o, fmt.Errorf("%s=%q: want milliseconds from 0 to 60000", EnvLatencyMS, v)
		}
		o.Latency = time.Duration(n) * time.Millisecond
	}
	if v := strings.TrimSpace(getenv(EnvFaultRate)); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			return o, fmt.Errorf("%s=%q: want a fraction from 0 to 1, e.g. 0.03", EnvFaultRate, v)
		}
		o.FaultRate = f
	}
	return o, nil
}

// Sandbox is the stand-in service. It is safe for concurrent use.
type Sandbox struct {
	opts Options
	now  func() time.Time
}

// New returns a sandbox.
func New(opts Options) *Sandbox {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Sandbox{opts: opts, now: now}
}

// Options returns the sandbox's options.
func (s *Sandbox) Options() Options { return s.opts }

// Accounts returns the usernames of the sandbox's accounts, in order.
func (s *Sandbox) Accounts() []string {
	out := make([]string, s.opts.Accounts)
	for i := range out {
		out[i] = fmt.Sprintf("%s_%s_%02d", "sandbox", s.word(s.h("account", strconv.Itoa(i))), i+1)
	}
	return out
}

// h hashes the seed and parts (FNV-1a with a final mix).
func (s *Sandbox) h(parts ...string) uint64 {
	f := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(s.opts.Seed))
	f.Write(b[:])
	for _, p := range parts {
		f.Write([]byte(p))
		f.Write([]byte{0})
	}
	x := f.Sum64()
	x ^= x >> 31
	x *= 0x7fb5d329728ea185
	x ^= x >> 27
	return x
}

// unit maps a hash to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

var words = []string{"ava", "bo", "cleo", "dex", "eli", "fay", "gus", "hana", "ivo", "juno", "kai", "lena",
	"milo", "nia", "oto", "pia", "quin", "rae", "sol", "tess", "uma", "vik", "wren", "xan", "yara", "zed"}

var things = []string{"sunset", "coffee", "mountain", "harbour", "market", "garden", "concert", "library",
	"bicycle", "kitchen", "forest", "rooftop", "museum", "beach", "bakery", "studio"}

func (s *Sandbox) word(x uint64) string { return words[x%uint64(len(words))] }

// Call answers one connector call: the contract of package jobs, with the
// sandbox's latency and faults.
func (s *Sandbox) Call(ctx context.Context, req jobs.Request) (json.RawMessage, error) {
	endpoint := "sandbox " + req.Class
	if err := s.wait(ctx, req.Class, string(req.Args), strconv.Itoa(req.Attempt)); err != nil {
		return nil, err
	}
	if err := s.fault(endpoint, true, req.Class, string(req.Args), strconv.Itoa(req.Attempt)); err != nil {
		return nil, err
	}
	var a jobs.CallArgs
	dec := json.NewDecoder(strings.NewReader(string(req.Args)))
	if err := dec.Decode(&a); err != nil || a.Username == "" {
		return nil, &jobs.CallError{Endpoint: endpoint, Status: http.StatusBadRequest, Kind: fault.Runtime,
			Message: "args must carry the account's username"}
	}
	var out any
	switch req.Class {
	case "CaptureHomeFeedJob":
		out = s.feed(a)
	case "SyncFollowGraphJob":
		p, err := s.follows(a)
		if err != nil {
			return nil, &jobs.CallError{Endpoint: endpoint, Status: http.StatusBadRequest, Kind: fault.Runtime, Message: err.Error()}
		}
		out = p
	case "StoryAutoReplyJob":
		out = s.stories(a)
	case "FeedAutoEngagementJob":
		out = s.engagements(a)
	case "RecentProfilePostScanJob":
		out = s.scan(a)
	case "SyncAvatarJob":
		out = s.avatars(a)
	case "RefreshProfilesJob":
		out = s.refresh(a)
	default:
		return nil, &jobs.CallError{Endpoint: endpoint, Status: http.StatusNotFound, Kind: fault.Runtime,
			Message: fmt.Sprintf("the sandbox does not serve class %s", req.Class)}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// wait holds the call for the sandbox's latency (±50%, drawn per call).
func (s *Sandbox) wait(ctx context.Context, parts ...string) error {
	if s.opts.Latency <= 0 {
		return ctx.Err()
	}
	d := time.Duration(float64(s.opts.Latency) * (0.5 + unit(s.h(append(parts, "latency")...))))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fault draws the call's fault, if any; all: authentication and runtime
// faults too, else transient ones only.
func (s *Sandbox) fault(endpoint string, all bool, parts ...string) error {
	if s.opts.FaultRate <= 0 || unit(s.h(append(parts, "fault")...)) >= s.opts.FaultRate {
		return nil
	}
	pick := unit(s.h(append(parts, "fault-kind")...))
	switch {
	case !all || pick < 0.7:
		e := &jobs.CallError{Endpoint: endpoint, Status: http.StatusServiceUnavailable, Kind: fault.Transient,
			Message: "sandbox: the service is briefly unavailable"}
		if pick < 0.35 {
			e.Status, e.RetryAfter, e.Message = http.StatusTooManyRequests, RetryAfter, "sandbox: rate limited"
		}
		return e
	case pick < 0.9:
		return &jobs.CallError{Endpoint: endpoint, Status: http.StatusBadRequest, Kind: fault.Runtime,
			Message: "sandbox: the service refused the request"}
	default:
		return &jobs.CallError{Endpoint: endpoint, Status: http.StatusUnauthorized, Kind: fault.Authentication,
			Message: "sandbox: the account's session expired"}
	}
}

// post is post n of user's feed (or of a scan). Of any five consecutive
// posts of a feed one is a video and one an image with text in it (where
// in the five depends on the user), so that every page of a feed gives
// every step of the post-analysis pipeline work.
func (s *Sandbox) post(user string, n int64, media bool) jobs.RemotePost {
	id := fmt.Sprintf("%s-%d", strconv.FormatUint(s.h("post", user)%1_000_000, 36), n)
	x := s.h("post", user, strconv.FormatInt(n, 10))
	p := jobs.RemotePost{
		ID:        id,
		Author:    fmt.Sprintf("%s_%d", s.word(x>>8), x%97),
		Caption:   fmt.Sprintf("A %s and a %s", things[x%uint64(len(things))], things[(x>>16)%uint64(len(things))]),
		MediaURL:  "https://sandbox.invalid/media/" + id + ".jpg",
		MediaType: "image",
		TakenAt:   epoch.Add(time.Duration(n) * PostEvery),
	}
	kind := (uint64(n) + s.h("kind", user)) % 5
	if kind == 0 {
		p.MediaURL, p.MediaType = "https://sandbox.invalid/media/"+id+".mp4", "video"
	}
	if media {
		var b []byte
		if kind == 0 {
			b = s.video(id)
		} else {
			b = s.image(id, kind == 2, int(x>>24)%4)
		}
		p.Media = base64.StdEncoding.EncodeToString(b)
	}
	return p
}

// feed is one page of a's home feed: the newest FeedPageSize posts below
// the cursor (a post number), FeedPages pages deep.
func (s *Sandbox) feed(a jobs.CallArgs) jobs.FeedPage {
	offset := time.Duration(s.h("offset", a.Username)%uint64(PostEvery/time.Second)) * time.Second
	newest := int64(s.now().Sub(epoch.Add(offset)) / PostEvery)
	top := newest
	if n, err := strconv.ParseInt(a.Cursor, 10, 64); err == nil && a.Cursor != "" {
		top = n
	}
	page := max(a.Page, 1)
	out := jobs.FeedPage{Posts: []jobs.RemotePost{}}
	for n := top; n > top-FeedPageSize && n >= 0; n-- {
		out.Posts = append(out.Posts, s.post(a.Username, n, true))
	}
	if next := top - FeedPageSize; page < FeedPages && next >= 0 {
		out.HasMore, out.NextCursor = true, strconv.FormatInt(next, 10)
	}
	return out
}

// follows is one page of a follow list. The list's members change a
// little every day (about one in twenty is out on a given day).
func (s *Sandbox) follows(a jobs.CallArgs) (jobs.FollowPage, error) {
	if a.List != "followers" && a.List != "following" {
		return jobs.FollowPage{}, fmt.Errorf("list must be followers or following (got %q)", a.List)
	}
	size := 30 + int(s.h("list", a.Username, a.List)%90)
	start := 0
	if a.Cursor != "" {
		n, err := strconv.Atoi(a.Cursor)
		if err != nil || n < 0 {
			return jobs.FollowPage{}, errors.New("bad cursor")
		}
		start = n
	}
	day := strconv.FormatInt(s.now().Unix()/86400, 10)
	out := jobs.FollowPage{Profiles: []jobs.RemoteProfile{}}
	j := start
	for ; j < size && j < start+FollowPageSize; j++ {
		if s.h("member", a.Username, a.List, strconv.Itoa(j), day)%20 == 0 {
			continue
		}
		out.Profiles = append(out.Profiles, s.profile(a.Username, j, false))
	}
	if j < size {
		out.HasMore, out.NextCursor = true, strconv.Itoa(j)
	}
	return out, nil
}

// profile is member j of user's world.
func (s *Sandbox) profile(user string, j int, counts bool) jobs.RemoteProfile {
	x := s.h("profile", user, strconv.Itoa(j))
	p := jobs.RemoteProfile{
		Username:    fmt.Sprintf("%s_%d", s.word(x), x%100_000),
		DisplayName: strings.ToUpper(s.word(x)[:1]) + s.word(x)[1:] + " " + strings.ToUpper(s.word(x >> 9)[:1]) + ".",
	}
	if counts {
		f, g := int64(x%50_000), int64((x>>20)%2_000)
		p.FollowersCount, p.FollowingCount = &f, &g
		p.AvatarURL = "https://sandbox.invalid/avatars/" + p.Username + ".jpg"
	}
	return p
}

func (s *Sandbox) stories(a jobs.CallArgs) jobs.StoryReplies {
	hour := strconv.FormatInt(s.now().Unix()/3600, 10)
	out := jobs.StoryReplies{Stories: []jobs.Story{}, Replies: []jobs.StoryReply{}}
	n := int(s.h("stories", a.Username, hour) % 5)
	for i := range n {
		x := s.h("story", a.Username, hour, strconv.Itoa(i))
		st := jobs.Story{ID: strconv.FormatUint(x%1_000_000_000, 36), Author: fmt.Sprintf("%s_%d", s.word(x), x%97)}
		out.Stories = append(out.Stories, st)
		if x%2 == 0 {
			out.Replies = append(out.Replies, jobs.StoryReply{StoryID: st.ID, Text: "Love this " + things[x%uint64(len(things))] + "!"})
		}
	}
	return out
}

func (s *Sandbox) engagements(a jobs.CallArgs) jobs.Engagements {
	hour := strconv.FormatInt(s.now().Unix()/3600, 10)
	out := jobs.Engagements{Engagements: []jobs.Engagement{}}
	n := int(s.h("engage", a.Username, hour) % 6)
	for i := range n {
		p := s.post(a.Username, int64(s.h("engage", a.Username, hour, strconv.Itoa(i))%10_000), false)
		action := "like"
		if i%3 == 2 {
			action = "comment"
		}
		out.Engagements = append(out.Engagements, jobs.Engagement{PostID: p.ID, Author: p.Author, Action: action})
	}
	return out
}

func (s *Sandbox) scan(a jobs.CallArgs) jobs.ProfileScan {
	hours := s.now().Unix() / 3600
	out := jobs.ProfileScan{Posts: []jobs.RemotePost{}}
	n := 1 + int(s.h("scan", a.Username, strconv.FormatInt(hours/2, 10))%3)
	for i := range n {
		out.Posts = append(out.Posts, s.post(a.Username+"/scan", hours*10+int64(i), true))
	}
	return out
}

func (s *Sandbox) avatars(a jobs.CallArgs) jobs.ProfileList {
	out := jobs.ProfileList{Profiles: []jobs.RemoteProfile{}}
	for j := range 3 + int(s.h("avatars", a.Username)%6) {
		p := s.profile(a.Username, j, true)
		out.Profiles = append(out.Profiles, jobs.RemoteProfile{Username: p.Username, AvatarURL: p.AvatarURL})
	}
	return out
}

func (s *Sandbox) refresh(a jobs.CallArgs) jobs.ProfileList {
	out := jobs.ProfileList{Profiles: []jobs.RemoteProfile{}}
	for j := range 5 + int(s.h("refresh", a.Username)%6) {
		out.Profiles = append(out.Profiles, s.profile(a.Username, j, true))
	}
	return out
}
