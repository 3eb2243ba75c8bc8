package lanes

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"conveyor/queue"
)

// DefaultTimeout is how long an attempt may run when its class does not say.
const DefaultTimeout = 30 * time.Minute

// Class is a job class: the stable name jobs are enqueued under (never a Go type
// name), its handler and its options.
type Class struct {
	Name    string
	Handler Handler
	// Queue is where jobs of the class go when the enqueue names none.
	Queue string
	// Timeout bounds one attempt (default 30 min); the handler's ctx ends then.
	Timeout time.Duration
	// MaxAttempts is the default for jobs of the class (0: the store's, 25).
	MaxAttempts int
	// Backoff gives the wait before the retry that follows failed attempt n
	// (1-based). Default: Sidekiq's curve, SidekiqBackoff.
	Backoff func(attempt int) time.Duration
	// Args declares the args the class takes, checked at every enqueue
	// (NewJob). Nil takes the handler's declaration (Typed handlers have
	// one); a class that declares none is refused: say FreeForm when the
	// class takes any JSON.
	Args Args
}

// Registry maps class names to classes. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	classes map[string]Class
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{classes: map[string]Class{}} }

// Register adds a class. It refuses a duplicate name, an empty name or queue, and
// a nil handler, so that mistakes stop start-up.
func (r *Registry) Register(c Class) error {
	switch {
	case c.Name == "":
		return fmt.Errorf("lanes: register: class name is required")
	case c.Handler == nil:
		return fmt.Errorf("lanes: register %s: handler is nil", c.Name)
	case c.Queue == "":
		return fmt.Errorf("lanes: register %s: queue is required", c.Name)
	case c.Timeout < 0 || c.MaxAttempts < 0:
		return fmt.Errorf("lanes: register %s: timeout and max attempts must not be negative", c.Name)
	case c.MaxAttempts > queue.MaxAttemptsLimit:
		return fmt.Errorf("lanes: register %s: max attempts must be at most %d (got %d)", c.Name, queue.MaxAttemptsLimit, c.MaxAttempts)
	}
	if c.Args == nil {
		d, ok := c.Handler.(DeclaredArgs)
		if !ok {
			return fmt.Errorf("lanes: register %s: the class declares no args: use a Typed handler, or set Args (ArgsOf[T](), NoArgs, or FreeForm for any JSON)", c.Name)
		}
		c.Args = d.Args()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.classes[c.Name]; dup {
		return fmt.Errorf("lanes: register: class %s is already registered", c.Name)
	}
	r.classes[c.Name] = c
	return nil
}

// MustRegister is Register that panics, for registrations at start-up.
func (r *Registry) MustRegister(c Class) {
	if err := r.Register(c); err != nil {
		panic(err)
	}
}

// Lookup returns the class with the given name.
func (r *Registry) Lookup(name string) (Class, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.classes[name]
	return c, ok
}

// Names returns the registered class names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.classes))
	for n := range r.classes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SidekiqBackoff is Sidekiq's retry curve: attempt⁴ + 15 + random(10)·(attempt+1)
// seconds, where attempt counts failures so far from 0 (so the first retry waits
// 15–24 s and the 25th about 20 days after the first failure in all).
func SidekiqBackoff(attempt int) time.Duration {
	n := max(0, attempt-1)
	secs := n*n*n*n + 15 + rand.IntN(10)*(n+1)
	return time.Duration(secs) * time.Second
}
