package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"conveyor/data"
	"conveyor/lanes"
	"conveyor/queue"
)

// Options configure a Catalog.
type Options struct {
	// DB holds the accounts, profiles, cursors, posts and the job records.
	// Required.
	DB *data.DB
	// Store receives the jobs the catalog's jobs enqueue. Required.
	Store *queue.Store
	// Registry is where Register puts the classes, and what makes every job
	// the catalog enqueues (Registry.NewJob). Required.
	Registry *lanes.Registry
	// Topology: the queues the catalog enqueues to must be served (checked
	// by NewJob). Optional.
	Topology lanes.Topology
	// Connector reaches the outside service; nil means Unconfigured.
	Connector Connector
	// LocalAI analyses posts; nil: AnalyzePostJob fails (permanently)
	// saying local AI is not configured.
	LocalAI *LocalAI
	// AIGate says whether work that needs the local AI service may be
	// started (the AI lanes are open) and, when not, why. Nil: always.
	AIGate func() (open bool, reason string)
	// Settings are the catalog's settings (DefaultSettings when zero).
	Settings Settings
	// MediaDir is where post media files are stored. Required.
	MediaDir string
	// ProfilesChanged is called after the jobs change accounts or
	// profiles (the live topic profiles_table_changed). Optional.
	ProfilesChanged func()
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default: discarded).
	Logger *slog.Logger
}

// Catalog is the seed's job catalog bound to its storage and services.
type Catalog struct {
	db       *data.DB
	store    *queue.Store
	reg      *lanes.Registry
	topo     lanes.Topology
	conn     Connector
	ai       *LocalAI
	aiGate   func() (bool, string)
	set      Settings
	mediaDir string
	changed  func()
	now      func() time.Time
	log      *slog.Logger
	rec      *recorder
}

// New checks opts and returns the catalog; Register adds its classes.
func New(opts Options) (*Catalog, error) {
	switch {
	case opts.DB == nil:
		return nil, errors.New("jobs: Options.DB is required")
	case opts.Store == nil:
		return nil, errors.New("jobs: Options.Store is required")
	case opts.Registry == nil:
		return nil, errors.New("jobs: Options.Registry is required")
	case opts.MediaDir == "":
		return nil, errors.New("jobs: Options.MediaDir is required")
	}
	c := &Catalog{db: opts.DB, store: opts.Store, reg: opts.Registry, topo: opts.Topology, conn: opts.Connector,
		ai: opts.LocalAI, aiGate: opts.AIGate, set: opts.Settings, mediaDir: opts.MediaDir, changed: opts.ProfilesChanged,
		now: opts.Now, log: opts.Logger}
	if c.conn == nil {
		c.conn = Unconfigured{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.set.Batching == nil {
		c.set = DefaultSettings()
	}
	for _, o := range Orchestrators() {
		b, ok := c.set.Batching[o.Class]
		if !ok {
			b = DefaultBatching
			c.set.Batching[o.Class] = b
		}
		if b.BatchSize < 1 || b.BatchSize > MaxBatchSize || b.Stagger < 0 || b.Jitter < 0 {
			return nil, fmt.Errorf("jobs: Settings.Batching[%s] is out of range: %+v", o.Class, b)
		}
	}
	if c.set.FeedSyncInterval <= 0 || c.set.MediaRetention <= 0 || c.set.FeedMaxPages <= 0 || c.set.FollowPagesPerRun <= 0 {
		return nil, fmt.Errorf("jobs: Settings must have a positive feed interval, media retention and page bounds: %+v", c.set)
	}
	c.rec = newRecorder(c.db, c.set.RecordRetention, c.now, c.log)
	return c, nil
}

// Settings returns the catalog's settings.
func (c *Catalog) Settings() Settings { return c.set }

// Register registers every class of the catalog in the catalog's registry.
func (c *Catalog) Register() error {
	var errs []error
	for _, cls := range c.classes() {
		errs = append(errs, c.reg.Register(cls))
	}
	return errors.Join(errs...)
}

// Classes returns the catalog's classes (what Register registers).
func (c *Catalog) classes() []lanes.Class {
	var out []lanes.Class
	for _, o := range Orchestrators() {
		out = append(out, c.orchestratorClass(o))
	}
	out = append(out, c.accountClasses()...)
	return append(out, c.pipelineClasses()...)
}

// enqueue makes each request a job through the registry's NewJob — the
// one place a job is made — and enqueues them all in one commit.
func (c *Catalog) enqueue(ctx context.Context, reqs []lanes.JobRequest) ([]queue.Result, error) {
	jobs := make([]queue.NewJob, len(reqs))
	for i, r := range reqs {
		nj, err := c.reg.NewJob(c.topo, r)
		if err != nil {
			return nil, lanes.Kill(fmt.Errorf("a job of %s would be refused: %w", r.Class, err))
		}
		jobs[i] = nj
	}
	return c.store.EnqueueMany(ctx, jobs)
}

// profilesChanged tells the live stream that accounts or profiles changed.
func (c *Catalog) profilesChanged() {
	if c.changed != nil {
		c.changed()
	}
}
