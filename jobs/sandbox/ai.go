package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"conveyor/jobs"
	"conveyor/ops/fault"
)

// maxAIRequestBytes bounds a request to the local AI stand-in (it carries
// media).
const maxAIRequestBytes = 4 << 20

// AIHandler is the local AI stand-in: what the local-AI guardrails check
// (GET /health, and Ollama's GET /api/version and /api/tags), what
// AnalyzePostJob calls (POST /analyze with a jobs.AnalyzeRequest; the
// answer is a JSON object of labels, a summary and a sentiment), and the
// post-analysis pipeline's steps (POST to each jobs.Steps path with a
// jobs.StepRequest). The steps read the sandbox's synthetic media (text
// and faces in an image, a video's duration), so their answers follow from
// the post. Every call takes the sandbox's latency and fails transiently
// at its fault rate (503, or 429 with a Retry-After); media the stand-in
// cannot read is a 422 (a runtime failure).
func (s *Sandbox) AIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": "conveyor sandbox local AI"})
	})
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": "0.0.0-sandbox"})
	})
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"models": []map[string]string{{"name": "sandbox-vision:latest"}}})
	})
	mux.HandleFunc("POST "+jobs.AnalyzePath, func(w http.ResponseWriter, r *http.Request) {
		var req jobs.AnalyzeRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxAIRequestBytes)).Decode(&req); err != nil || req.PostID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"post_id\",\"caption\",…}"})
			return
		}
		attempt := r.Header.Get("X-Conveyor-Attempt")
		if err := s.wait(r.Context(), "analyze", req.PostID, attempt); err != nil {
			return
		}
		if err := s.fault("sandbox analyze", false, "analyze", req.PostID, attempt); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s.analysis(req))
	})
	answers := map[string]func(jobs.StepRequest, media) (any, error){
		jobs.CapMetadata: s.metadata,
		jobs.CapVisual:   s.visual,
		jobs.CapFaces:    s.faces,
		jobs.CapOCR:      s.ocr,
		jobs.CapVideo:    s.processVideo,
		jobs.CapFrames:   s.frames,
	}
	for _, st := range jobs.Steps() {
		mux.HandleFunc("POST "+st.Path, s.step(st.Capability, answers[st.Capability]))
	}
	return mux
}

// step serves one step of the pipeline: it decodes the request and its
// media (none for metadata), takes the latency, draws the fault and
// answers.
func (s *Sandbox) step(capability string, answer func(jobs.StepRequest, media) (any, error)) http.HandlerFunc {
	endpoint := "sandbox " + capability
	return func(w http.ResponseWriter, r *http.Request) {
		var req jobs.StepRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxAIRequestBytes)).Decode(&req); err != nil || req.PostID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a step request: {\"post_id\",\"media\",…}"})
			return
		}
		attempt, frame := r.Header.Get("X-Conveyor-Attempt"), strconv.Itoa(req.Frame)
		if err := s.wait(r.Context(), capability, req.PostID, frame, attempt); err != nil {
			return
		}
		if err := s.fault(endpoint, false, capability, req.PostID, frame, attempt); err != nil {
			writeError(w, err)
			return
		}
		var m media
		if capability != jobs.CapMetadata {
			raw, err := base64.StdEncoding.DecodeString(req.Media)
			if err == nil {
				m, err = readMedia(raw)
			}
			wantVideo := capability == jobs.CapVideo || capability == jobs.CapFrames
			if err == nil && m.video != wantVideo {
				err = fmt.Errorf("%s takes %s, not %s", capability, map[bool]string{true: "a video", false: "an image"}[wantVideo],
					map[bool]string{true: "a video", false: "an image"}[m.video])
			}
			if err != nil {
				writeError(w, &jobs.CallError{Endpoint: endpoint, Status: http.StatusUnprocessableEntity, Kind: fault.Runtime,
					Message: "sandbox: " + err.Error()})
				return
			}
		}
		out, err := answer(req, m)
		if err != nil {
			writeError(w, &jobs.CallError{Endpoint: endpoint, Status: http.StatusUnprocessableEntity, Kind: fault.Runtime,
				Message: "sandbox: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// analysis is the stand-in's deterministic analysis of a post.
func (s *Sandbox) analysis(req jobs.AnalyzeRequest) map[string]any {
	x := s.h("analysis", req.PostID)
	labels := captionThings(req.Caption)
	if len(labels) == 0 {
		labels = append(labels, things[x%uint64(len(things))])
	}
	sentiments := []string{"positive", "neutral", "negative"}
	return map[string]any{
		"labels":     labels,
		"summary":    fmt.Sprintf("%s posted about %s", req.Author, strings.Join(labels, " and ")),
		"sentiment":  sentiments[x%3],
		"confidence": float64(60+x%40) / 100,
		"model":      "sandbox-vision",
	}
}

// captionThings are the things a caption names.
func captionThings(caption string) []string {
	out := []string{}
	for _, t := range things {
		if strings.Contains(strings.ToLower(caption), t) {
			out = append(out, t)
		}
	}
	return out
}

func (s *Sandbox) metadata(req jobs.StepRequest, _ media) (any, error) {
	tags := []string{}
	for _, t := range captionThings(req.Caption) {
		tags = append(tags, "#"+t)
	}
	return map[string]any{
		"language": "en",
		"hashtags": tags,
		"topics":   captionThings(req.Caption),
		"caption":  fmt.Sprintf("A %s by %s", req.MediaType, req.Author),
		"model":    "sandbox-text",
	}, nil
}

func (s *Sandbox) visual(req jobs.StepRequest, m media) (any, error) {
	x := s.h("visual", req.PostID, strconv.Itoa(req.Frame))
	regions := 0
	if m.text {
		regions = 1 + int(x%3)
	}
	return map[string]any{
		"labels":       []string{things[x%uint64(len(things))], things[(x>>8)%uint64(len(things))]},
		"people":       m.faces,
		"text_regions": regions,
		"confidence":   float64(70+x%30) / 100,
		"model":        "sandbox-vision",
	}, nil
}

func (s *Sandbox) faces(req jobs.StepRequest, m media) (any, error) {
	faces := []map[string]any{}
	for i := range m.faces {
		x := s.h("face", req.PostID, strconv.Itoa(req.Frame), strconv.Itoa(i))
		faces = append(faces, map[string]any{
			"box":        []int{int(x % 800), int((x >> 10) % 800), 80 + int((x>>20)%120), 80 + int((x>>30)%120)},
			"confidence": float64(80+x%20) / 100,
		})
	}
	return map[string]any{"faces": faces, "count": len(faces), "model": "sandbox-faces"}, nil
}

func (s *Sandbox) ocr(req jobs.StepRequest, m media) (any, error) {
	if !m.text {
		return map[string]any{"text": "", "lines": []string{}, "model": "sandbox-ocr"}, nil
	}
	x := s.h("ocr", req.PostID, strconv.Itoa(req.Frame))
	lines := []string{}
	for i := range 1 + int(x%3) {
		y := s.h("ocr-line", req.PostID, strconv.Itoa(req.Frame), strconv.Itoa(i))
		lines = append(lines, fmt.Sprintf("%s %s %d", strings.ToUpper(things[y%uint64(len(things))]), s.word(y>>8), y%100))
	}
	return map[string]any{"text": strings.Join(lines, "\n"), "lines": lines, "language": "en", "model": "sandbox-ocr"}, nil
}

// processVideo answers video processing: the video's duration and 3 to 5
// keyframes spread over it.
func (s *Sandbox) processVideo(req jobs.StepRequest, m media) (any, error) {
	d := m.duration.Milliseconds()
	n := 3 + int64(s.h("keyframes", req.PostID)%3)
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = d * int64(2*i+1) / (2 * n)
	}
	return jobs.VideoResult{DurationMS: d, KeyframesMS: keys}, nil
}

// frames answers frame generation: one synthetic image per time asked
// (about one in three has text in it).
func (s *Sandbox) frames(req jobs.StepRequest, m media) (any, error) {
	if len(req.AtMS) == 0 || len(req.AtMS) > jobs.MaxFrames {
		return nil, fmt.Errorf("ask for 1 to %d frames (at_ms), not %d", jobs.MaxFrames, len(req.AtMS))
	}
	out := jobs.FramesAnswer{Frames: make([]jobs.GeneratedFrame, 0, len(req.AtMS))}
	for _, at := range req.AtMS {
		if at < 0 || at > m.duration.Milliseconds() {
			return nil, fmt.Errorf("at_ms %d is outside the video (0 to %d)", at, m.duration/time.Millisecond)
		}
		id := req.PostID + "@" + strconv.FormatInt(at, 10)
		x := s.h("frame", id)
		out.Frames = append(out.Frames, jobs.GeneratedFrame{AtMS: at,
			Image: base64.StdEncoding.EncodeToString(s.image(id, x%3 == 0, int(x>>8)%3))})
	}
	return out, nil
}
