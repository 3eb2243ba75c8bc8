package lanes

import (
	"strings"
	"testing"
)

func TestDefaultTopologyIsTheSeeds(t *testing.T) {
	t.Parallel()
	topo := DefaultTopology()
	if err := topo.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := topo.Workers(); n != 34 {
		t.Fatalf("default workers %d, want 34", n)
	}
	for _, q := range append(append([]string{}, DefaultLaneQueues...), AILanes...) {
		if _, ok := topo.LaneOf(q); !ok {
			t.Errorf("queue %s has no lane", q)
		}
	}
	for _, l := range AILanes {
		if lane, _ := topo.LaneOf(l); lane != l {
			t.Errorf("capsule %s is served by lane %s", l, lane)
		}
	}
	if topo.Lanes[0].Strict() {
		t.Error("default lane should be weighted")
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		lane    string
		want    int
		wantErr string
	}{
		{"conveyor var", map[string]string{"CONVEYOR_DEFAULT_CONCURRENCY": "8"}, "default", 8, ""},
		{"sidekiq var", map[string]string{"SIDEKIQ_AI_FACE_QUEUE_CONCURRENCY": "5"}, "ai_face_queue", 5, ""},
		{"sidekiq short", map[string]string{"SIDEKIQ_AI_FACE_CONCURRENCY": "6"}, "ai_face_queue", 6, ""},
		{"conveyor wins", map[string]string{"CONVEYOR_AI_CONCURRENCY": "7", "SIDEKIQ_AI_CONCURRENCY": "1"}, "ai", 7, ""},
		{"zero disables", map[string]string{"CONVEYOR_AI_CONCURRENCY": "0"}, "ai", 0, ""},
		{"not a number", map[string]string{"SIDEKIQ_DEFAULT_CONCURRENCY": "lots"}, "", 0, `SIDEKIQ_DEFAULT_CONCURRENCY="lots"`},
		{"negative", map[string]string{"CONVEYOR_AI_CONCURRENCY": "-1"}, "", 0, `CONVEYOR_AI_CONCURRENCY="-1"`},
		{"too many", map[string]string{"CONVEYOR_AI_CONCURRENCY": "5000"}, "", 0, `CONVEYOR_AI_CONCURRENCY="5000"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topo := DefaultTopology()
			err := topo.ApplyEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range topo.Lanes {
				if l.Name == tc.lane && l.Concurrency != tc.want {
					t.Fatalf("lane %s concurrency %d, want %d", l.Name, l.Concurrency, tc.want)
				}
			}
		})
	}
}

func TestParseLanes(t *testing.T) {
	t.Parallel()
	topo, err := ParseLanes(strings.NewReader(`
lanes:
  - name: default
    queues: [sync, default]
    weights: [3, 1]
  - name: ai
    concurrency: 4
    order: weighted
    queues: [ai, ai_visual_queue]
  - name: bulk
    concurrency: 1
    queues: [a, b]
`))
	if err != nil {
		t.Fatal(err)
	}
	if topo.Lanes[0].Concurrency != 16 || topo.Lanes[0].Weights[0] != 3 {
		t.Fatalf("default lane %+v", topo.Lanes[0])
	}
	if w := topo.Lanes[1].Weights; len(w) != 2 || w[0] != 1 {
		t.Fatalf("weighted lane %+v", topo.Lanes[1])
	}
	if !topo.Lanes[2].Strict() {
		t.Fatalf("bulk lane should be strict: %+v", topo.Lanes[2])
	}
	for _, tc := range []struct{ doc, want string }{
		{"lanes:\n  - name: x\n    queues: [a]\n", "concurrency is required"},
		{"lanes:\n  - name: x\n    concurrency: 1\n    queues: [a]\n  - name: y\n    concurrency: 1\n    queues: [a]\n", `queue "a" is served by both`},
		{"lanes:\n  - name: x\n    concurrency: 1\n    queues: [a]\n    order: random\n", `order "random"`},
		{"lanes:\n  - name: x\n    concurrency: 1\n    queues: [a]\n    weigths: [1]\n", "weigths"},
		{"lanes:\n  - name: x\n    concurrency: 1\n    queues: [a b]\n", "queue name"},
		{"lanes: []\n", "no lanes"},
		{"lanes:\n  - name: x\n    concurrency: 1\n    queues: [a, b]\n    weights: [1]\n", "1 weights for 2 queues"},
	} {
		if _, err := ParseLanes(strings.NewReader(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func FuzzParseLanes(f *testing.F) {
	f.Add("lanes:\n  - name: default\n    concurrency: 2\n    queues: [a]\n")
	f.Add("lanes:\n  - name: x\n    order: weighted\n    concurrency: 1\n    queues: [a, b]\n    weights: [2, 1]\n")
	f.Add("lanes: [{name: ai, queues: [ai]}]")
	f.Fuzz(func(t *testing.T, doc string) {
		topo, err := ParseLanes(strings.NewReader(doc))
		if err != nil {
			return
		}
		if err := topo.Validate(); err != nil {
			t.Fatalf("parsed topology does not validate: %v", err)
		}
	})
}
