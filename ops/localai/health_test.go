package localai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"conveyor/data"
	"conveyor/internal/testlog"
	"conveyor/lanes"
	"conveyor/ops/events"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// aiRig is one AI-health test's world: a real SQLite database, a real job
// store and pool with the default topology, a manual broadcaster, loopback
// stand-ins for the microservice and Ollama, and the Health under test.
type aiRig struct {
	t      *testing.T
	db     *data.DB
	store  *queue.Store
	pool   *lanes.Pool
	bus    *events.Bus
	topics <-chan events.Notification
	micro  *healthServer
	ollama *healthServer
	sup    *Supervisor
	health *Health
}

type aiRigOption func(*Config, *HealthOptions, *[]SupervisorOption)

func newAIRig(t *testing.T, opts ...aiRigOption) *aiRig {
	t.Helper()
	dir := t.TempDir()
	r := &aiRig{t: t, micro: newHealthServer(t, 200, nil), ollama: newHealthServer(t, 200, nil)}
	db, err := data.Open(t.Context(), filepath.Join(dir, "conveyor.db"), data.Options{Logger: testlog.New(t), ReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.db = db
	t.Cleanup(func() {
		if err := db.IntegrityCheck(context.WithoutCancel(t.Context())); err != nil {
			t.Errorf("integrity: %v", err)
		}
		db.Close()
	})
	if r.store, err = queue.Open(filepath.Join(dir, "queue.bolt"), queue.Options{Logger: testlog.New(t)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.store.Check(); err != nil {
			t.Errorf("store check: %v", err)
		}
		r.store.Close()
	})
	r.bus = events.NewBus(events.Options{Manual: true})
	t.Cleanup(r.bus.Close)
	topics, cancel := r.bus.Subscribe()
	t.Cleanup(cancel)
	r.topics = topics

	cfg := Config{URL: r.micro.URL, OllamaURL: r.ollama.URL}
	hopts := HealthOptions{DB: db, Bus: r.bus, Logger: testlog.New(t)}
	var sopts []SupervisorOption
	for _, o := range opts {
		o(&cfg, &hopts, &sopts)
	}
	r.sup = NewSupervisor(cfg, dir, testlog.New(t), sopts...)
	r.health = NewHealth(r.sup, hopts)

	reg := lanes.NewRegistry()
	if err := lanes.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(r.health.Class()); err != nil {
		t.Fatal(err)
	}
	if r.pool, err = lanes.New(r.store, reg, lanes.DefaultTopology(), lanes.Options{Logger: testlog.New(t)}); err != nil {
		t.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs first.
	t.Cleanup(func() {
		if err := r.pool.Stop(context.Background()); err != nil {
			t.Errorf("stop pool: %v", err)
		}
	})
	if err := r.health.Bind(r.pool); err != nil {
		t.Fatal(err)
	}
	return r
}

// gates returns every lane's gate: open, or the reason it is closed.
func (r *aiRig) gates() map[string]string {
	out := map[string]string{}
	for _, ls := range r.pool.Stats() {
		if ls.Open {
			out[ls.Name] = "open"
		} else {
			out[ls.Name] = ls.Reason
		}
	}
	return out
}

// wantAIGates checks that every AI lane's gate is open (reason "open") or
// closed with a reason containing reason, and that the default lane is open.
func (r *aiRig) wantAIGates(reason string) {
	r.t.Helper()
	g := r.gates()
	if g["default"] != "open" {
		r.t.Errorf("default lane gate: %q", g["default"])
	}
	for _, name := range lanes.AILanes {
		if reason == "open" && g[name] != "open" || reason != "open" && (g[name] == "open" || !strings.Contains(g[name], reason)) {
			r.t.Errorf("lane %s gate: %q, want %q", name, g[name], reason)
		}
	}
}

func (r *aiRig) check() State {
	r.t.Helper()
	st, err := r.health.Check(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *aiRig) issues() []*data.Issue {
	r.t.Helper()
	is, _, err := r.db.FindIssues(r.t.Context(), data.IssueFilter{Source: data.SourceAIOutage})
	if err != nil {
		r.t.Fatal(err)
	}
	return is
}

// published flushes the broadcaster and returns the topics it delivered.
func (r *aiRig) published() []events.Topic {
	r.t.Helper()
	if !r.bus.Flush() {
		return nil
	}
	// A manual bus delivers during Flush: the notification is waiting.
	select {
	case n, ok := <-r.topics:
		if !ok {
			r.t.Fatal("subscription closed")
		}
		return n.Topics
	default:
		r.t.Fatal("flushed, but no notification was delivered")
		return nil
	}
}

func (r *aiRig) enqueue(class, q, args string) uint64 {
	r.t.Helper()
	res, err := r.store.Enqueue(context.Background(), queue.NewJob{Class: class, Queue: q, Args: json.RawMessage(args)})
	if err != nil {
		r.t.Fatal(err)
	}
	return res.ID
}

// waitState waits, on the store's change notifications, until job id is in
// state st; the test's deadline bounds it.
func (r *aiRig) waitState(id uint64, st queue.State) {
	r.t.Helper()
	sub := r.store.Subscribe()
	defer sub.Close()
	ctx, cancel := context.WithTimeout(r.t.Context(), waitLimit)
	defer cancel()
	for {
		j, err := r.store.Get(id)
		if err != nil {
			r.t.Fatal(err)
		}
		if j.State == st {
			return
		}
		select {
		case <-sub.C:
		case <-ctx.Done():
			r.t.Fatalf("job %d (%s) never became %s; it is %s", id, j.Class, st, j.State)
		}
	}
}

func (r *aiRig) state(id uint64) queue.State {
	r.t.Helper()
	if err := r.store.Flush(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	j, err := r.store.Get(id)
	if err != nil {
		r.t.Fatal(err)
	}
	return j.State
}

func TestAIHealthHoldsLanesUntilFirstCheck(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	st := r.health.State()
	if !st.Required || st.Healthy || st.LanesOpen || st.Reason != notCheckedReason || r.health.Healthy() {
		t.Fatalf("initial state %+v", st)
	}
	r.wantAIGates(notCheckedReason)

	st = r.check()
	if !st.Healthy || !st.LanesOpen || st.Reason != "" || len(st.Results) != 2 || st.CheckedAt.IsZero() || st.Since != st.CheckedAt {
		t.Fatalf("after a passing check %+v", st)
	}
	r.wantAIGates("open")
	latest, err := r.db.LatestHealth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || latest[0].Service != ServiceMicroservice || !latest[0].OK || latest[0].Status != "ok" || latest[1].Service != ServiceOllama {
		t.Fatalf("recorded %+v", latest)
	}
	if got := r.published(); !slices.Contains(got, events.TopicMetrics) || slices.Contains(got, events.TopicIssues) {
		t.Errorf("published %v", got)
	}
	if len(r.issues()) != 0 {
		t.Errorf("issues after a healthy check: %+v", r.issues())
	}
}

func TestAIHealthOutageOpensOneIssueAndResolvesIt(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	r.check()
	r.published()

	r.ollama.status.Store(503)
	st := r.check()
	if st.Healthy || st.LanesOpen || !strings.Contains(st.Reason, "Ollama at "+r.ollama.URL) || !strings.Contains(st.Reason, "503 Service Unavailable") {
		t.Fatalf("state during the outage %+v", st)
	}
	r.wantAIGates("local AI unhealthy: Ollama at " + r.ollama.URL)
	if got := r.published(); !slices.Contains(got, events.TopicIssues) || !slices.Contains(got, events.TopicMetrics) {
		t.Errorf("published on the outage: %v", got)
	}
	r.check() // the outage lasts: the same issue, one more occurrence
	if got := r.published(); !slices.Contains(got, events.TopicIssues) {
		t.Errorf("published on a new occurrence: %v", got)
	}
	is := r.issues()
	if len(is) != 1 {
		t.Fatalf("want one issue, got %+v", is)
	}
	first := is[0]
	if first.Status != data.IssueOpen || first.Occurrences != 2 || first.Fingerprint != OutageFingerprint(ServiceOllama) ||
		first.Class != ServiceOllama || first.Kind != outageKind || !strings.Contains(first.Title, "Ollama is not healthy") {
		t.Fatalf("issue %+v", first)
	}
	var detail struct{ Service, Status string }
	if err := json.Unmarshal(first.LastContext, &detail); err != nil || detail.Service != ServiceOllama || !strings.HasPrefix(detail.Status, "503") {
		t.Errorf("issue context %s (%v)", first.LastContext, err)
	}
	latest, err := r.db.LatestHealth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if o := latest[1]; o.Service != ServiceOllama || o.OK || o.Status != "503 Service Unavailable" || !strings.Contains(o.Error, "model store broken") {
		t.Errorf("recorded Ollama check %+v", o)
	}

	r.ollama.status.Store(200)
	if st := r.check(); !st.Healthy || !st.LanesOpen {
		t.Fatalf("after recovery %+v", st)
	}
	r.wantAIGates("open")
	if got := r.published(); !slices.Contains(got, events.TopicIssues) {
		t.Errorf("published on recovery: %v", got)
	}
	r.check()
	if got := r.published(); slices.Contains(got, events.TopicIssues) {
		t.Errorf("a healthy check after recovery republished issues: %v", got)
	}
	is = r.issues()
	if len(is) != 1 || is[0].ID != first.ID || is[0].Status != data.IssueResolved || is[0].ResolvedBy != data.ResolvedByAuto {
		t.Fatalf("after recovery %+v", is[0])
	}

	// A second outage reopens the same issue: still one issue.
	r.ollama.status.Store(500)
	r.check()
	is = r.issues()
	if len(is) != 1 || is[0].Status != data.IssueOpen || is[0].ReopenedCount != 1 {
		t.Fatalf("second outage %+v", is)
	}
}

func TestAIHealthResolvesAnOutageLeftOpenByAnEarlierRun(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	if _, _, err := r.db.UpsertIssue(t.Context(), data.IssueEvent{Fingerprint: OutageFingerprint(ServiceMicroservice),
		Source: data.SourceAIOutage, Title: "Local AI outage"}); err != nil {
		t.Fatal(err)
	}
	r.check()
	if is := r.issues(); len(is) != 1 || is[0].Status != data.IssueResolved {
		t.Fatalf("left-over outage %+v", is)
	}
}

func TestAIHealthSlowServiceIsDown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := newSlowServer(t, release)
	t.Cleanup(func() { close(release) })
	r := newAIRig(t, func(c *Config, _ *HealthOptions, s *[]SupervisorOption) {
		c.URL = slow.URL
		// Long enough for a loopback answer on a loaded machine; the slow
		// service never answers.
		*s = append(*s, WithHealthClient(&http.Client{Timeout: time.Second}))
	})
	st := r.check()
	if st.Healthy || !strings.Contains(st.Reason, "local AI microservice at "+slow.URL+"/health") {
		t.Fatalf("slow service %+v", st)
	}
	r.wantAIGates("local AI microservice")
	if is := r.issues(); len(is) != 1 || is[0].Class != ServiceMicroservice {
		t.Fatalf("issues %+v", is)
	}
}

// TestAIHealthJobsWaitThenRun runs the check job on the pool: while the
// microservice fails, a job on an AI queue waits in ready (jobs on the
// default lane run); once a check passes it runs.
func TestAIHealthJobsWaitThenRun(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	r.micro.status.Store(503)
	if err := r.pool.Start(); err != nil {
		t.Fatal(err)
	}
	held := r.enqueue(lanes.SleepJob, "ai_visual_queue", `{"ms":1}`)
	check := r.enqueue(HealthJob, HealthQueue, "")
	r.waitState(check, queue.StateDone)
	r.waitState(r.enqueue(lanes.NoopJob, "default", ""), queue.StateDone)
	if s := r.state(held); s != queue.StateReady {
		t.Fatalf("AI job is %s while local AI is down", s)
	}
	if r.health.Healthy() || len(r.issues()) != 1 {
		t.Fatalf("state %+v, issues %+v", r.health.State(), r.issues())
	}

	r.micro.status.Store(200)
	r.waitState(r.enqueue(HealthJob, HealthQueue, ""), queue.StateDone)
	r.waitState(held, queue.StateDone)
	if is := r.issues(); len(is) != 1 || is[0].Status != data.IssueResolved {
		t.Fatalf("issues after recovery %+v", is)
	}
}

func TestAIHealthJobPrunesOldChecks(t *testing.T) {
	t.Parallel()
	var later time.Time
	r := newAIRig(t, func(_ *Config, o *HealthOptions, _ *[]SupervisorOption) {
		o.Now = func() time.Time { return later }
	})
	for range 3 {
		r.check()
	}
	later = time.Now().Add(DefaultHealthRetention + time.Hour)
	if err := r.health.Class().Handler.Perform(t.Context(), &queue.Job{Class: HealthJob}); err != nil {
		t.Fatal(err)
	}
	// Only the newest check of each service is left, so nothing older remains.
	n, err := r.db.PruneHealthChecks(t.Context(), later.Add(time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("the job left %d old checks (%v)", n, err)
	}
	if latest, _ := r.db.LatestHealth(t.Context()); len(latest) != 2 {
		t.Fatalf("latest %+v", latest)
	}
}

func TestAIHealthNotRequired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		edit      func(*Config)
		lanesOpen bool
		reason    string
	}{
		{"nothing configured", func(c *Config) { c.URL = "" }, false, "LOCAL_AI_URL is not set"},
		{"microservice off", func(c *Config) { off := false; c.UseMicroservice = &off }, true, "USE_LOCAL_AI_MICROSERVICE=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newAIRig(t, func(c *Config, _ *HealthOptions, _ *[]SupervisorOption) { tc.edit(c) })
			st := r.check()
			if st.Required || st.Healthy || st.LanesOpen != tc.lanesOpen || !strings.Contains(st.Reason, tc.reason) || len(st.Results) != 0 {
				t.Fatalf("state %+v", st)
			}
			if tc.lanesOpen {
				r.wantAIGates("open")
			} else {
				r.wantAIGates(tc.reason)
			}
			if err := r.health.Class().Handler.Perform(t.Context(), &queue.Job{Class: HealthJob}); err != nil {
				t.Fatal(err)
			}
			if latest, _ := r.db.LatestHealth(t.Context()); len(latest) != 0 {
				t.Errorf("checks recorded although not required: %+v", latest)
			}
			if r.micro.hits.Load() != 0 {
				t.Errorf("the microservice was asked %d times", r.micro.hits.Load())
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			r.health.Watch(ctx, time.Millisecond) // returns at once
		})
	}
}

// TestAIHealthWatchFollowsFlaps flaps the microservice under Watch: the
// gates follow each flip, and each flip is recorded.
func TestAIHealthWatchFollowsFlaps(t *testing.T) {
	t.Parallel()
	r := newAIRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.health.Watch(ctx, 2*time.Millisecond)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitHealthy := func(want bool) {
		t.Helper()
		poll(t, fmt.Sprintf("healthy=%v", want), func() bool {
			st := r.health.State()
			return !st.Since.IsZero() && st.Healthy == want
		})
	}
	for range 3 {
		waitHealthy(true)
		r.wantAIGates("open")
		r.micro.status.Store(502)
		waitHealthy(false)
		r.wantAIGates("502 Bad Gateway")
		r.micro.status.Store(200)
	}
	waitHealthy(true)
	// The gates open first; the issue is resolved right after.
	poll(t, "the outage issue resolved", func() bool {
		is := r.issues()
		return len(is) == 1 && is[0].Status == data.IssueResolved
	})
	if is := r.issues(); is[0].ReopenedCount != 2 || is[0].Occurrences < 3 {
		t.Fatalf("issue after three flaps %+v", is[0])
	}
}

func TestAIHealthReportWithoutStorage(t *testing.T) {
	t.Parallel()
	sup := NewSupervisor(Config{URL: "http://127.0.0.1:9", OllamaURL: "http://127.0.0.1:9"}, t.TempDir(), nil)
	h := NewHealth(sup, HealthOptions{})
	bad := []HealthResult{{Service: ServiceMicroservice, URL: "u", Status: "down", Err: errors.New("down")}}
	if err := h.Report(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if st := h.State(); st.Healthy || st.Reason != "local AI unhealthy: local AI microservice at u: down" || st.CheckedAt.IsZero() {
		t.Fatalf("state %+v", st)
	}
	if err := h.Report(t.Context(), nil); err != nil || h.State().Results == nil {
		t.Fatalf("reporting nothing changed the state: %v %+v", err, h.State())
	}
}

func TestAIOutageFingerprint(t *testing.T) {
	t.Parallel()
	// The issue tracker's scheme for a problem's source and subject.
	if got, want := OutageFingerprint(ServiceOllama), failures.Fingerprint(string(data.SourceAIOutage), "", ServiceOllama, ""); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if OutageFingerprint(ServiceMicroservice) == OutageFingerprint(ServiceOllama) {
		t.Error("one fingerprint for two services")
	}
}

// BenchmarkAIHealthReport measures one report of two checks on real SQLite:
// the healthy steady state (two health rows), and an outage (two rows and
// an issue occurrence).
func BenchmarkAIHealthReport(b *testing.B) {
	dir := b.TempDir()
	db, err := data.Open(b.Context(), filepath.Join(dir, "conveyor.db"), data.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sup := NewSupervisor(Config{URL: "http://127.0.0.1:9"}, dir, nil)
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"healthy", true}, {"outage", false}} {
		b.Run(tc.name, func(b *testing.B) {
			h := NewHealth(sup, HealthOptions{DB: db})
			results := []HealthResult{
				{Service: ServiceMicroservice, URL: "http://127.0.0.1:9/health", OK: tc.ok, Status: "200 OK", CheckedAt: time.Now()},
				{Service: ServiceOllama, URL: "http://127.0.0.1:11434/api/version", OK: true, Status: "200 OK", CheckedAt: time.Now()},
			}
			if !tc.ok {
				results[0].Status, results[0].Err = "503 Service Unavailable", errors.New("503")
			}
			for b.Loop() {
				if err := h.Report(b.Context(), results); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAIHealthHealthy is what a caller of Healthy pays to ask.
func BenchmarkAIHealthHealthy(b *testing.B) {
	h := NewHealth(NewSupervisor(Config{URL: "http://127.0.0.1:9"}, b.TempDir(), nil), HealthOptions{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Healthy()
		}
	})
}
