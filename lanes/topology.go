package lanes

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Lane is a worker pool (Sidekiq's capsule): a set of queues served by
// Concurrency workers.
type Lane struct {
	Name    string
	Queues  []string
	Weights []int // one per queue: weighted-random order; nil: strict order
	// Concurrency is the number of workers; 0 disables the lane (its jobs wait).
	Concurrency int
}

// Strict reports whether the lane serves its queues in strict order.
func (l Lane) Strict() bool { return l.Weights == nil }

// Topology is the set of lanes. Every queue is served by exactly one lane.
type Topology struct {
	Lanes []Lane
}

// The seed's queues.
var (
	// DefaultLaneQueues are served by the default lane, equal weights.
	DefaultLaneQueues = []string{"sync", "engagements", "story_downloads", "post_downloads", "profiles",
		"messages", "avatars", "maintenance", "default"}
)

// DefaultTopology is the seed's: a default lane of 16 workers serving the base
// queues with equal weights (so that a flood in one queue never starves the
// others; Sidekiq's default for an unweighted list is strict order, which we
// keep for configured lanes), and one lane per dedicated capsule. 34 workers in
// all, sized for a ~20-thread workstation that also runs the web UI, the local
// AI service and Ollama.
func DefaultTopology() Topology {
	w := make([]int, len(DefaultLaneQueues))
	for i := range w {
		w[i] = 1
	}
	return Topology{Lanes: []Lane{
		{Name: "default", Queues: slices.Clone(DefaultLaneQueues), Weights: w, Concurrency: 16},
		{Name: "ai", Queues: []string{"ai"}, Concurrency: 2},
		{Name: "ai_visual_queue", Queues: []string{"ai_visual_queue"}, Concurrency: 3},
		{Name: "ai_face_queue", Queues: []string{"ai_face_queue"}, Concurrency: 3},
		{Name: "ai_ocr_queue", Queues: []string{"ai_ocr_queue"}, Concurrency: 2},
		{Name: "video_processing_queue", Queues: []string{"video_processing_queue"}, Concurrency: 3},
		{Name: "ai_metadata_queue", Queues: []string{"ai_metadata_queue"}, Concurrency: 3},
		{Name: "frame_generation", Queues: []string{"frame_generation"}, Concurrency: 2},
	}}
}

// AILanes are the lanes held closed while the local AI service is down.
var AILanes = []string{"ai", "ai_visual_queue", "ai_face_queue", "ai_ocr_queue", "video_processing_queue",
	"ai_metadata_queue", "frame_generation"}

// MaxConcurrency bounds one lane's workers.
const MaxConcurrency = 1000

// Validate checks names, weights and concurrency, and that every queue belongs
// to exactly one lane.
func (t Topology) Validate() error {
	if len(t.Lanes) == 0 {
		return fmt.Errorf("lanes: no lanes configured")
	}
	lanes := map[string]bool{}
	owner := map[string]string{}
	for _, l := range t.Lanes {
		if !validName(l.Name) {
			return fmt.Errorf("lanes: lane name %q: use letters, digits and _", l.Name)
		}
		if lanes[l.Name] {
			return fmt.Errorf("lanes: lane %q is defined twice", l.Name)
		}
		lanes[l.Name] = true
		if len(l.Queues) == 0 {
			return fmt.Errorf("lanes: lane %q has no queues", l.Name)
		}
		if l.Concurrency < 0 || l.Concurrency > MaxConcurrency {
			return fmt.Errorf("lanes: lane %q: concurrency %d is out of range 0..%d", l.Name, l.Concurrency, MaxConcurrency)
		}
		if l.Weights != nil && len(l.Weights) != len(l.Queues) {
			return fmt.Errorf("lanes: lane %q: %d weights for %d queues", l.Name, len(l.Weights), len(l.Queues))
		}
		for i, q := range l.Queues {
			if !validQueue(q) {
				return fmt.Errorf("lanes: lane %q: queue name %q: use letters, digits and _ . : -", l.Name, q)
			}
			if other, dup := owner[q]; dup {
				return fmt.Errorf("lanes: queue %q is served by both lane %q and lane %q", q, other, l.Name)
			}
			owner[q] = l.Name
			if l.Weights != nil && (l.Weights[i] < 1 || l.Weights[i] > 1000) {
				return fmt.Errorf("lanes: lane %q: weight of queue %q must be 1..1000 (got %d)", l.Name, q, l.Weights[i])
			}
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func validQueue(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-') {
			return false
		}
	}
	return true
}

// LaneOf returns the lane that serves the queue.
func (t Topology) LaneOf(queue string) (string, bool) {
	for _, l := range t.Lanes {
		if slices.Contains(l.Queues, queue) {
			return l.Name, true
		}
	}
	return "", false
}

// Queues returns every queue of every lane, lane by lane.
func (t Topology) Queues() []string {
	var out []string
	for _, l := range t.Lanes {
		out = append(out, l.Queues...)
	}
	return out
}

// Workers returns the total concurrency.
func (t Topology) Workers() int {
	n := 0
	for _, l := range t.Lanes {
		n += l.Concurrency
	}
	return n
}

// EnvNames returns the environment variables that override a lane's concurrency,
// strongest first: CONVEYOR_<LANE>_CONCURRENCY, SIDEKIQ_<LANE>_CONCURRENCY and,
// for lanes named …_queue, SIDEKIQ_<LANE without _QUEUE>_CONCURRENCY (the seed's
// capsules were configured under both spellings).
func EnvNames(lane string) []string {
	up := strings.ToUpper(lane)
	names := []string{"CONVEYOR_" + up + "_CONCURRENCY", "SIDEKIQ_" + up + "_CONCURRENCY"}
	if short, ok := strings.CutSuffix(up, "_QUEUE"); ok {
		names = append(names, "SIDEKIQ_"+short+"_CONCURRENCY")
	}
	return names
}

// ApplyEnv overrides lane concurrency from the environment (see EnvNames). A
// value that is not an integer in 0..1000 is an error naming the variable and
// the value.
func (t *Topology) ApplyEnv(getenv func(string) string) error {
	for i := range t.Lanes {
		for _, name := range EnvNames(t.Lanes[i].Name) {
			v := strings.TrimSpace(getenv(name))
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > MaxConcurrency {
				return fmt.Errorf("%s=%q: want a whole number of workers from 0 to %d", name, getenv(name), MaxConcurrency)
			}
			t.Lanes[i].Concurrency = n
			break
		}
	}
	return nil
}

// LaneConfig is one lane in a configuration file:
//
//	lanes:
//	  - name: default
//	    concurrency: 16
//	    order: weighted        # or strict (the default when no weights are given)
//	    queues: [sync, default]
//	    weights: [3, 1]        # optional; implies weighted
type LaneConfig struct {
	Name        string   `yaml:"name"`
	Concurrency *int     `yaml:"concurrency"`
	Order       string   `yaml:"order"`
	Queues      []string `yaml:"queues"`
	Weights     []int    `yaml:"weights"`
}

// FromConfig builds a topology from configured lanes. A lane whose name matches a
// default lane and gives no concurrency keeps the default's.
func FromConfig(cfg []LaneConfig) (Topology, error) {
	def := DefaultTopology()
	var t Topology
	for i, lc := range cfg {
		l := Lane{Name: lc.Name, Queues: lc.Queues}
		where := fmt.Sprintf("lanes[%d] (%s)", i, lc.Name)
		switch {
		case lc.Concurrency != nil:
			l.Concurrency = *lc.Concurrency
		default:
			found := false
			for _, d := range def.Lanes {
				if d.Name == lc.Name {
					l.Concurrency, found = d.Concurrency, true
				}
			}
			if !found {
				return Topology{}, fmt.Errorf("%s: concurrency is required", where)
			}
		}
		switch lc.Order {
		case "", "strict":
			if lc.Order == "strict" && lc.Weights != nil {
				return Topology{}, fmt.Errorf("%s: order strict takes no weights", where)
			}
			l.Weights = lc.Weights
		case "weighted":
			l.Weights = lc.Weights
			if l.Weights == nil {
				l.Weights = make([]int, len(l.Queues))
				for j := range l.Weights {
					l.Weights[j] = 1
				}
			}
		default:
			return Topology{}, fmt.Errorf("%s: order %q: want strict or weighted", where, lc.Order)
		}
		t.Lanes = append(t.Lanes, l)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// ParseLanes reads a YAML document holding only a `lanes:` list (tests and tools;
// the server's configuration file embeds the same list).
func ParseLanes(r io.Reader) (Topology, error) {
	var doc struct {
		Lanes []LaneConfig `yaml:"lanes"`
	}
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return Topology{}, fmt.Errorf("lanes: %w", err)
	}
	return FromConfig(doc.Lanes)
}
