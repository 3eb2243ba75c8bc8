package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"conveyor/data"
	"conveyor/ops/failures"
	"conveyor/ops/fault"
	"conveyor/queue"
)

// The failures screen and the job page in a real browser: retry all
// matching a filter, issue groups, and a job's timeline joined with its
// failures, issue and records. The helpers are browser_test.go's.

// failureRow is what these tests read of GET /api/v1/failures.
type failureRow struct {
	ID          int64  `json:"id"`
	JobID       uint64 `json:"job_id"`
	Queue       string `json:"queue"`
	Kind        string `json:"kind"`
	Attempt     int    `json:"attempt"`
	ErrorClass  string `json:"error_class"`
	Fingerprint string `json:"fingerprint"`
	Retry       struct {
		Status string  `json:"status"`
		JobID  *uint64 `json:"job_id"`
	} `json:"retry"`
}

// failureRows lists the failures matching the Tabulator parameters params
// (a query string without size), up to 100.
func (l *liveApp) failureRows(params string) []failureRow {
	l.t.Helper()
	var out struct {
		Total int          `json:"total"`
		Data  []failureRow `json:"data"`
	}
	path := "/api/v1/failures?size=100"
	if params != "" {
		path += "&" + params
	}
	if st := l.api("GET", path, nil, &out); st != http.StatusOK {
		l.t.Fatalf("GET %s: %d", path, st)
	}
	if out.Total != len(out.Data) {
		l.t.Fatalf("GET %s: %d rows of %d", path, len(out.Data), out.Total)
	}
	return out.Data
}

// flushFailures waits until the failures of every attempt that has ended
// are written, and their issues recorded.
func (l *liveApp) flushFailures() {
	l.t.Helper()
	ctx := deadline(l.t)
	if err := l.a.failures.capture.Flush(ctx); err != nil {
		l.t.Fatal(err)
	}
	if err := l.a.failures.writer.Flush(ctx); err != nil {
		l.t.Fatal(err)
	}
}

// failJob enqueues a FailJob that fails once with kind and message, and
// waits for it to be dead.
func (l *liveApp) failJob(queueName, kind, msg string, ctx map[string]string) uint64 {
	l.t.Helper()
	body := map[string]any{"class": "FailJob", "queue": queueName, "args": map[string]any{"kind": kind, "message": msg}, "max_attempts": 1}
	if ctx != nil {
		body["context"] = ctx
	}
	id := l.enqueue(body)
	l.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
	return id
}

// dismiss cancels the page's confirmation dialog and returns its text.
func (p *page) dismiss() string {
	p.t.Helper()
	p.until("the confirmation", `document.getElementById("confirm").open`)
	msg := eval[string](p, `document.querySelector("#confirm .msg").textContent`)
	p.do(chromedp.Click(chromedp.CSS(`#confirm button[value="cancel"]`)))
	p.until("the confirmation closed", `!document.getElementById("confirm").open`)
	return msg
}

// choose picks value in the select with id, as the operator does.
func (p *page) choose(id, value string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.ID(id), value), chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf(`document.getElementById(%q).dispatchEvent(new Event("change"))`, id)))
}

// TestBrowserFailuresRetryAllMatching: with failures of two queues and two
// kinds, "Retry all matching…" under a queue and a kind filter names the
// count of the filtered failures (not of all), retries nothing when
// cancelled, and when confirmed retries exactly those failures: their jobs
// are ready again, the other failures and jobs are untouched.
func TestBrowserFailuresRetryAllMatching(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	type spec struct {
		queue, kind, msg string
		match            bool // matches queue sync, kind transient
	}
	specs := []spec{
		{"sync", "transient", "503 from bridge for account 1", true},
		{"default", "transient", "503 from bridge for account 2", false},
		{"sync", "runtime", "nil map in profile sync", false},
		{"sync", "transient", "429 Too Many Requests", true},
		{"default", "runtime", "nil map in profile sync", false},
	}
	jobs := make([]uint64, len(specs))
	for i, s := range specs {
		jobs[i] = l.failJob(s.queue, s.kind, s.msg, nil)
	}
	l.flushFailures()
	// Park the lanes: a retried job waits as ready instead of failing again.
	l.a.pool.SetQuiet(true)
	byJob := map[uint64]failureRow{}
	for _, f := range l.failureRows("") {
		byJob[f.JobID] = f
	}
	if len(byJob) != len(specs) {
		t.Fatalf("%d failures recorded for %d failed jobs: %+v", len(byJob), len(specs), byJob)
	}

	p := openPage(t, l)
	p.openLive("/admin/background_jobs/failures")
	rows := `document.querySelectorAll("#failures-table .tabulator-row")`
	total := `document.getElementById("failure-total").textContent`
	p.until("the five failures", rows+`.length === 5 && `+total+` === "5 matching"`)
	p.choose("f-queue", "sync")
	p.choose("f-kind", "transient")
	p.until("the two transient failures of sync", rows+`.length === 2 && `+total+` === "2 matching"`)

	// Cancelled: nothing is retried.
	p.click("#retry-all")
	msg := p.dismiss()
	for _, want := range []string{"Retry the 2 failures matching", "queue sync", "kind transient"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the confirmation %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, " 5 ") {
		t.Errorf("the confirmation counts every failure: %q", msg)
	}
	for _, f := range l.failureRows("") {
		if f.Retry.Status != string(data.RetryNone) {
			t.Errorf("after cancelling, failure %d is %s", f.ID, f.Retry.Status)
		}
	}

	// Confirmed: exactly the matching failures are retried.
	p.click("#retry-all")
	if again := p.confirm(); again != msg {
		t.Errorf("the second confirmation %q differs from the first %q", again, msg)
	}
	// Had the cancelled one retried them, these two would be refused now.
	p.until("the retry's toast", `document.getElementById("toast").textContent.startsWith("Retried ")`)
	if got, want := eval[string](p, `document.getElementById("toast").textContent`), "Retried 2 failures; 0 refused by the rules."; got != want {
		t.Errorf("the retry says %q, want %q", got, want)
	}
	if n := len(l.requests("/api/v1/failures/retry")); n != 1 {
		t.Errorf("%d retry-all requests reached the server, want 1 (the confirmed one)", n)
	}
	after := map[uint64]failureRow{}
	for _, f := range l.failureRows("") {
		after[f.JobID] = f
	}
	if len(after) != len(specs) {
		t.Errorf("%d failures after the retry, want %d (the retried jobs are parked)", len(after), len(specs))
	}
	for i, s := range specs {
		f := after[jobs[i]]
		j, err := l.a.store.Get(jobs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := f.Retry.Status
		switch {
		case s.match && (got != string(data.RetryQueued) || f.Retry.JobID == nil || *f.Retry.JobID != jobs[i]):
			t.Errorf("%+v: failure %d is %s (retry job %v), want queued as job %d", s, f.ID, got, f.Retry.JobID, jobs[i])
		case s.match && j.State != queue.StateReady:
			t.Errorf("%+v: its job %d is %s, want ready", s, jobs[i], j.State)
		case !s.match && got != string(data.RetryNone):
			t.Errorf("%+v: failure %d outside the filter is %s", s, f.ID, got)
		case !s.match && (j.State != queue.StateDead || j.Attempt != 1):
			t.Errorf("%+v: job %d outside the filter is %s after %d attempts", s, jobs[i], j.State, j.Attempt)
		}
	}
	// The table shows the new retry state of the rows it shows.
	p.until("the rows queued", `[...`+rows+`].every(r => r.querySelector('[tabulator-field="retry_status"]').textContent === "queued")`)
	p.stillSamePage()
	p.clean("retry all matching")
}

// TestBrowserFailureGroups: 2,000 failures that are 3 errors — messages
// that differ only by numbers, ids and addresses, which the fingerprint
// leaves out — read as 3 rows in the issue groups on top of the failures
// screen, with their counts, written while the page is open; a group's
// link narrows the table to its failures.
func TestBrowserFailureGroups(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	p := openPage(t, l)
	p.openLive("/admin/background_jobs/failures")
	if txt := eval[string](p, `document.querySelector('[data-panel="groups"] .empty').textContent`); !strings.Contains(txt, "grouped by cause") {
		t.Errorf("the empty groups panel says %q", txt)
	}

	type cause struct {
		queue, errClass string
		kind            fault.Kind
		n               int
		msg             func(i int) string
		want            string // the count as the page shows it
	}
	causes := []cause{
		{"sync", "HTTPError", fault.Transient, 1200, func(i int) string {
			return fmt.Sprintf("503 from bridge for account %d (request req%016x)", i%97, i*7919)
		}, "1,200"},
		{"profiles", "NotFound", fault.Runtime, 500, func(i int) string {
			return fmt.Sprintf("profile %d of account %d not found", 100000+i, i%13)
		}, "500"},
		{"post_downloads", "Timeout", fault.Transient, 300, func(i int) string {
			return fmt.Sprintf("no answer after %ds from 10.0.%d.%d:%d", 30+i%5, i%4, i%250, 8000+i)
		}, "300"},
	}
	now := time.Now().UTC()
	var fs []*data.Failure
	prints := map[string]string{} // fingerprint → the count the page should show
	messages := map[string]bool{}
	for c, cs := range causes {
		for i := range cs.n {
			msg := cs.msg(i)
			fp := failures.Fingerprint(failures.SourceJobFailure, string(cs.kind), "FailJob", cs.errClass+": "+msg)
			prints[fp] = cs.want
			messages[msg] = true
			fs = append(fs, &data.Failure{JobID: uint64(100000*(c+1) + i), Class: "FailJob", Queue: cs.queue, Kind: cs.kind,
				Retryable: cs.kind.Retryable(), Attempt: 1, ErrorClass: cs.errClass, ErrorMessage: msg, Fingerprint: fp,
				OccurredAt: now.Add(-time.Duration(len(fs)) * time.Second), Args: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
		}
	}
	if len(fs) != 2000 || len(prints) != 3 || len(messages) < 1900 {
		t.Fatalf("%d failures, %d fingerprints, %d messages: want 2,000 failures of nearly as many messages in 3 fingerprints",
			len(fs), len(prints), len(messages))
	}
	// Interleaved, as failures arrive, through the writer the capture
	// writes to: it records their issues as it commits them.
	for i := range fs {
		l.a.failures.writer.Add(fs[(i*7)%len(fs)])
	}
	l.flushFailures()

	groups := `document.querySelectorAll("#groups tbody tr")`
	p.until("three groups of 2,000 failures", groups+`.length === 3 && `+
		`[...`+groups+`].reduce((s, r) => s + Number(r.children[0].textContent.replace(/,/g, "")), 0) === 2000`)
	shown := eval[map[string]string](p, `Object.fromEntries([...`+groups+`].map(r => [r.dataset.fingerprint, r.children[0].textContent.trim()]))`)
	if len(shown) != 3 {
		t.Fatalf("groups %v", shown)
	}
	for fp, want := range prints {
		if shown[fp] != want {
			t.Errorf("group %s shows %q failures, want %q (groups %v)", fp, shown[fp], want, shown)
		}
	}
	for _, cs := range causes {
		row := eval[string](p, fmt.Sprintf(`[...%s].find(r => r.textContent.includes(%q)).innerText`, groups, cs.errClass+" in FailJob"))
		for _, want := range []string{cs.want, "FailJob · " + cs.queue, string(cs.kind)} {
			if !strings.Contains(row, want) {
				t.Errorf("the group of %s: %q lacks %q", cs.errClass, row, want)
			}
		}
	}
	if txt := eval[string](p, `document.querySelector('[data-panel="groups"] h2 .count').textContent`); txt != "3 open issues" {
		t.Errorf("the groups' heading says %q", txt)
	}
	p.until("the table's total", `document.getElementById("failure-total").textContent === "2,000 matching"`)
	p.stillSamePage()
	p.clean("groups")

	// A group's link shows its failures only.
	p.do(chromedp.Navigate(eval[string](p, `document.querySelector("#groups tbody tr:nth-child(3) a").href`)))
	p.live()
	fp := eval[string](p, `new URLSearchParams(location.search).get("fingerprint")`)
	if prints[fp] == "" {
		t.Fatalf("the group's link went to %s", eval[string](p, `location.href`))
	}
	p.until("the group's failures", fmt.Sprintf(`document.getElementById("failure-total").textContent === "%s matching" && !!document.getElementById("f-fingerprint")`,
		prints[fp]))
	seen := strings.Join(l.requests("/api/v1/failures?"), "\n")
	if !strings.Contains(seen, "filter%5B0%5D%5Bvalue%5D="+url.QueryEscape(fp)) {
		t.Errorf("no request filtered by the group's fingerprint:\n%s", seen)
	}
	p.clean("a group's failures")
}

// TestBrowserJobPage: a job that failed twice, with outside calls and
// account actions recorded, shows on its page the timeline with each
// attempt's error joined with its failure row, its failure records, its
// issue (linked to its group), and the calls and actions; the second
// attempt, started from the page, shows up without a reload.
func TestBrowserJobPage(t *testing.T) {
	t.Parallel()
	l := startLiveApp(t)
	const msg = "503 from bridge: upstream busy"
	id := l.failJob("sync", "transient", msg, map[string]string{queue.CtxAccountID: "42"})
	l.flushFailures()
	ctx := t.Context()
	if err := l.a.storage.db.RecordJobCalls(ctx, []data.JobCall{
		{JobID: id, AccountID: 42, Endpoint: "POST bridge/jobs FailJob", Status: 503, Latency: 120 * time.Millisecond, Error: "upstream busy"},
		{JobID: id, Endpoint: "command /usr/bin/fetch-profile", Status: 0, Error: "exit status 75"},
		{JobID: id + 1, Endpoint: "another job's call"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.a.storage.db.RecordAccountActions(ctx, []data.AccountAction{
		{JobID: id, AccountID: 42, Action: "story_reply", Target: "story 991", Detail: "replied to a story"},
		{JobID: id, AccountID: 42, Action: "download", Target: "post 17"},
		{JobID: id + 1, AccountID: 7, Action: "another job's action"},
	}); err != nil {
		t.Fatal(err)
	}

	p := openPage(t, l)
	p.openLive(fmt.Sprintf("/admin/jobs/%d", id))
	p.until("the first failure", `document.querySelectorAll("#job-failures tbody tr").length === 1`)
	// The second attempt, from the page's own button.
	p.click("#job-retry")
	l.waitJob(id, func(j *queue.Job) bool { return j.Attempt == 2 && j.State == queue.StateDead })
	l.flushFailures()
	p.until("the second failure", `document.querySelectorAll("#job-failures tbody tr").length === 2 && document.querySelectorAll("#timeline li.failed").length === 2`)
	p.stillSamePage()

	fs := l.failureRows(fmt.Sprintf("filter%%5B0%%5D%%5Bfield%%5D=job_id&filter%%5B0%%5D%%5Bvalue%%5D=%d&sort%%5B0%%5D%%5Bfield%%5D=attempt", id))
	if len(fs) != 2 || fs[0].Attempt != 1 || fs[1].Attempt != 2 || fs[0].Fingerprint != fs[1].Fingerprint {
		t.Fatalf("the job's failures: %+v", fs)
	}
	fp := fs[0].Fingerprint
	issueLink := "/admin/background_jobs/failures?fingerprint=" + fp

	// The timeline: enqueued, each attempt's failure with its error and
	// failure row, and the end.
	items := eval[[]string](p, `[...document.querySelectorAll("#timeline li")].map(li => li.innerText)`)
	var failed []string
	for _, it := range items {
		if strings.HasPrefix(it, "failed") {
			failed = append(failed, it)
		}
	}
	if len(items) == 0 || !strings.HasPrefix(items[0], "enqueued") || !strings.HasPrefix(items[len(items)-1], "dead (attempt 2)") {
		t.Errorf("timeline %q: want it to start enqueued and end dead after attempt 2", items)
	}
	if len(failed) != 2 {
		t.Fatalf("timeline %q: want two failed attempts", items)
	}
	for i, it := range failed {
		for _, want := range []string{fmt.Sprintf("failed (attempt %d)", i+1), "— " + msg, fmt.Sprintf("failure #%d · transient", fs[i].ID)} {
			if !strings.Contains(it, want) {
				t.Errorf("timeline item %q lacks %q", it, want)
			}
		}
	}
	links := eval[[]string](p, `[...document.querySelectorAll("#timeline li.failed a")].map(a => a.getAttribute("href"))`)
	if len(links) != 2 || links[0] != issueLink || links[1] != issueLink {
		t.Errorf("the timeline's failure links %q, want both %q", links, issueLink)
	}

	// The failure records.
	recs := eval[[]string](p, `[...document.querySelectorAll("#job-failures tbody tr")].map(tr => tr.innerText)`)
	for i, r := range recs {
		for _, want := range []string{fmt.Sprintf("#%d\t%d", fs[i].ID, i+1), "transient", fs[i].ErrorClass + ": " + msg} {
			if !strings.Contains(r, want) {
				t.Errorf("failure record %q lacks %q", r, want)
			}
		}
	}

	// The issue, linked to its group.
	issue := eval[string](p, `[...document.querySelectorAll("section.panel")].find(s => s.querySelector("h2").textContent === "Issue").innerText`)
	if !strings.Contains(issue, "▲ 2×") || !strings.Contains(issue, fs[0].ErrorClass+" in FailJob: "+msg) || !strings.Contains(issue, "open") {
		t.Errorf("the issue reads %q", issue)
	}
	if href := eval[string](p, `[...document.querySelectorAll("section.panel")].find(s => s.querySelector("h2").textContent === "Issue").querySelector("a").getAttribute("href")`); href != issueLink {
		t.Errorf("the issue links to %q, want %q", href, issueLink)
	}

	// The calls and actions: this job's, not another's.
	calls := eval[[]string](p, `[...document.querySelectorAll("#job-calls tbody tr")].map(tr => tr.innerText)`)
	if len(calls) != 2 || !strings.Contains(calls[0], "POST bridge/jobs FailJob\t#42\t503\t120 ms\tupstream busy") ||
		!strings.Contains(calls[1], "command /usr/bin/fetch-profile") || !strings.Contains(calls[1], "exit status 75") {
		t.Errorf("calls %q", calls)
	}
	acts := eval[[]string](p, `[...document.querySelectorAll("#job-actions tbody tr")].map(tr => tr.innerText)`)
	if len(acts) != 2 || !strings.Contains(acts[0], "#42\tstory_reply\tstory 991\treplied to a story") || !strings.Contains(acts[1], "#42\tdownload\tpost 17") {
		t.Errorf("actions %q", acts)
	}
	p.clean("job page")

	// The issue's link shows the job's two failures.
	p.do(chromedp.Navigate(eval[string](p, `document.querySelector("#timeline li.failed a").href`)))
	p.live()
	p.until("the issue's failures", `document.querySelectorAll("#failures-table .tabulator-row").length === 2`)
	p.clean("the issue's failures")
}
