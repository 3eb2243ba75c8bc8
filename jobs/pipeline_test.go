package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"conveyor/cron"
	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/jobs"
	"conveyor/jobs/sandbox"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// aiServer is the local AI stand-in on loopback, counting the calls to
// each path.
type aiServer struct {
	URL string
	mu  sync.Mutex
	n   map[string]int
}

func startAI(t *testing.T, s *sandbox.Sandbox) *aiServer {
	t.Helper()
	a := &aiServer{n: map[string]int{}}
	h := s.AIHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.n[r.URL.Path]++
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// calls returns how many calls path had.
func (a *aiServer) calls(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[path]
}

func (a *aiServer) option(t *testing.T) func(*jobs.Options) {
	ai, err := jobs.NewLocalAI(a.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *jobs.Options) { o.LocalAI = ai }
}

// pipelineRig is a rig with the sandbox as its connector and the local AI
// stand-in on loopback, and one account whose first home-feed page has
// been captured: five stored posts, each with its AnalyzePostJob ready.
type pipelineRig struct {
	*jobs.Rig
	AI    *aiServer
	Acct  *data.Account
	Posts []*data.Post
}

func newPipelineRig(t *testing.T, opts sandbox.Options) *pipelineRig {
	t.Helper()
	clk := cron.NewFakeClock(jobs.RigStart)
	opts.Now = clk.Now
	sb := sandbox.New(opts)
	ai := startAI(t, sb)
	r := jobs.NewRigClock(t, t.TempDir(), clk, func(o *jobs.Options) { o.Connector = sb }, ai.option(t))
	p := &pipelineRig{Rig: r, AI: ai, Acct: r.AddAccounts(1, "pipe")[0]}
	// The capture runs outside the store (only what it enqueues is in it).
	args, _ := json.Marshal(jobs.CaptureArgs{AccountID: p.Acct.ID})
	if err := r.Perform(&queue.Job{ID: 1 << 40, Class: jobs.CaptureHomeFeed, Queue: "sync", Args: args, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	for _, j := range r.Jobs(jobs.AnalyzePost) {
		var a jobs.AnalyzeArgs
		json.Unmarshal(j.Args, &a)
		post, err := r.DB.PostByID(t.Context(), a.PostID)
		if err != nil {
			t.Fatal(err)
		}
		p.Posts = append(p.Posts, post)
	}
	if len(p.Posts) != sandbox.FeedPageSize {
		t.Fatalf("%d analyses for the first page, want %d", len(p.Posts), sandbox.FeedPageSize)
	}
	return p
}

// byType returns the captured posts of media type mt.
func (p *pipelineRig) byType(mt data.MediaType) []*data.Post {
	var out []*data.Post
	for _, x := range p.Posts {
		if x.MediaType == mt {
			out = append(out, x)
		}
	}
	return out
}

// pool starts the lanes on the rig's store; stopped at cleanup.
func (p *pipelineRig) pool(t *testing.T) *lanes.Pool {
	t.Helper()
	pool, err := lanes.New(p.Store, p.Reg, lanes.DefaultTopology(), lanes.Options{Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Stop(context.Background()) })
	return pool
}

// waitAIDrained waits, on the store's change notifications, until no job
// of an AI queue is left to run.
func (p *pipelineRig) waitAIDrained(t *testing.T) {
	t.Helper()
	sub := p.Store.Subscribe()
	defer sub.Close()
	for {
		left := int64(0)
		for _, q := range lanes.AILanes {
			qi, _ := p.Store.Queue(q)
			for _, st := range []queue.State{queue.StateScheduled, queue.StateReady, queue.StateRunning, queue.StateRetry} {
				left += qi.Counts[st]
			}
		}
		if left == 0 {
			return
		}
		select {
		case <-sub.C:
		case <-t.Context().Done():
			t.Fatalf("%d AI jobs never finished", left)
		}
	}
}

// results returns post id's stored results by capability and frame.
func (p *pipelineRig) results(t *testing.T, id int64) map[string]json.RawMessage {
	t.Helper()
	as, err := p.DB.PostAnalyses(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for _, a := range as {
		out[a.Capability+":"+strconv.Itoa(a.Frame)] = a.Result
	}
	return out
}

// TestPostPipelineThroughTheCapsules runs a captured feed page's analyses
// on the lanes: every AI capsule's queue gets work and finishes it. Each
// image has its visual analysis, faces and metadata, and OCR exactly when
// visual analysis found text; the video is processed, its frames are
// generated, stored as media and each analysed; every step called the
// service once and carries its post's account and author.
func TestPostPipelineThroughTheCapsules(t *testing.T) {
	t.Parallel()
	p := newPipelineRig(t, sandbox.Options{Seed: 5})
	if err := p.pool(t).Start(); err != nil {
		t.Fatal(err)
	}
	p.waitAIDrained(t)
	ctx := t.Context()

	videos, images := p.byType(data.MediaVideo), p.byType(data.MediaImage)
	if len(videos) != 1 || len(images) != sandbox.FeedPageSize-1 {
		t.Fatalf("the page holds %d videos and %d images, want one video", len(videos), len(images))
	}
	results, ocr := 0, 0
	for _, img := range images {
		got := p.results(t, img.ID)
		for _, k := range []string{"metadata:0", "visual:0", "faces:0"} {
			if got[k] == nil {
				t.Errorf("image post %d has no %s result: %v", img.ID, k, got)
			}
		}
		var v jobs.VisualResult
		json.Unmarshal(got["visual:0"], &v)
		if (v.TextRegions > 0) != (got["ocr:0"] != nil) {
			t.Errorf("image post %d: %d text regions but OCR result %s", img.ID, v.TextRegions, got["ocr:0"])
		}
		if got["ocr:0"] != nil {
			ocr++
			if !strings.Contains(string(got["ocr:0"]), `"text":"`) || strings.Contains(string(got["ocr:0"]), `"text":""`) {
				t.Errorf("OCR of a text image found no text: %s", got["ocr:0"])
			}
		}
		results += len(got)
	}
	if ocr == 0 {
		t.Error("no image of the page had text in it for OCR")
	}
	vid := videos[0]
	got := p.results(t, vid.ID)
	var frames jobs.FramesResult
	if err := json.Unmarshal(got["frames:0"], &frames); err != nil || got["video:0"] == nil || got["metadata:0"] == nil ||
		len(frames.Frames) < 3 || got["faces:0"] != nil || got["visual:0"] != nil {
		t.Fatalf("video post results %v (%v)", got, err)
	}
	for _, f := range frames.Frames {
		m, err := p.DB.PostMedia(ctx, vid.ID, f.Frame)
		if err != nil || m.Path != f.Path {
			t.Fatalf("frame %d media %+v, %v", f.Frame, m, err)
		}
		if b, err := os.ReadFile(filepath.Join(p.Dir, "media", filepath.FromSlash(f.Path))); err != nil || len(b) != f.Bytes {
			t.Fatalf("frame %d file: %d bytes, %v", f.Frame, len(b), err)
		}
		k := "visual:" + strconv.Itoa(f.Frame)
		if got[k] == nil {
			t.Fatalf("frame %d was not analysed: %v", f.Frame, got)
		}
		var v jobs.VisualResult
		json.Unmarshal(got[k], &v)
		if (v.TextRegions > 0) != (got["ocr:"+strconv.Itoa(f.Frame)] != nil) {
			t.Errorf("frame %d: %d text regions, OCR %s", f.Frame, v.TextRegions, got["ocr:"+strconv.Itoa(f.Frame)])
		}
	}
	results += len(got)

	// Every AI queue finished work and none died; each step called the
	// service once per result it stored.
	for _, q := range lanes.AILanes {
		qi, _ := p.Store.Queue(q)
		if qi.Counts[queue.StateDone] == 0 || qi.Counts[queue.StateDead] != 0 {
			t.Errorf("queue %s: %v", q, qi.Counts)
		}
	}
	calls := 0
	for _, s := range jobs.Steps() {
		calls += p.AI.calls(s.Path)
	}
	if calls != results {
		t.Errorf("%d step calls for %d results", calls, results)
	}
	for _, s := range jobs.Steps() {
		page, err := p.Store.List(queue.ListFilter{State: queue.StateDone, Class: s.Class, Limit: 1000})
		if err != nil || len(page.Jobs) == 0 {
			t.Fatalf("no done %s: %v", s.Class, err)
		}
		for _, j := range page.Jobs {
			if j.Queue != s.Queue || j.Context[queue.CtxAccountID] != strconv.FormatInt(p.Acct.ID, 10) || j.Context[queue.CtxProfileID] == "" {
				t.Fatalf("%s job %+v", s.Class, j)
			}
			recs, _ := p.DB.JobCalls(ctx, j.ID)
			if len(recs) != 1 || recs[0].Status != 200 || !strings.HasSuffix(recs[0].Endpoint, s.Path) {
				t.Fatalf("%s job %d calls %+v", s.Class, j.ID, recs)
			}
		}
	}
}

// TestPipelineIdempotent: fanning a post out again enqueues nothing new; a
// step whose result is stored does not call the service again but still
// enqueues what its result leads to (a run after a crash between the two).
func TestPipelineIdempotent(t *testing.T) {
	t.Parallel()
	p := newPipelineRig(t, sandbox.Options{Seed: 5})
	ctx := t.Context()
	img := p.byType(data.MediaImage)[0]
	analysis := p.Jobs(jobs.AnalyzePost)[0]
	for range 2 {
		if err := p.Perform(analysis); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.AI.calls(jobs.AnalyzePath); n != 1 {
		t.Errorf("the post was analysed %d times", n)
	}
	var a jobs.AnalyzeArgs
	json.Unmarshal(analysis.Args, &a)
	post, _ := p.DB.PostByID(ctx, a.PostID)
	want := 3 // metadata, visual, faces
	if post.MediaType == data.MediaVideo {
		want = 2 // metadata, video
	}
	steps := 0
	for _, s := range jobs.Steps() {
		steps += len(p.Jobs(s.Class))
	}
	if steps != want {
		t.Fatalf("%d step jobs after fanning out twice, want %d", steps, want)
	}

	// A visual result with text is stored, as by a run that crashed before
	// enqueuing OCR: the step runs again without calling and enqueues OCR.
	if _, _, err := p.DB.SavePostAnalysis(ctx, &data.PostAnalysis{PostID: img.ID, Capability: jobs.CapVisual, JobID: 1,
		Result: json.RawMessage(`{"text_regions":2}`)}); err != nil {
		t.Fatal(err)
	}
	visual := p.Enqueue(lanes.JobRequest{Class: jobs.AnalyzePostVisuals, Args: json.RawMessage(fmt.Sprintf(`{"post_id":%d}`, img.ID))})
	for range 2 {
		if err := p.Perform(visual); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.AI.calls("/analyze/visual"); n != 0 {
		t.Errorf("a stored result was asked for again (%d calls)", n)
	}
	ocr := p.Jobs(jobs.ExtractPostText)
	if len(ocr) != 1 || ocr[0].Queue != "ai_ocr_queue" || ocr[0].UniqueKey != fmt.Sprintf("%s:%d", jobs.ExtractPostText, img.ID) {
		t.Fatalf("OCR jobs %+v", ocr)
	}
	if err := p.Perform(ocr[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.Perform(ocr[0]); err != nil {
		t.Fatal(err)
	}
	if n := p.AI.calls("/analyze/ocr"); n != 1 {
		t.Errorf("OCR run twice called %d times", n)
	}
}

// TestPipelineFailures: each failure keeps its kind — the service's 5xx
// and 429 transient (a Retry-After a snooze), an unreadable media runtime,
// a service that is down transient — and a step with nothing to look at,
// or no local AI service, does not fail the same way.
func TestPipelineFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPipelineRig(t, sandbox.Options{Seed: 9})
	img, vid := p.byType(data.MediaImage)[0], p.byType(data.MediaVideo)[0]
	stepJob := func(class string, post int64) *queue.Job {
		return &queue.Job{ID: uint64(post)<<8 | uint64(len(class)), Class: class, Args: json.RawMessage(fmt.Sprintf(`{"post_id":%d}`, post)), Attempt: 1}
	}
	kindOf := func(err error) fault.Kind {
		var ce *jobs.CallError
		if !errors.As(err, &ce) {
			return ""
		}
		return ce.Kind
	}

	// A service that always fails: 503, or 429 with a Retry-After (a
	// snooze), both transient. The faulty rig works on copies of the
	// first rig's posts.
	faulty := startAI(t, sandbox.New(sandbox.Options{Seed: 9, FaultRate: 1, Now: p.Clock.Now}))
	fr := jobs.NewRigClock(t, t.TempDir(), p.Clock, faulty.option(t))
	for _, s := range jobs.Steps() {
		post := copyPost(t, p.Rig, fr, img)
		if s.Capability == jobs.CapVideo || s.Capability == jobs.CapFrames {
			post = copyPost(t, p.Rig, fr, vid)
		}
		if s.Capability == jobs.CapFrames {
			fr.DB.SavePostAnalysis(ctx, &data.PostAnalysis{PostID: post, Capability: jobs.CapVideo, JobID: 1,
				Result: json.RawMessage(`{"duration_ms":9000,"keyframes_ms":[1000,5000]}`)})
		}
		err := fr.Perform(stepJob(s.Class, post))
		if kindOf(err) != fault.Transient || isKilled(err) || strings.Contains(err.Error(), ": 429 ") != isSnooze(err) {
			t.Errorf("%s against a failing service: %v (snooze %v)", s.Class, err, isSnooze(err))
		}
	}

	// Media the service cannot read is a runtime failure (422), retried
	// but not snoozed; a video step given an image likewise.
	m, _ := p.DB.PostMedia(ctx, img.ID, 0)
	os.WriteFile(filepath.Join(p.Dir, "media", filepath.FromSlash(m.Path)), []byte("not an image"), 0o600)
	err := p.Perform(stepJob(jobs.AnalyzePostVisuals, img.ID))
	if kindOf(err) != fault.Runtime || isSnooze(err) || isKilled(err) || !strings.Contains(err.Error(), "422") {
		t.Errorf("unreadable media: %v", err)
	}
	img2 := p.byType(data.MediaImage)[1]
	if err := p.Perform(stepJob(jobs.ProcessPostVideo, img2.ID)); kindOf(err) != fault.Runtime || !strings.Contains(err.Error(), "takes a video") {
		t.Errorf("video processing of an image: %v", err)
	}

	// The media file is gone (purged): nothing to look at, done, no call.
	before := p.AI.calls("/analyze/faces")
	m2, _ := p.DB.PostMedia(ctx, img2.ID, 0)
	os.Remove(filepath.Join(p.Dir, "media", filepath.FromSlash(m2.Path)))
	if err := p.Perform(stepJob(jobs.DetectPostFaces, img2.ID)); err != nil || p.AI.calls("/analyze/faces") != before {
		t.Errorf("faces of a purged image: %v, %d calls", err, p.AI.calls("/analyze/faces")-before)
	}
	// Frames of a video never processed: discarded, saying what to run.
	if err := p.Perform(stepJob(jobs.GeneratePostFrames, vid.ID)); !isKilled(err) || !strings.Contains(err.Error(), jobs.ProcessPostVideo) {
		t.Errorf("frames without video processing: %v", err)
	}
	// A post that is gone: done.
	if err := p.Perform(stepJob(jobs.TagPostMetadata, 999_999)); err != nil {
		t.Errorf("metadata of a missing post: %v", err)
	}

	// The service is down: transient.
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	ai, _ := jobs.NewLocalAI(downURL, 0)
	dr := jobs.NewRigClock(t, t.TempDir(), p.Clock, func(o *jobs.Options) { o.LocalAI = ai })
	img3 := p.byType(data.MediaImage)[2]
	post := copyPost(t, p.Rig, dr, img3)
	if err := dr.Perform(stepJob(jobs.TagPostMetadata, post)); kindOf(err) != fault.Transient {
		t.Errorf("a service that is down: %v", err)
	}
	// No local AI service configured: discarded, naming the setting.
	bare := jobs.NewRigClock(t, t.TempDir(), p.Clock)
	post = copyPost(t, p.Rig, bare, img3)
	if err := bare.Perform(stepJob(jobs.TagPostMetadata, post)); !isKilled(err) || !strings.Contains(err.Error(), "LOCAL_AI_URL") {
		t.Errorf("without local AI: %v", err)
	}
}

// copyPost stores post (and its media file, when there is one) of rig
// from in rig to, and returns its id there.
func copyPost(t *testing.T, from, to *jobs.Rig, post *data.Post) int64 {
	t.Helper()
	ctx := t.Context()
	acct := &data.Account{Username: "copy" + strconv.FormatInt(post.ID, 10)}
	if a, err := to.DB.AccountByUsername(ctx, acct.Username); err == nil {
		acct = a
	} else if err := to.DB.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	q := *post
	q.ID, q.AccountID, q.ProfileID = 0, acct.ID, 0
	stored, _, err := to.DB.StorePosts(ctx, []*data.Post{&q})
	if err != nil {
		t.Fatal(err)
	}
	id := stored[0].ID
	if m, err := from.DB.PostMedia(ctx, post.ID, 0); err == nil {
		b, err := os.ReadFile(filepath.Join(from.Dir, "media", filepath.FromSlash(m.Path)))
		if err != nil {
			t.Fatal(err)
		}
		rel := fmt.Sprintf("copy/%d.bin", id)
		os.MkdirAll(filepath.Join(to.Dir, "media", "copy"), 0o700)
		if err := os.WriteFile(filepath.Join(to.Dir, "media", filepath.FromSlash(rel)), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := to.DB.AddPostMedia(ctx, &data.Media{PostID: id, Path: rel, Bytes: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// TestPipelineFramesAnswerChecked: frames that are not one per time asked,
// or not base64, are a runtime failure and nothing of them is stored.
func TestPipelineFramesAnswerChecked(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]string{
		"too few":    `{"frames":[{"at_ms":1000,"image":"U0JYSQA="}]}`,
		"not base64": `{"frames":[{"at_ms":1000,"image":"***"},{"at_ms":5000,"image":"U0JYSQA="}]}`,
		"not frames": `{"frames":"many"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, answer)
			}))
			t.Cleanup(srv.Close)
			ai, _ := jobs.NewLocalAI(srv.URL, 0)
			r := jobs.NewRig(t, t.TempDir(), func(o *jobs.Options) { o.LocalAI = ai })
			acct := r.AddAccounts(1, "f")[0]
			ps, _, _ := r.DB.StorePosts(t.Context(), []*data.Post{{AccountID: acct.ID, PostID: "v", MediaType: data.MediaVideo}})
			os.MkdirAll(filepath.Join(r.Dir, "media"), 0o700)
			os.WriteFile(filepath.Join(r.Dir, "media", "v.mp4"), []byte("SBXV\x00\x09"), 0o600)
			r.DB.AddPostMedia(t.Context(), &data.Media{PostID: ps[0].ID, Path: "v.mp4"})
			r.DB.SavePostAnalysis(t.Context(), &data.PostAnalysis{PostID: ps[0].ID, Capability: jobs.CapVideo, JobID: 1,
				Result: json.RawMessage(`{"duration_ms":9000,"keyframes_ms":[1000,5000]}`)})
			err := r.Perform(&queue.Job{ID: 7, Class: jobs.GeneratePostFrames, Args: json.RawMessage(fmt.Sprintf(`{"post_id":%d}`, ps[0].ID)), Attempt: 1})
			var ce *jobs.CallError
			if !errors.As(err, &ce) || ce.Kind != fault.Runtime {
				t.Fatalf("frames answer %s: %v", answer, err)
			}
			if got, _ := r.DB.PostAnalyses(t.Context(), ps[0].ID); len(got) != 1 {
				t.Fatalf("results stored from a bad answer: %+v", got)
			}
		})
	}
}

// TestPipelineLanesGatedWhileAIDown: every step runs on an AI capsule's
// lane, which the local-AI health gates: while the gates are closed the
// steps wait (the default lane works on), once open they run.
func TestPipelineLanesGatedWhileAIDown(t *testing.T) {
	t.Parallel()
	topo := lanes.DefaultTopology()
	seen := map[string]bool{}
	for _, s := range jobs.Steps() {
		lane, ok := topo.LaneOf(s.Queue)
		if !ok || !slices.Contains(lanes.AILanes, lane) {
			t.Errorf("%s runs on queue %s of lane %q, not an AI lane", s.Class, s.Queue, lane)
		}
		seen[lane] = true
	}
	for _, l := range lanes.AILanes {
		if l != "ai" && !seen[l] {
			t.Errorf("no step runs on the AI lane %s", l)
		}
	}

	p := newPipelineRig(t, sandbox.Options{Seed: 5})
	if err := lanes.RegisterBuiltins(p.Reg); err != nil {
		t.Fatal(err)
	}
	pool := p.pool(t)
	for _, l := range lanes.AILanes {
		if err := pool.SetGate(l, false, "local AI microservice: connection refused"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pool.Start(); err != nil {
		t.Fatal(err)
	}
	noop := p.Enqueue(lanes.JobRequest{Class: lanes.NoopJob, Queue: "default"})
	sub := p.Store.Subscribe()
	defer sub.Close()
	for {
		j, _ := p.Store.Get(noop.ID)
		if j.State == queue.StateDone {
			break
		}
		select {
		case <-sub.C:
		case <-t.Context().Done():
			t.Fatal("the default lane never ran its job")
		}
	}
	if err := p.Store.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if qi, _ := p.Store.Queue("ai"); qi.Counts[queue.StateReady] != sandbox.FeedPageSize || p.AI.calls(jobs.AnalyzePath) != 0 {
		t.Fatalf("with the gates closed: ai queue %v, %d analyses", qi.Counts, p.AI.calls(jobs.AnalyzePath))
	}
	for _, l := range lanes.AILanes {
		pool.SetGate(l, true, "")
	}
	p.waitAIDrained(t)
	for _, s := range jobs.Steps() {
		if qi, _ := p.Store.Queue(s.Queue); qi.Counts[queue.StateDone] == 0 {
			t.Errorf("nothing done on %s once the gates opened", s.Queue)
		}
	}
}

// FuzzParseFrames: whatever a frame generation answers, the answer is
// refused with an error or gives one non-empty image per time asked.
func FuzzParseFrames(f *testing.F) {
	for _, seed := range []string{
		`{"frames":[{"at_ms":1000,"image":"U0JYSQA="},{"at_ms":5000,"image":"U0JYSQE="}]}`,
		`{"frames":[{"at_ms":1000,"image":"U0JYSQA="}]}`,
		`{"frames":[{"at_ms":1000,"image":""},{"at_ms":5000,"image":"***"}]}`,
		`{"frames":"many"}`, `[]`, `null`, `{}`, `{"frames":[null,null]}`,
	} {
		f.Add([]byte(seed), 2)
	}
	f.Fuzz(func(t *testing.T, answer []byte, n int) {
		asked := make([]int64, max(0, n%(jobs.MaxFrames+1)))
		frames, err := jobs.ParseFrames(asked, answer)
		if err != nil {
			return
		}
		if len(frames) != len(asked) {
			t.Fatalf("%d frames for %d asked", len(frames), len(asked))
		}
		for i, fr := range frames {
			if len(fr) == 0 {
				t.Fatalf("frame %d is empty", i)
			}
		}
	})
}
