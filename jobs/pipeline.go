package jobs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// The post-analysis pipeline. AnalyzePostJob (queue ai) asks the local AI
// service for a post's overview, then fans the post out to the steps on
// the AI capsules' queues: metadata for every post; visual analysis and
// face detection for an image; video processing for a video, which leads
// to frame generation, whose frames go to visual analysis in turn; and OCR
// for any image or frame in which visual analysis found text. Each step is
// one job that calls the service once, stores the answer as the post's
// result for that capability (and frame), and enqueues the steps its
// result leads to.
//
// A step is idempotent: its unique key is its class, post and frame, and
// a step whose result is stored already does not call again — it goes on
// from the stored result, so a run after a crash between storing and
// enqueuing the next steps only enqueues them.

// The pipeline's classes, one per capability.
const (
	AnalyzePostVisuals = "AnalyzePostVisualsJob"
	DetectPostFaces    = "DetectPostFacesJob"
	ExtractPostText    = "ExtractPostTextJob"
	TagPostMetadata    = "TagPostMetadataJob"
	ProcessPostVideo   = "ProcessPostVideoJob"
	GeneratePostFrames = "GeneratePostFramesJob"
)

// The capabilities, as their results are stored (data.PostAnalysis).
const (
	CapVisual   = "visual"
	CapFaces    = "faces"
	CapOCR      = "ocr"
	CapMetadata = "metadata"
	CapVideo    = "video"
	CapFrames   = "frames"
)

const (
	// MaxFrames bounds the frames generated from one video.
	MaxFrames = 8
	// MaxStepMediaBytes bounds the media file a step sends to the local
	// AI service (as base64 in its JSON request).
	MaxStepMediaBytes = 32 << 20
	// stepTimeout bounds one attempt of a step; frame generation has
	// framesTimeout.
	stepTimeout   = 2 * time.Minute
	framesTimeout = 5 * time.Minute
	// stepAttempts is each step's max attempts, as AnalyzePostJob's.
	stepAttempts = 10
)

// Step is one capability of the pipeline: its class, the AI capsule's
// queue it runs on, the capability its result is stored under, the local
// AI service's path it posts to, and whether it looks at a frame (its
// args then carry one).
type Step struct {
	Class      string
	Queue      string
	Capability string
	Path       string
	Frames     bool
}

// Steps is the pipeline's table, in the order a post goes through it.
func Steps() []Step {
	return []Step{
		{TagPostMetadata, "ai_metadata_queue", CapMetadata, "/analyze/metadata", false},
		{AnalyzePostVisuals, "ai_visual_queue", CapVisual, "/analyze/visual", true},
		{DetectPostFaces, "ai_face_queue", CapFaces, "/analyze/faces", false},
		{ExtractPostText, "ai_ocr_queue", CapOCR, "/analyze/ocr", true},
		{ProcessPostVideo, "video_processing_queue", CapVideo, "/video/process", false},
		{GeneratePostFrames, "frame_generation", CapFrames, "/video/frames", false},
	}
}

// step returns the table's row for class.
func step(class string) Step {
	for _, s := range Steps() {
		if s.Class == class {
			return s
		}
	}
	panic("jobs: no pipeline step " + class)
}

// FrameArgs are the args of the steps that look at an image (visual
// analysis, OCR): the stored post, and the frame — 0 (or absent) for the
// post's own image, n for frame n generated from its video.
type FrameArgs struct {
	PostID int64 `json:"post_id"`
	Frame  int   `json:"frame,omitempty"`
}

// Validate checks the id and the frame.
func (a *FrameArgs) Validate() error {
	switch {
	case a.PostID <= 0:
		return &lanes.ArgsError{Field: "post_id", Reason: "must be a positive post id"}
	case a.Frame < 0 || a.Frame > MaxFrames:
		return &lanes.ArgsError{Field: "frame", Reason: fmt.Sprintf("must be 0 (the post's image) to %d", MaxFrames)}
	}
	return nil
}

// pipelineClasses are the steps' classes. The steps without a frame take
// AnalyzeArgs ({"post_id"}), those with one FrameArgs.
func (c *Catalog) pipelineClasses() []lanes.Class {
	var out []lanes.Class
	for _, s := range Steps() {
		var h lanes.Handler
		if s.Frames {
			h = lanes.Typed(func(ctx context.Context, job *queue.Job, args FrameArgs) error {
				return c.runStep(ctx, job, s, args)
			})
		} else {
			h = lanes.Typed(func(ctx context.Context, job *queue.Job, args AnalyzeArgs) error {
				return c.runStep(ctx, job, s, FrameArgs{PostID: args.PostID})
			})
		}
		timeout := stepTimeout
		if s.Class == GeneratePostFrames {
			timeout = framesTimeout
		}
		out = append(out, lanes.Class{Name: s.Class, Queue: s.Queue, Timeout: timeout, MaxAttempts: stepAttempts, Handler: h})
	}
	return out
}

// stepRequest is the job request of step s for post p and frame: its
// unique key is the class, the post and (n ≥ 1) the frame; its context
// names the post's account and author.
func stepRequest(s Step, p *data.Post, frame int) lanes.JobRequest {
	key := s.Class + ":" + strconv.FormatInt(p.ID, 10)
	args := `{"post_id":` + strconv.FormatInt(p.ID, 10)
	if frame > 0 {
		key += ":" + strconv.Itoa(frame)
		args += `,"frame":` + strconv.Itoa(frame)
	}
	return lanes.JobRequest{Class: s.Class, Args: json.RawMessage(args + "}"), UniqueKey: key, UniqueFor: analysisHold,
		Context: postContext(p)}
}

// postContext is the job context of work on post p: its account and, when
// known, its author's profile.
func postContext(p *data.Post) map[string]string {
	m := map[string]string{queue.CtxAccountID: strconv.FormatInt(p.AccountID, 10)}
	if p.ProfileID != 0 {
		m[queue.CtxProfileID] = strconv.FormatInt(p.ProfileID, 10)
	}
	return m
}

// fanOutPost is what AnalyzePostJob enqueues for post p: metadata always;
// for an image with its media stored, visual analysis and face detection;
// for a video with its media stored, video processing.
func (c *Catalog) fanOutPost(ctx context.Context, p *data.Post) ([]lanes.JobRequest, error) {
	reqs := []lanes.JobRequest{stepRequest(step(TagPostMetadata), p, 0)}
	_, err := c.db.PostMedia(ctx, p.ID, 0)
	switch {
	case errors.Is(err, data.ErrNotFound):
		return reqs, nil
	case err != nil:
		return nil, err
	case p.MediaType == data.MediaVideo:
		return append(reqs, stepRequest(step(ProcessPostVideo), p, 0)), nil
	}
	return append(reqs, stepRequest(step(AnalyzePostVisuals), p, 0), stepRequest(step(DetectPostFaces), p, 0)), nil
}

// runStep runs step s for one post (and frame): unless its result is
// stored already, it sends the post's media (or caption) to the local AI
// service and stores the answer; then it enqueues the steps the result
// leads to. A post that is gone, or whose media file is, is done with
// nothing to do.
func (c *Catalog) runStep(ctx context.Context, job *queue.Job, s Step, args FrameArgs) error {
	p, err := c.db.PostByID(ctx, args.PostID)
	switch {
	case errors.Is(err, data.ErrNotFound):
		c.log.Info("post is gone; nothing to analyse", "class", job.Class, "job", job.ID, "post", args.PostID)
		return nil
	case err != nil:
		return err
	}
	res, err := c.db.PostAnalysisOf(ctx, p.ID, s.Capability, args.Frame)
	if errors.Is(err, data.ErrNotFound) {
		res, err = c.askStep(ctx, job, s, p, args.Frame)
		if res == nil && err == nil {
			return nil
		}
	}
	if err != nil {
		return err
	}
	next, err := c.nextSteps(s, p, res)
	if err != nil || len(next) == 0 {
		return err
	}
	_, err = c.enqueue(ctx, next)
	return err
}

// askStep builds step s's request, calls the local AI service, records the
// call and stores the result. It returns nil and no error when there is
// nothing to look at (the media file is gone).
func (c *Catalog) askStep(ctx context.Context, job *queue.Job, s Step, p *data.Post, frame int) (*data.PostAnalysis, error) {
	if c.ai == nil {
		return nil, errNoLocalAI
	}
	req := StepRequest{AccountID: p.AccountID, PostID: p.PostID, Frame: frame, MediaType: string(p.MediaType)}
	switch s.Capability {
	case CapMetadata:
		req.Author, req.Caption = p.Author, p.Caption
	case CapFrames:
		video, err := c.db.PostAnalysisOf(ctx, p.ID, CapVideo, 0)
		if errors.Is(err, data.ErrNotFound) {
			return nil, lanes.Kill(fmt.Errorf("post %d has no video processing result to take frames from: run %s first",
				p.ID, ProcessPostVideo))
		} else if err != nil {
			return nil, err
		}
		var v VideoResult
		if err := json.Unmarshal(video.Result, &v); err != nil {
			return nil, lanes.Kill(fmt.Errorf("post %d: the stored video processing result: %w", p.ID, err))
		}
		req.AtMS = v.KeyframesMS[:min(len(v.KeyframesMS), MaxFrames)]
	}
	if s.Capability != CapMetadata {
		media, err := c.readMedia(ctx, job, p, frame)
		if err != nil || media == "" {
			return nil, err
		}
		req.Media = media
	}
	start := time.Now()
	out, err := c.ai.Step(ctx, s.Path, req, job.Attempt)
	if err == nil && s.Capability == CapFrames {
		out, err = c.storeFrames(ctx, job, p, req.AtMS, out)
	}
	if err = c.record(ctx, job, p.AccountID, c.ai.Endpoint(s.Path), start, err); err != nil {
		return nil, err
	}
	res, _, err := c.db.SavePostAnalysis(ctx, &data.PostAnalysis{PostID: p.ID, Capability: s.Capability, Frame: frame,
		JobID: job.ID, Result: out})
	if errors.Is(err, data.ErrNotFound) {
		return nil, nil // the post was deleted meanwhile
	}
	return res, err
}

// readMedia returns the content of post p's media file for frame, in
// base64; "" (and the job is done) when the file or its row is gone.
func (c *Catalog) readMedia(ctx context.Context, job *queue.Job, p *data.Post, frame int) (string, error) {
	m, err := c.db.PostMedia(ctx, p.ID, frame)
	if errors.Is(err, data.ErrNotFound) {
		c.log.Info("no media stored; nothing to analyse", "class", job.Class, "job", job.ID, "post", p.ID, "frame", frame)
		return "", nil
	} else if err != nil {
		return "", err
	}
	name := filepath.Join(c.mediaDir, filepath.FromSlash(m.Path))
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.log.Info("the media file is gone; nothing to analyse", "class", job.Class, "job", job.ID, "post", p.ID, "path", m.Path)
		return "", nil
	case err != nil:
		return "", err
	case fi.Size() > MaxStepMediaBytes:
		return "", lanes.Kill(fmt.Errorf("post %d: media file %s has %d bytes, more than the %d a step sends",
			p.ID, m.Path, fi.Size(), MaxStepMediaBytes))
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // purged between the two looks
	} else if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// storeFrames writes the frames of a frame generation answer to the media
// directory (frame n of post p at <account>/<post>-f<n>.jpg), records them
// as the post's media, and returns the result to store: the frames without
// their bytes. An answer parseFrames refuses is a runtime failure.
func (c *Catalog) storeFrames(ctx context.Context, job *queue.Job, p *data.Post, asked []int64, out json.RawMessage) (json.RawMessage, error) {
	frames, err := parseFrames(asked, out)
	if err != nil {
		return nil, &CallError{Endpoint: c.ai.Endpoint(step(GeneratePostFrames).Path), Status: 200, Kind: fault.Runtime,
			Message: err.Error()}
	}
	res := FramesResult{Frames: make([]StoredFrame, 0, len(frames))}
	for i, f := range frames {
		n := i + 1
		rel := path.Join(strconv.FormatInt(p.AccountID, 10), fmt.Sprintf("%d-f%d.jpg", p.ID, n))
		if err := writeFile(filepath.Join(c.mediaDir, filepath.FromSlash(rel)), f.image); err != nil {
			return nil, fmt.Errorf("store frame %d of post %d: %w", n, p.ID, err)
		}
		if err := c.db.AddPostMedia(ctx, &data.Media{PostID: p.ID, Frame: n, Path: rel, Bytes: int64(len(f.image))}); err != nil {
			return nil, err
		}
		res.Frames = append(res.Frames, StoredFrame{Frame: n, AtMS: f.atMS, Path: rel, Bytes: len(f.image)})
	}
	c.log.Debug("frames stored", "job", job.ID, "post", p.ID, "frames", len(res.Frames))
	return json.Marshal(res)
}

// frame is one decoded frame of a frame generation answer.
type frame struct {
	atMS  int64
	image []byte
}

// parseFrames reads a frame generation answer (FramesAnswer) to the times
// asked: one frame per time, each a non-empty image in standard base64.
// The error says what is wrong with the answer.
func parseFrames(asked []int64, out json.RawMessage) ([]frame, error) {
	var ans FramesAnswer
	if err := json.Unmarshal(out, &ans); err != nil {
		return nil, fmt.Errorf("the answer is not frames: %v", err)
	}
	if len(ans.Frames) != len(asked) {
		return nil, fmt.Errorf("%d frames for %d times asked", len(ans.Frames), len(asked))
	}
	frames := make([]frame, len(ans.Frames))
	for i, f := range ans.Frames {
		b, err := base64.StdEncoding.DecodeString(f.Image)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("frame %d is not a base64 image", i+1)
		}
		if len(b) > MaxStepMediaBytes {
			return nil, fmt.Errorf("frame %d has %d bytes, more than %d", i+1, len(b), MaxStepMediaBytes)
		}
		frames[i] = frame{atMS: f.AtMS, image: b}
	}
	return frames, nil
}

// nextSteps are the steps step s's stored result leads to: OCR of an
// image or frame with text, frame generation of a processed video, and
// visual analysis of each generated frame.
func (c *Catalog) nextSteps(s Step, p *data.Post, res *data.PostAnalysis) ([]lanes.JobRequest, error) {
	undecodable := func(err error) error {
		return lanes.Kill(fmt.Errorf("post %d: the stored %s result cannot be read: %w", p.ID, s.Capability, err))
	}
	switch s.Capability {
	case CapVisual:
		var v VisualResult
		if err := json.Unmarshal(res.Result, &v); err != nil {
			return nil, undecodable(err)
		}
		if v.TextRegions > 0 {
			return []lanes.JobRequest{stepRequest(step(ExtractPostText), p, res.Frame)}, nil
		}
	case CapVideo:
		var v VideoResult
		if err := json.Unmarshal(res.Result, &v); err != nil {
			return nil, undecodable(err)
		}
		if len(v.KeyframesMS) > 0 {
			return []lanes.JobRequest{stepRequest(step(GeneratePostFrames), p, 0)}, nil
		}
	case CapFrames:
		var f FramesResult
		if err := json.Unmarshal(res.Result, &f); err != nil {
			return nil, undecodable(err)
		}
		var out []lanes.JobRequest
		for _, fr := range f.Frames {
			if fr.Frame >= 1 && fr.Frame <= MaxFrames {
				out = append(out, stepRequest(step(AnalyzePostVisuals), p, fr.Frame))
			}
		}
		return out, nil
	}
	return nil, nil
}

// errNoLocalAI discards a job that needs the local AI service when none is
// configured.
var errNoLocalAI = lanes.Kill(&CallError{Kind: fault.Runtime, Permanent: true, Endpoint: "local AI",
	Message: "the local AI service is not configured: set LOCAL_AI_URL (see docs/local-ai.md)"})
