package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"conveyor/jobs"
	"conveyor/ops/fault"
)

var day = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func call(t *testing.T, c jobs.Connector, class string, args jobs.CallArgs, attempt int) (json.RawMessage, error) {
	t.Helper()
	b, _ := json.Marshal(args)
	return c.Call(t.Context(), jobs.Request{Class: class, Args: b, Attempt: attempt})
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	o, err := OptionsFromEnv(func(string) string { return "" })
	if err != nil || o.Seed != DefaultSeed || o.Accounts != 25 || o.Latency != 30*time.Millisecond || o.FaultRate != 0.03 {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	env := map[string]string{EnvSeed: "42", EnvAccounts: "3", EnvLatencyMS: "0", EnvFaultRate: "0.5"}
	o, err = OptionsFromEnv(func(k string) string { return env[k] })
	if err != nil || o.Seed != 42 || o.Accounts != 3 || o.Latency != 0 || o.FaultRate != 0.5 {
		t.Fatalf("set %+v, %v", o, err)
	}
	for name, bad := range map[string]string{EnvSeed: "x", EnvAccounts: "-1", EnvLatencyMS: "fast", EnvFaultRate: "1.5"} {
		_, err := OptionsFromEnv(func(k string) string {
			if k == name {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want an error naming the variable", name, bad, err)
		}
	}
}

// TestDeterministic: the same seed and clock give the same world; another
// seed another one.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	a := New(Options{Seed: 7, Accounts: 5, Now: at(day)})
	b := New(Options{Seed: 7, Accounts: 5, Now: at(day)})
	c := New(Options{Seed: 8, Accounts: 5, Now: at(day)})
	if fmt.Sprint(a.Accounts()) != fmt.Sprint(b.Accounts()) || fmt.Sprint(a.Accounts()) == fmt.Sprint(c.Accounts()) {
		t.Fatalf("accounts %v %v %v", a.Accounts(), b.Accounts(), c.Accounts())
	}
	user := a.Accounts()[0]
	for _, class := range []string{"CaptureHomeFeedJob", "StoryAutoReplyJob", "FeedAutoEngagementJob", "RecentProfilePostScanJob", "SyncAvatarJob", "RefreshProfilesJob"} {
		x, err1 := call(t, a, class, jobs.CallArgs{Username: user}, 1)
		y, err2 := call(t, b, class, jobs.CallArgs{Username: user}, 1)
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: %s / %s (%v, %v)", class, x, y, err1, err2)
		}
	}
}

// TestFeedPages: three pages of five posts, newest first, cursors chained;
// ten minutes later one new post is on top.
func TestFeedPages(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 1, Accounts: 1, Now: at(day)})
	user := s.Accounts()[0]
	var ids []string
	cursor := ""
	for page := 1; ; page++ {
		out, err := call(t, s, "CaptureHomeFeedJob", jobs.CallArgs{Username: user, Cursor: cursor, Page: page}, 1)
		if err != nil {
			t.Fatal(err)
		}
		var p jobs.FeedPage
		if err := json.Unmarshal(out, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Posts) != FeedPageSize {
			t.Fatalf("page %d has %d posts", page, len(p.Posts))
		}
		for i, post := range p.Posts {
			if post.Media == "" || post.ID == "" || post.Author == "" || (i > 0 && !post.TakenAt.Before(p.Posts[i-1].TakenAt)) {
				t.Fatalf("page %d post %d: %+v", page, i, post)
			}
			ids = append(ids, post.ID)
		}
		if !p.HasMore {
			if page != FeedPages || p.NextCursor != "" {
				t.Fatalf("ended at page %d with cursor %q", page, p.NextCursor)
			}
			break
		}
		cursor = p.NextCursor
	}
	later := New(Options{Seed: 1, Accounts: 1, Now: at(day.Add(PostEvery))})
	out, _ := call(t, later, "CaptureHomeFeedJob", jobs.CallArgs{Username: user, Page: 1}, 1)
	var p jobs.FeedPage
	json.Unmarshal(out, &p)
	if p.Posts[1].ID != ids[0] || p.Posts[0].ID == ids[0] {
		t.Fatalf("ten minutes later the top is %s, %s; before it was %s", p.Posts[0].ID, p.Posts[1].ID, ids[0])
	}
}

// TestFollowLists: pages of a list chain to its end, and a list changes a
// little from one day to the next.
func TestFollowLists(t *testing.T) {
	t.Parallel()
	list := func(now time.Time) []string {
		s := New(Options{Seed: 3, Accounts: 1, Now: at(now)})
		var names []string
		cursor := ""
		for range 100 {
			out, err := call(t, s, "SyncFollowGraphJob", jobs.CallArgs{Username: s.Accounts()[0], List: "followers", Cursor: cursor}, 1)
			if err != nil {
				t.Fatal(err)
			}
			var p jobs.FollowPage
			json.Unmarshal(out, &p)
			for _, pr := range p.Profiles {
				names = append(names, pr.Username)
			}
			if !p.HasMore {
				return names
			}
			cursor = p.NextCursor
		}
		t.Fatal("the list never ended")
		return nil
	}
	today, tomorrow := list(day), list(day.Add(24*time.Hour))
	if len(today) < 20 || fmt.Sprint(today) == fmt.Sprint(tomorrow) {
		t.Fatalf("today %d names, tomorrow %d, same: %v", len(today), len(tomorrow), fmt.Sprint(today) == fmt.Sprint(tomorrow))
	}
	s := New(Options{Seed: 3, Accounts: 1, Now: at(day)})
	if _, err := call(t, s, "SyncFollowGraphJob", jobs.CallArgs{Username: "u", List: "friends"}, 1); err == nil {
		t.Error("a list that is neither followers nor following was served")
	}
}

// TestFaults: at rate 1 every call faults, with each kind and its status;
// at rate 0 none does; retries (another attempt) draw again.
func TestFaults(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 5, Accounts: 1, FaultRate: 1, Now: at(day)})
	kinds := map[fault.Kind]int{}
	for i := range 300 {
		_, err := call(t, s, "StoryAutoReplyJob", jobs.CallArgs{AccountID: int64(i), Username: "u"}, 1)
		var ce *jobs.CallError
		if !errors.As(err, &ce) {
			t.Fatalf("call %d: %v", i, err)
		}
		kinds[ce.Kind]++
		want := map[fault.Kind][]int{fault.Transient: {503, 429}, fault.Runtime: {400}, fault.Authentication: {401}}[ce.Kind]
		if ce.Status != want[0] && (len(want) < 2 || ce.Status != want[1]) {
			t.Fatalf("%s fault with status %d", ce.Kind, ce.Status)
		}
		if (ce.Status == 429) != (ce.RetryAfter == RetryAfter) {
			t.Fatalf("status %d with Retry-After %v", ce.Status, ce.RetryAfter)
		}
	}
	if kinds[fault.Transient] < 150 || kinds[fault.Runtime] == 0 || kinds[fault.Authentication] == 0 {
		t.Fatalf("fault kinds %v", kinds)
	}
	calm := New(Options{Seed: 5, Accounts: 1, Now: at(day)})
	for i := range 100 {
		if _, err := call(t, calm, "StoryAutoReplyJob", jobs.CallArgs{AccountID: int64(i), Username: "u"}, 1); err != nil {
			t.Fatalf("fault at rate 0: %v", err)
		}
	}
	some := New(Options{Seed: 5, Accounts: 1, FaultRate: 0.5, Now: at(day)})
	differs := false
	for i := range 50 {
		_, e1 := call(t, some, "SyncAvatarJob", jobs.CallArgs{AccountID: int64(i), Username: "u"}, 1)
		_, e2 := call(t, some, "SyncAvatarJob", jobs.CallArgs{AccountID: int64(i), Username: "u"}, 2)
		_, again := call(t, some, "SyncAvatarJob", jobs.CallArgs{AccountID: int64(i), Username: "u"}, 1)
		if (e1 == nil) != (again == nil) {
			t.Fatal("the same call drew another fault")
		}
		differs = differs || (e1 == nil) != (e2 == nil)
	}
	if !differs {
		t.Error("a retry never drew differently from its first attempt")
	}
}

// TestOverHTTP: the bridge against the sandbox served on loopback gets
// what the sandbox answers in-process, and its faults with their statuses
// and Retry-After.
func TestOverHTTP(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 9, Accounts: 2, Now: at(day)})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	b, err := jobs.NewBridge(jobs.BridgeOptions{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	args := jobs.CallArgs{Username: s.Accounts()[1], Page: 1}
	direct, err := call(t, s, "CaptureHomeFeedJob", args, 1)
	if err != nil {
		t.Fatal(err)
	}
	viaHTTP, err := call(t, b, "CaptureHomeFeedJob", args, 1)
	if err != nil || !bytes.Equal(direct, viaHTTP) {
		t.Fatalf("over HTTP: %s, %v", viaHTTP, err)
	}
	faulty := New(Options{Seed: 9, Accounts: 2, FaultRate: 1, Now: at(day)})
	fsrv := httptest.NewServer(faulty.Handler())
	defer fsrv.Close()
	fb, _ := jobs.NewBridge(jobs.BridgeOptions{URL: fsrv.URL + "/"})
	seen := map[int]bool{}
	for i := range 200 {
		a := jobs.CallArgs{AccountID: int64(i), Username: "u"}
		_, inproc := call(t, faulty, "SyncAvatarJob", a, 1)
		_, remote := call(t, fb, "SyncAvatarJob", a, 1)
		var ce, re *jobs.CallError
		if !errors.As(inproc, &ce) || !errors.As(remote, &re) || ce.Kind != re.Kind || ce.Status != re.Status || ce.RetryAfter != re.RetryAfter {
			t.Fatalf("call %d: in-process %v, over HTTP %v", i, inproc, remote)
		}
		seen[re.Status] = true
	}
	if !seen[401] || !seen[400] || !seen[503] || !seen[429] {
		t.Errorf("statuses seen over HTTP: %v", seen)
	}
	resp, err := http.Get(srv.URL + "/accounts")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Accounts []string }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if fmt.Sprint(list.Accounts) != fmt.Sprint(s.Accounts()) {
		t.Errorf("GET /accounts = %v", list.Accounts)
	}
}

// TestLocalAIStandIn: the stand-in answers what the guardrails check and
// what AnalyzePostJob asks.
func TestLocalAIStandIn(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 2, Now: at(day)})
	srv := httptest.NewServer(s.AIHandler())
	defer srv.Close()
	for _, path := range []string{"/health", "/api/version", "/api/tags"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	ai, err := jobs.NewLocalAI(srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ai.Analyze(t.Context(), jobs.AnalyzeRequest{PostID: "p1", Author: "ava", Caption: "A sunset and a coffee"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Labels  []string
		Summary string
	}
	if err := json.Unmarshal(out, &got); err != nil || fmt.Sprint(got.Labels) != "[sunset coffee]" || !strings.Contains(got.Summary, "ava") {
		t.Fatalf("analysis %s, %v", out, err)
	}
	faulty := New(Options{Seed: 2, FaultRate: 1, Now: at(day)})
	fsrv := httptest.NewServer(faulty.AIHandler())
	defer fsrv.Close()
	fai, _ := jobs.NewLocalAI(fsrv.URL, 0)
	_, err = fai.Analyze(t.Context(), jobs.AnalyzeRequest{PostID: "p1"}, 1)
	var ce *jobs.CallError
	if !errors.As(err, &ce) || ce.Kind != fault.Transient {
		t.Fatalf("faulty analysis: %v (analyses fail only transiently)", err)
	}
}

// TestFeedMixesMedia: every page of every feed holds one video and at
// least one image with text in it, so the post-analysis pipeline's every
// step gets work; the media say so in what the stand-in reads.
func TestFeedMixesMedia(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2, 3} {
		s := New(Options{Seed: seed, Accounts: 6, Now: at(day)})
		for _, user := range s.Accounts() {
			cursor := ""
			for page := 1; page <= FeedPages; page++ {
				out, err := call(t, s, "CaptureHomeFeedJob", jobs.CallArgs{Username: user, Cursor: cursor, Page: page}, 1)
				if err != nil {
					t.Fatal(err)
				}
				var p jobs.FeedPage
				json.Unmarshal(out, &p)
				videos, texts := 0, 0
				for _, post := range p.Posts {
					raw, _ := base64.StdEncoding.DecodeString(post.Media)
					m, err := readMedia(raw)
					if err != nil {
						t.Fatalf("%s page %d post %s: %v", user, page, post.ID, err)
					}
					if m.video != (post.MediaType == "video") || m.video != strings.HasSuffix(post.MediaURL, ".mp4") {
						t.Fatalf("post %+v reads as %+v", post, m)
					}
					if m.video {
						videos++
						if m.duration < minVideo || m.duration > maxVideo {
							t.Fatalf("video of %v", m.duration)
						}
					}
					if m.text {
						texts++
					}
				}
				if videos != 1 || texts < 1 {
					t.Fatalf("seed %d %s page %d: %d videos, %d images with text", seed, user, page, videos, texts)
				}
				cursor = p.NextCursor
			}
		}
	}
}

// TestAIStandInSteps: each step of the pipeline answers from the media it
// is sent — text regions and OCR text only for an image with text, faces
// as the image holds, keyframes within the video, one frame per time asked
// — and refuses media it cannot read with 422.
func TestAIStandInSteps(t *testing.T) {
	t.Parallel()
	s := New(Options{Seed: 2, Now: at(day)})
	srv := httptest.NewServer(s.AIHandler())
	defer srv.Close()
	ai, err := jobs.NewLocalAI(srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	ask := func(capability string, req jobs.StepRequest, out any) error {
		t.Helper()
		for _, st := range jobs.Steps() {
			if st.Capability == capability {
				raw, err := ai.Step(t.Context(), st.Path, req, 1)
				if err == nil && out != nil {
					err = json.Unmarshal(raw, out)
				}
				return err
			}
		}
		t.Fatalf("no step %s", capability)
		return nil
	}
	textImage, plain := b64(s.image("a", true, 2)), b64(s.image("b", false, 0))
	var vis struct {
		TextRegions int `json:"text_regions"`
		People      int
	}
	if err := ask(jobs.CapVisual, jobs.StepRequest{PostID: "a", Media: textImage}, &vis); err != nil || vis.TextRegions == 0 || vis.People != 2 {
		t.Fatalf("visual of a text image: %+v, %v", vis, err)
	}
	if err := ask(jobs.CapVisual, jobs.StepRequest{PostID: "b", Media: plain}, &vis); err != nil || vis.TextRegions != 0 {
		t.Fatalf("visual of a plain image: %+v, %v", vis, err)
	}
	var ocr struct{ Text string }
	if err := ask(jobs.CapOCR, jobs.StepRequest{PostID: "a", Media: textImage}, &ocr); err != nil || ocr.Text == "" {
		t.Fatalf("OCR of a text image: %+v, %v", ocr, err)
	}
	var faces struct{ Count int }
	if err := ask(jobs.CapFaces, jobs.StepRequest{PostID: "a", Media: textImage}, &faces); err != nil || faces.Count != 2 {
		t.Fatalf("faces: %+v, %v", faces, err)
	}
	var meta struct{ Hashtags []string }
	if err := ask(jobs.CapMetadata, jobs.StepRequest{PostID: "a", Caption: "A sunset and a coffee"}, &meta); err != nil ||
		fmt.Sprint(meta.Hashtags) != "[#sunset #coffee]" {
		t.Fatalf("metadata: %+v, %v", meta, err)
	}
	video := b64(s.video("v"))
	var v jobs.VideoResult
	if err := ask(jobs.CapVideo, jobs.StepRequest{PostID: "v", Media: video}, &v); err != nil || len(v.KeyframesMS) < 3 {
		t.Fatalf("video: %+v, %v", v, err)
	}
	for _, k := range v.KeyframesMS {
		if k <= 0 || k >= v.DurationMS {
			t.Fatalf("keyframe %d outside the video of %d ms", k, v.DurationMS)
		}
	}
	var fr jobs.FramesAnswer
	if err := ask(jobs.CapFrames, jobs.StepRequest{PostID: "v", Media: video, AtMS: v.KeyframesMS}, &fr); err != nil || len(fr.Frames) != len(v.KeyframesMS) {
		t.Fatalf("frames: %d, %v", len(fr.Frames), err)
	}
	for i, f := range fr.Frames {
		raw, _ := base64.StdEncoding.DecodeString(f.Image)
		if m, err := readMedia(raw); err != nil || m.video || f.AtMS != v.KeyframesMS[i] {
			t.Fatalf("frame %d: %+v, %v", i, m, err)
		}
	}

	for _, c := range []struct {
		name, capability string
		req              jobs.StepRequest
	}{
		{"garbage", jobs.CapVisual, jobs.StepRequest{PostID: "x", Media: b64([]byte("a jpeg"))}},
		{"not base64", jobs.CapOCR, jobs.StepRequest{PostID: "x", Media: "***"}},
		{"no media", jobs.CapFaces, jobs.StepRequest{PostID: "x"}},
		{"a video to visual", jobs.CapVisual, jobs.StepRequest{PostID: "x", Media: video}},
		{"an image to video", jobs.CapVideo, jobs.StepRequest{PostID: "x", Media: plain}},
		{"frames outside", jobs.CapFrames, jobs.StepRequest{PostID: "x", Media: video, AtMS: []int64{-1}}},
		{"no frames", jobs.CapFrames, jobs.StepRequest{PostID: "x", Media: video}},
	} {
		err := ask(c.capability, c.req, nil)
		var ce *jobs.CallError
		if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || ce.Kind != fault.Runtime {
			t.Errorf("%s: %v, want a 422 runtime failure", c.name, err)
		}
	}

	// Faults are transient, drawn per post, frame and attempt.
	faulty := New(Options{Seed: 2, FaultRate: 1, Now: at(day)})
	fsrv := httptest.NewServer(faulty.AIHandler())
	defer fsrv.Close()
	fai, _ := jobs.NewLocalAI(fsrv.URL, 0)
	statuses := map[int]bool{}
	for i := range 20 {
		_, err := fai.Step(t.Context(), "/analyze/visual", jobs.StepRequest{PostID: strconv.Itoa(i), Media: plain}, 1)
		var ce *jobs.CallError
		if !errors.As(err, &ce) || ce.Kind != fault.Transient {
			t.Fatalf("faulty visual: %v", err)
		}
		statuses[ce.Status] = true
		if (ce.Status == http.StatusTooManyRequests) != (ce.RetryAfter == RetryAfter) {
			t.Fatalf("status %d with Retry-After %v", ce.Status, ce.RetryAfter)
		}
	}
	if !statuses[http.StatusServiceUnavailable] || !statuses[http.StatusTooManyRequests] {
		t.Errorf("fault statuses %v", statuses)
	}
}

// FuzzReadMedia: the stand-in reads any bytes sent to it as media without
// panicking; what it reads as an image or video starts with the magic.
func FuzzReadMedia(f *testing.F) {
	s := New(Options{Seed: 1})
	for _, seed := range [][]byte{s.image("a", true, 3), s.video("v"), []byte("SBXI"), []byte("SBXV\x00"), nil, []byte("GIF89a")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMedia(b)
		if err != nil {
			return
		}
		if magic := string(b[:4]); (m.video && magic != videoMagic) || (!m.video && magic != imageMagic) || m.faces > 3 {
			t.Fatalf("%q read as %+v", b, m)
		}
	})
}
