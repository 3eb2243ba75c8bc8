package ui

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"conveyor/data"
	"conveyor/ops/failures"
	"conveyor/queue"
)

// stateTab is one state of the jobs screen with its count; Known is false
// when a class filter makes the count unknown without a scan.
type stateTab struct {
	Name  string
	Count int64
	Known bool
	On    bool
}

// jobsPageData is the jobs screen's own data.
type jobsPageData struct {
	State, Queue, Class  string
	Tabs                 []stateTab
	Jobs                 []jobJSON
	Next                 string
	Total                *int64 // nil with a class filter
	Label                string // "dead jobs of queue sync"
	Empty                string // what to do when there are none
	TimeLabel            string
	Queues, Classes      []string
	CanRetry, CanDiscard bool
}

// jobsPage serves /admin/jobs?state=&queue=&class=&cursor=: the jobs of one
// state with every state's count, filtered by queue and class, with bulk
// retry and discard on the filtered set (POST /api/v1/jobs/bulk).
func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	panel, ok := panelParam(r, "jobs")
	if !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	q := r.URL.Query()
	d := jobsPageData{State: q.Get("state"), Queue: q.Get("queue"), Class: q.Get("class"),
		Queues: s.topo.Queues(), Classes: s.reg.Names()}
	counts := s.store.Counts()
	if d.Queue != "" {
		qi, _ := s.store.Queue(d.Queue)
		counts = qi.Counts
	}
	if d.State == "" {
		d.State = "ready"
		for _, st := range []queue.State{queue.StateDead, queue.StateRetry} {
			if counts[st] > 0 {
				d.State = st.String()
				break
			}
		}
	}
	st, err := queue.ParseState(d.State)
	if err != nil {
		s.writeError(w, r, invalid("state", "unknown state %q: want one of %s", d.State, stateNames()))
		return
	}
	for _, t := range queue.States {
		d.Tabs = append(d.Tabs, stateTab{Name: t.String(), Count: counts[t], Known: d.Class == "", On: t == st})
	}
	page, err := s.store.List(queue.ListFilter{State: st, Queue: d.Queue, Class: d.Class, After: q.Get("cursor"), Limit: DefaultPageSize})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	for _, j := range page.Jobs {
		d.Jobs = append(d.Jobs, s.listJob(j, now))
	}
	d.Next = page.Next
	if d.Class == "" {
		n := counts[st]
		d.Total = &n
	}
	d.Label = st.String() + " jobs"
	if d.Class != "" {
		d.Label = st.String() + " " + d.Class + " jobs"
	}
	if d.Queue != "" {
		d.Label += " of queue " + d.Queue
	}
	d.CanRetry = st == queue.StateDead || st == queue.StateRetry || st == queue.StateScheduled
	d.CanDiscard = st != queue.StateRunning
	d.TimeLabel = map[queue.State]string{queue.StateScheduled: "due", queue.StateReady: "due", queue.StateRunning: "started",
		queue.StateRetry: "next attempt", queue.StateDone: "finished", queue.StateDead: "died"}[st]
	d.Empty = map[queue.State]string{
		queue.StateScheduled: "Jobs enqueued for later (run_at, in_seconds) wait here.",
		queue.StateReady:     "Enqueued jobs wait here for a worker of their lane.",
		queue.StateRunning:   "Jobs a worker is running show here.",
		queue.StateRetry:     "Failed jobs waiting for their next attempt show here.",
		queue.StateDone:      "Finished jobs are kept here for the retention window.",
		queue.StateDead:      "Jobs out of attempts, or not retryable, are kept here: retry them or discard them.",
	}[st]
	frag := ""
	if panel != "" {
		frag = "panel-" + panel
	}
	s.render(w, r, http.StatusOK, "jobs", frag, pageData{Title: "Jobs", D: d})
}

// jobActivityLimit caps each list of the job page's activity (the store
// keeps at most data.MaxCallsPerJob and data.MaxActionsPerJob a job).
const jobActivityLimit = 50

// jobPageData is the job page's own data.
type jobPageData struct {
	Job           jobJSON
	Failures      []failureJSON
	ByAttempt     map[int]*failureJSON
	FailuresError string
	Issue         *issueJSON
	Activity      *activityView
	ActivityNote  string
	Args          string
	CanRetry      bool
	CanDiscard    bool
}

// activityView is what the job page shows of a job's records: the latest
// jobActivityLimit of each, Capped when there were more.
type activityView struct {
	Calls   []jobCallJSON
	Actions []jobActionJSON
	Capped  bool
	Limit   int
}

// jobPage serves /admin/jobs/{id}: the job, its timeline joined with its
// failure records, its issue, the outside calls and account actions it
// made, then its payload.
func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if panel, ok := panelParam(r, "job"); !ok {
		s.writeError(w, r, malformed("panel", "no panel %q on this page", panel))
		return
	}
	id, err := jobID(ps)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.store.Get(id)
	if errors.Is(err, queue.ErrNotFound) {
		s.render(w, r, http.StatusNotFound, "job", "", pageData{Title: "Job not found",
			Error: fmt.Sprintf("No job #%d: it never existed, was discarded, or was trimmed after its retention window.", id)})
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	d := jobPageData{Job: s.jobOut(j, s.now()), ByAttempt: map[int]*failureJSON{}}
	d.Args = prettyJSON(d.Job.Args)
	d.CanRetry = j.State == queue.StateDead || j.State == queue.StateRetry || j.State == queue.StateScheduled
	d.CanDiscard = j.State != queue.StateRunning
	if db, err := s.failuresDB(); err != nil {
		_, _, d.FailuresError = classify(err)
	} else {
		fs, _, err := db.FindFailures(ctx, data.FailureFilter{Conds: []data.Cond{{Field: data.FieldJobID, Op: data.OpEq, Value: fmt.Sprint(id)}},
			Sort: []data.SortKey{{Field: data.FieldAttempt}}, Limit: 100})
		if err != nil {
			s.log.Error("job page: failures", "job", id, "err", err)
			_, _, d.FailuresError = classify(err)
		}
		for _, f := range fs {
			if failures.FailureOfJob(f, j) { // not an earlier job with the same id
				d.Failures = append(d.Failures, failureView(f, false))
			}
		}
		if n := len(d.Failures); n > 0 {
			if is, err := db.IssueByFingerprint(ctx, d.Failures[n-1].Fingerprint); err == nil {
				v := s.issueOut(issueView(is))
				d.Issue = &v
			}
		}
	}
	for i := range d.Failures {
		d.ByAttempt[d.Failures[i].Attempt] = &d.Failures[i]
	}
	if av, note := s.jobActivity(r, id); av != nil {
		d.Activity = av
	} else {
		d.ActivityNote = note
	}
	frag := ""
	if r.URL.Query().Get("panel") != "" {
		frag = "panel-job"
	}
	s.render(w, r, http.StatusOK, "job", frag, pageData{Title: "Job #" + fmt.Sprint(id), D: d})
}

// jobActivity reads, read-only, the outside calls and account actions a job
// made (the seed's RecentJobDetailsEnricher; GET /api/v1/jobs/{id}/records
// serves the same), keeping the latest jobActivityLimit of each; note says
// why there are none to show.
func (s *Server) jobActivity(r *http.Request, id uint64) (*activityView, string) {
	db, err := s.accountsDB()
	if err != nil {
		return nil, "Outside calls and account actions are not recorded by this server."
	}
	calls, err := db.JobCalls(r.Context(), id)
	if err == nil {
		var acts []data.AccountAction
		if acts, err = db.AccountActions(r.Context(), id); err == nil {
			av := &activityView{Limit: jobActivityLimit}
			if n := len(calls); n > jobActivityLimit {
				calls, av.Capped = calls[n-jobActivityLimit:], true
			}
			if n := len(acts); n > jobActivityLimit {
				acts, av.Capped = acts[n-jobActivityLimit:], true
			}
			for _, c := range calls {
				av.Calls = append(av.Calls, callView(c))
			}
			for _, a := range acts {
				av.Actions = append(av.Actions, actionView(a))
			}
			return av, ""
		}
	}
	s.log.Error("job page: records", "job", id, "err", err)
	return nil, "The job's outside calls and account actions could not be read (logged on the server)."
}
