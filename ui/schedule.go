package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"conveyor/cron"
)

// Schedule is what the schedule endpoints need: *cron.Scheduler has it.
type Schedule interface {
	// Entries returns every entry, in schedule order.
	Entries() []cron.View
	// Health is the scheduler's liveness.
	Health() cron.Health
	// EnqueueNow enqueues one run of an entry now and returns the job id.
	EnqueueNow(ctx context.Context, name string) (uint64, error)
	// SetEnabled switches an entry on or off for good.
	SetEnabled(ctx context.Context, name string, enabled bool) (cron.View, error)
}

// ScheduleConfig is the schedule's part of Config.
type ScheduleConfig struct {
	// Schedule serves the /api/v1/cron endpoints. Nil answers them with 503.
	Schedule Schedule
}

// scheduleRoutes are the schedule endpoints:
//
//	GET  /api/v1/cron                → 200 {"scheduler":{…},"entries":[…]}
//	POST /api/v1/cron/{name}/enqueue → 201 {"id","state","entry"}: one run now
//	POST /api/v1/cron/{name}/enable  → 200 the entry
//	POST /api/v1/cron/{name}/disable → 200 the entry
//
// An unknown name is 404 (field "name"); enqueueing an entry that cannot
// run here (its class is not registered, no lane serves its queue) is 422;
// a scheduler that is not running, or none configured, is 503.
func (s *Server) scheduleRoutes() []Route {
	api := func(method, path string, h endpointFunc) Route {
		return Route{Method: method, Path: path, Auth: true, handle: s.endpoint(h)}
	}
	return []Route{
		api(http.MethodGet, "/api/v1/cron", s.listCron),
		api(http.MethodPost, "/api/v1/cron/:name/enqueue", s.enqueueCron),
		api(http.MethodPost, "/api/v1/cron/:name/enable", s.enableCron),
		api(http.MethodPost, "/api/v1/cron/:name/disable", s.disableCron),
	}
}

// cronJSON answers GET /api/v1/cron.
type cronJSON struct {
	Scheduler schedulerJSON   `json:"scheduler"`
	Entries   []cronEntryJSON `json:"entries"`
}

// schedulerJSON is the scheduler's liveness: ok is false when state is not
// "ok" (late, failing, stopped, starting); lateness is how long after its
// scheduled instant a tick was durable in the queue.
type schedulerJSON struct {
	State          string  `json:"state"`
	OK             bool    `json:"ok"`
	Detail         string  `json:"detail"`
	Since          stamp   `json:"since"`
	LastPass       stamp   `json:"last_pass"`
	NextWake       stamp   `json:"next_wake"`
	LateAfterS     float64 `json:"late_after_s"`
	Fires          uint64  `json:"fires"`
	Misses         uint64  `json:"misses"`
	LateFires      uint64  `json:"late_fires"`
	LastLatenessMS float64 `json:"last_lateness_ms"`
	MaxLatenessMS  float64 `json:"max_lateness_ms"`
}

// cronEntryJSON is one entry. status is active, disabled, unavailable
// (enabled, but it cannot run here: see unavailable) or ended (no more
// ticks); enabled_by is "file" or "operator". Times are null when they have
// not happened; next_tick is null unless the entry is active. last_job_id
// is the job of the last tick fired, manual_job_id of the last enqueue-now.
type cronEntryJSON struct {
	Name         string          `json:"name"`
	Cron         string          `json:"cron"`
	CronWords    string          `json:"cron_words"` // the line in words ("every 5 minutes"); "" for the shapes cron.Describe leaves alone
	Zone         string          `json:"zone"`
	Class        string          `json:"class"`
	Queue        string          `json:"queue"`
	Description  string          `json:"description"`
	Args         json.RawMessage `json:"args"`
	Status       string          `json:"status"`
	Enabled      bool            `json:"enabled"`
	EnabledBy    string          `json:"enabled_by"`
	Unavailable  string          `json:"unavailable"`
	Ended        string          `json:"ended"`
	Missed       string          `json:"missed"`
	CatchUpS     *float64        `json:"catch_up_window_s"`
	MaxAttempts  *int            `json:"max_attempts"`
	Since        stamp           `json:"since"`
	LastTick     stamp           `json:"last_tick"`
	LastFire     stamp           `json:"last_fire"`
	LastJobID    *uint64         `json:"last_job_id"`
	ManualAt     stamp           `json:"manual_at"`
	ManualJobID  *uint64         `json:"manual_job_id"`
	NextTick     stamp           `json:"next_tick"`
	MissedRanges []missedJSON    `json:"missed_ranges"`
	Error        string          `json:"error"`
}

// missedJSON is a range of ticks that never fired, both ends included.
type missedJSON struct {
	First      stamp `json:"first"`
	Last       stamp `json:"last"`
	ReportedAt stamp `json:"reported_at"`
}

// cronEnqueuedJSON answers an enqueue-now.
type cronEnqueuedJSON struct {
	ID    uint64        `json:"id"`
	State string        `json:"state"`
	Entry cronEntryJSON `json:"entry"`
}

func schedulerView(h cron.Health) schedulerJSON {
	return schedulerJSON{
		State: string(h.State), OK: h.OK(), Detail: h.Detail, Since: stamp(h.Since),
		LastPass: stamp(h.LastPass), NextWake: stamp(h.NextWake), LateAfterS: h.LateAfter.Seconds(),
		Fires: h.Fires, Misses: h.Misses, LateFires: h.LateFires,
		LastLatenessMS: float64(h.LastLateness.Microseconds()) / 1000,
		MaxLatenessMS:  float64(h.MaxLateness.Microseconds()) / 1000,
	}
}

func cronEntryView(v cron.View) cronEntryJSON {
	out := cronEntryJSON{
		Name: v.Name, Cron: v.Line, CronWords: cron.Describe(v.Line), Zone: v.Zone, Class: v.Class, Queue: v.Queue, Description: v.Description,
		Args: v.Args, Status: v.Status, Enabled: v.Enabled, EnabledBy: v.EnabledBy,
		Unavailable: v.Unavailable, Ended: v.Ended, Missed: string(v.Policy),
		Since: stamp(v.Since), LastTick: stamp(v.LastTick), LastFire: stamp(v.LastFire),
		ManualAt: stamp(v.ManualAt), NextTick: stamp(v.NextTick),
		MissedRanges: []missedJSON{}, Error: v.Error,
	}
	if len(out.Args) == 0 {
		out.Args = json.RawMessage("null")
	}
	if v.Policy == cron.RunOnce {
		w := v.CatchUpWindow.Seconds()
		out.CatchUpS = &w
	}
	if v.MaxAttempts > 0 {
		n := v.MaxAttempts
		out.MaxAttempts = &n
	}
	if v.LastJobID != 0 {
		id := v.LastJobID
		out.LastJobID = &id
	}
	if v.ManualJobID != 0 {
		id := v.ManualJobID
		out.ManualJobID = &id
	}
	for _, m := range v.Missed {
		out.MissedRanges = append(out.MissedRanges, missedJSON{First: stamp(m.First), Last: stamp(m.Last), ReportedAt: stamp(m.ReportedAt)})
	}
	return out
}

// schedule returns the configured schedule, or a 503.
func (s *Server) schedule() (Schedule, error) {
	if s.cfg.Schedule == nil {
		return nil, &fieldError{kind: errUnavailable, Msg: "no schedule runs in this server"}
	}
	return s.cfg.Schedule, nil
}

// cronError turns the scheduler's errors into client errors.
func cronError(err error, name string) error {
	switch {
	case errors.Is(err, cron.ErrUnknownEntry):
		return &fieldError{kind: errNoRoute, Field: "name", Msg: "no schedule entry is named " + strconv.Quote(name)}
	case errors.Is(err, cron.ErrUnavailable):
		return invalid("name", "%v", err)
	case errors.Is(err, cron.ErrNotRunning):
		return &fieldError{kind: errUnavailable, Msg: "the scheduler is not running"}
	}
	return err
}

// listCron serves GET /api/v1/cron.
func (s *Server) listCron(r *http.Request, _ httprouter.Params) (int, any, error) {
	out, err := s.cronView()
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// cronView is the schedule as GET /api/v1/cron shows it, args redacted.
func (s *Server) cronView() (cronJSON, error) {
	sch, err := s.schedule()
	if err != nil {
		return cronJSON{}, err
	}
	out := cronJSON{Scheduler: schedulerView(sch.Health()), Entries: []cronEntryJSON{}}
	for _, v := range sch.Entries() {
		out.Entries = append(out.Entries, s.cronOut(cronEntryView(v)))
	}
	return out, nil
}

// cronOut redacts an entry's args.
func (s *Server) cronOut(e cronEntryJSON) cronEntryJSON {
	e.Args = s.redact.json(e.Args)
	return e
}

// enqueueCron serves POST /api/v1/cron/{name}/enqueue.
func (s *Server) enqueueCron(r *http.Request, ps httprouter.Params) (int, any, error) {
	sch, err := s.schedule()
	if err != nil {
		return 0, nil, err
	}
	name := ps.ByName("name")
	id, err := sch.EnqueueNow(r.Context(), name)
	if err != nil {
		return 0, nil, cronError(err, name)
	}
	out := cronEnqueuedJSON{ID: id}
	if j, err := s.store.Get(id); err == nil {
		out.State = j.State.String()
	}
	for _, v := range sch.Entries() {
		if v.Name == name {
			out.Entry = s.cronOut(cronEntryView(v))
		}
	}
	return http.StatusCreated, out, nil
}

func (s *Server) enableCron(r *http.Request, ps httprouter.Params) (int, any, error) {
	return s.setCronEnabled(r, ps, true)
}

func (s *Server) disableCron(r *http.Request, ps httprouter.Params) (int, any, error) {
	return s.setCronEnabled(r, ps, false)
}

// setCronEnabled serves POST /api/v1/cron/{name}/enable and …/disable and
// answers the entry as it is afterwards.
func (s *Server) setCronEnabled(r *http.Request, ps httprouter.Params, enabled bool) (int, any, error) {
	sch, err := s.schedule()
	if err != nil {
		return 0, nil, err
	}
	name := ps.ByName("name")
	v, err := sch.SetEnabled(r.Context(), name, enabled)
	if err != nil {
		return 0, nil, cronError(err, name)
	}
	return http.StatusOK, s.cronOut(cronEntryView(v)), nil
}
