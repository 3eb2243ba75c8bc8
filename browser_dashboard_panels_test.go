package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"conveyor/cron"
	"conveyor/queue"
)

// chartSpy keeps every uPlot chart the page makes in window.__charts, so a
// test reads the data the charts were given: the page's script assigns the
// global uPlot, and the setter wraps its constructor.
const chartSpy = `(function () {
  let wrapped;
  Object.defineProperty(window, "uPlot", {
    configurable: true,
    get: function () { return wrapped; },
    set: function (U) {
      wrapped = function (opts, data, el) {
        const u = new U(opts, data, el);
        (window.__charts = window.__charts || []).push(u);
        return u;
      };
      Object.setPrototypeOf(wrapped, U);
      wrapped.prototype = U.prototype;
    },
  });
})();`

// chartSum is the sum of the series the chart in element id shows, or -1
// while there is no such chart.
func chartSum(id string) string {
	return fmt.Sprintf(`(function(){const u=(window.__charts||[]).find(u=>u.root.parentNode&&u.root.parentNode.id===%q);return u?u.data[1].reduce((a,b)=>a+b,0):-1;})()`, id)
}

// TestBrowserDashboardPanels: on the open dashboard, without a reload, the
// charts get the processed and failed counts, the issues panel lists the
// failures' issue with its count, the AI panel and the AI lanes' gates say
// why they are held closed, the replication panel shows the replica's last
// sync and lag, the schedule's enable, disable and run-now buttons work,
// and a banner says when the scheduler is late, until it catches up.
func TestBrowserDashboardPanels(t *testing.T) {
	t.Parallel()
	r := startPanelsRig(t)
	const failMsg = "503 from bridge"
	fail := func() uint64 {
		id := r.enqueue(map[string]any{"class": "FailJob", "args": map[string]any{"message": failMsg}, "max_attempts": 1})
		r.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDead })
		return id
	}
	for range 3 {
		id := r.enqueue(map[string]any{"class": "NoopJob"})
		r.waitJob(id, func(j *queue.Job) bool { return j.State == queue.StateDone })
	}
	fail()
	fail()
	r.waitSnap("the failures' issue", func(d dashSnap) bool { is, _ := d.issue("job_failure", failMsg); return is.Occurrences == 2 })
	syncedBefore := r.a.storage.repl.LastSync()

	p := openPage(t, r.liveApp)
	if _, err := chromedp.Call(p.ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: chartSpy}); err != nil {
		t.Fatal(err)
	}
	p.openLive("/admin/background_jobs")

	// The charts: five attempts ended, two failed, in the last hour.
	p.until("the charts' counts", chartSum("chart-processed")+` === 5 && `+chartSum("chart-failed")+` === 2`)
	if n := eval[int](p, `(window.__charts||[]).length`); n != 2 {
		t.Errorf("%d charts, want 2", n)
	}
	// The issues panel: the failures' issue with its count.
	issueRow := fmt.Sprintf(`[...document.querySelectorAll("#issues tr")].find(tr=>tr.textContent.includes(%q))`, "Error in FailJob: "+failMsg)
	p.until("the failures' issue", fmt.Sprintf(`(function(){const tr=%s;return !!tr && tr.children[0].textContent.trim()==="▲ 2×";})()`, issueRow))
	// A failure more: the charts and the issue's count follow it.
	fail()
	p.until("the charts after a failure more", chartSum("chart-processed")+` === 6 && `+chartSum("chart-failed")+` === 3`)
	p.until("the issue's count after a failure more", fmt.Sprintf(`(function(){const tr=%s;return !!tr && tr.children[0].textContent.trim()==="▲ 3×";})()`, issueRow))

	// Local AI: down, with its reason; every AI lane's gate says it.
	reason := "local AI unhealthy: local AI microservice at " + r.micro.URL + "/health: 503 Service Unavailable: model warming up"
	if st := eval[string](p, `(document.getElementById("ai-state")||{}).textContent||""`); st != "down" {
		t.Errorf("the AI panel's state: %q", st)
	}
	if txt := eval[string](p, `document.querySelector('[data-panel="ai"] p').textContent`); !strings.Contains(txt, reason) {
		t.Errorf("the AI panel does not say why: %q", txt)
	}
	if txt := eval[string](p, `document.querySelector('[data-panel="ai"] table').textContent`); !strings.Contains(txt, "local AI microservice") ||
		!strings.Contains(txt, "503 Service Unavailable: model warming up in ") || !strings.Contains(txt, "200 OK in ") {
		t.Errorf("the AI panel's checks: %q", txt)
	}
	gates := eval[map[string]string](p, `Object.fromEntries([...document.querySelectorAll("#lanes tr[data-lane]")].map(tr=>[tr.dataset.lane, tr.children[3].textContent.trim()]))`)
	for lane, gate := range gates {
		want := "held: " + reason
		if lane == "default" {
			want = "open"
		}
		if gate != want {
			t.Errorf("lane %s's gate shows %q, want %q", lane, gate, want)
		}
	}
	if len(gates) != 8 {
		t.Errorf("%d lanes shown: %v", len(gates), gates)
	}

	// Replication: the replica, its last sync (a time between the sync
	// seen before the page and the one after), and the lag.
	repl := eval[map[string]string](p, `(function(){const dd=document.querySelectorAll('[data-panel="replication"] dd');return dd.length<4?{}:{replica:dd[0].textContent,sync:dd[1].querySelector("time").getAttribute("datetime"),lag:dd[2].textContent};})()`)
	syncedAfter := r.a.storage.repl.LastSync()
	if repl["replica"] != r.replica {
		t.Errorf("the replication panel's replica: %q, want %q", repl["replica"], r.replica)
	}
	if at, err := time.Parse(time.RFC3339Nano, repl["sync"]); err != nil || at.Before(syncedBefore.Truncate(time.Millisecond)) || at.After(syncedAfter) {
		t.Errorf("the replication panel's last sync %q, not within [%s, %s] (%v)", repl["sync"], syncedBefore, syncedAfter, err)
	}
	// The lag in the page's words for a duration (live.js's and the
	// template's human).
	if !regexp.MustCompile(`^(\d+ ms|\d+(\.\d)? s|\d+ (min|h|d)( \d+ (s|min|h))?)$`).MatchString(repl["lag"]) {
		t.Errorf("the replication panel's lag: %q", repl["lag"])
	}

	// The schedule's buttons: disable, enable, run now.
	row := `#cron tr[data-entry="queue_health_check"]`
	entry := func() dashEntry { t.Helper(); return r.dashboard().entry(t, "queue_health_check") }
	p.click(row + ` button[data-action$="/disable"]`)
	p.until("the enable button", `!!document.querySelector('`+row+` button[data-action$="/enable"]')`)
	if e := entry(); e.Enabled || e.Status != "disabled" || e.EnabledBy != "operator" || e.NextTick != nil {
		t.Errorf("after disable: %+v", e)
	}
	if txt := eval[string](p, `document.querySelector('`+row+`').children[1].textContent`); !strings.Contains(txt, "disabled") {
		t.Errorf("the disabled entry shows %q", txt)
	}
	p.click(row + ` button[data-action$="/enable"]`)
	p.until("the disable button", `!!document.querySelector('`+row+` button[data-action$="/disable"]')`)
	if e := entry(); !e.Enabled || e.Status != "active" || e.NextTick == nil || !e.NextTick.Equal(lateTick) {
		t.Errorf("after enable: %+v", e)
	}
	p.click(row + ` button[data-action$="/enqueue"]`)
	p.until("the run's toast", `document.getElementById("toast").textContent === "queue_health_check enqueued."`)
	e := entry()
	if e.ManualJobID == nil {
		t.Fatalf("run now enqueued nothing: %+v", e)
	}
	if j, err := r.a.store.Get(*e.ManualJobID); err != nil || j.Class != "CheckQueueHealthJob" || j.Queue != "maintenance" {
		t.Fatalf("run now's job: %+v %v", j, err)
	}
	p.until("the run in recent jobs", fmt.Sprintf(`!!document.querySelector('#recent tr[data-job="%d"]')`, *e.ManualJobID))

	// The scheduler late: the banner says so and why, until it catches up.
	if eval[bool](p, `!!document.getElementById("scheduler-late")`) {
		t.Fatal("a late banner while the scheduler is on time")
	}
	r.makeLate()
	p.until("the late banner", `!!document.getElementById("scheduler-late")`)
	if txt := eval[string](p, `document.getElementById("scheduler-late").textContent`); !strings.HasPrefix(txt, "The scheduler is late: the scheduler loop is 30s behind") ||
		!strings.Contains(txt, lateTick.Format(time.RFC3339)) {
		t.Errorf("the late banner: %q", txt)
	}
	p.until("the schedule panel's chip", `document.querySelector('#schedule h2 .chip').textContent === "scheduler late"`)
	r.unwedge()
	p.until("the banner gone", `!document.getElementById("scheduler-late") && document.querySelector('#schedule h2 .chip').textContent === "scheduler ok"`)
	// The entry's row: its last fire (when the wedged pass went on) and
	// its next tick, on the scheduler's clock.
	fired, next := lateTick.Add(cron.DefaultLateAfter).Format(time.RFC3339), lateTick.Add(time.Minute).Format(time.RFC3339)
	p.until("the entry's last and next fire", fmt.Sprintf(`(function(){const tr=document.querySelector('%s');if(!tr)return false;
const at=i=>((tr.children[i].querySelector("time")||{getAttribute:()=>""}).getAttribute("datetime")||"").replace(".000Z","Z");
return at(2)===%q && at(3)===%q;})()`, row, fired, next))
	p.stillSamePage()
	p.clean("dashboard panels")
}
