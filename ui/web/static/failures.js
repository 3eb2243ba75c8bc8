// The failures screen: Tabulator in remote mode on GET /api/v1/failures
// (filters, search, sort and pages are done by the server), a detail
// drawer, retry one, and retry everything matching after confirming the
// count. Cells are built with textContent: nothing from a failure becomes
// markup.
(function () {
  "use strict";
  const C = window.Conveyor;
  let table = null;
  let q = "";
  const $ = function (id) { return document.getElementById(id); };

  function text(v) {
    const s = document.createElement("span");
    s.textContent = v === null || v === undefined ? "" : String(v);
    return s;
  }
  function cellText(cell) { return text(cell.getValue()); }

  // filters reads the toolbar into Tabulator filters.
  function filters() {
    const out = [];
    [["f-class", "class"], ["f-queue", "queue"], ["f-kind", "kind"], ["f-status", "retry_status"]].forEach(function (p) {
      const v = $(p[0]).value;
      if (v) out.push({ field: p[1], type: "=", value: v });
    });
    const fp = $("failure-filters").dataset.fingerprint;
    if (fp) out.push({ field: "fingerprint", type: "=", value: fp });
    return out;
  }

  // matchParams are the filter and search parameters of what is shown.
  function matchParams() {
    const p = new URLSearchParams();
    filters().forEach(function (f, i) {
      p.set("filter[" + i + "][field]", f.field);
      p.set("filter[" + i + "][type]", f.type);
      p.set("filter[" + i + "][value]", f.value);
    });
    if (q) p.set("q", q);
    return p;
  }

  async function retryOne(id) {
    try {
      const r = await C.api("POST", "/api/v1/failures/" + id + "/retry");
      C.toast("Failure " + id + " retried: job " + r.job_id + (r.revived ? " is ready again." : " was enqueued."), "ok");
      table.replaceData();
      return null;
    } catch (e) {
      C.toast(e.message, "bad");
      return e;
    }
  }

  async function showDetail(id) {
    let f;
    try { f = await C.api("GET", "/api/v1/failures/" + id); } catch (e) { C.toast(e.message, "bad"); return; }
    const d = $("detail");
    d.dataset.id = f.id;
    $("d-title").textContent = "Failure " + f.id + ": " + f.error_class;
    const job = $("d-job"); job.textContent = "";
    const a = document.createElement("a"); a.href = "/admin/jobs/" + f.job_id; a.textContent = "#" + f.job_id; job.appendChild(a);
    $("d-class").textContent = f.class + " · " + f.queue;
    $("d-kind").textContent = f.kind + (f.retryable ? "" : " (not retryable)");
    const when = $("d-when"); when.textContent = ""; when.appendChild(C.timeEl(f.occurred_at));
    $("d-attempt").textContent = String(f.attempt);
    const ctx = [];
    if (f.account_id) ctx.push("account " + f.account_id);
    if (f.profile_id) ctx.push("profile " + f.profile_id);
    if (f.pipeline_id) ctx.push("pipeline " + f.pipeline_id + (f.step ? " step " + f.step : ""));
    $("d-context").textContent = ctx.join(", ") || "–";
    const rs = f.retry;
    $("d-retry-state").textContent = rs.status + (rs.attempts ? ", retried " + rs.attempts + "×" : "") +
      (rs.job_id ? ", retry job #" + rs.job_id : "") + (rs.reason ? " — " + rs.reason : "");
    $("d-fingerprint").textContent = f.fingerprint;
    $("d-error").textContent = f.error_message;
    $("d-backtrace").textContent = f.backtrace || "(none)";
    $("d-args").textContent = JSON.stringify(f.args, null, 2);
    $("d-args-note").textContent = f.args_truncated ? "(cut: too large to keep whole)" : "";
    $("d-refused").hidden = true;
    const hist = $("d-history").querySelector("tbody"); hist.textContent = "";
    try {
      const h = await C.api("GET", "/api/v1/failures?filter[0][field]=job_id&filter[0][value]=" + f.job_id + "&sort[0][field]=attempt&size=50");
      h.data.forEach(function (r) {
        const tr = document.createElement("tr");
        const td = function (n) { const c = document.createElement("td"); c.appendChild(n); tr.appendChild(c); };
        td(text("attempt " + r.attempt)); td(C.timeEl(r.occurred_at)); td(text(r.error_message)); td(text(r.retry.status));
        hist.appendChild(tr);
      });
    } catch (e) { /* the history is a nicety */ }
    d.hidden = false;
  }

  async function retryAll() {
    const p = matchParams();
    let total;
    try {
      const probe = new URLSearchParams(p); probe.set("size", "1");
      total = (await C.api("GET", "/api/v1/failures?" + probe.toString())).total;
    } catch (e) { C.toast(e.message, "bad"); return; }
    if (!total) { C.toast("No failures match: nothing to retry.", "ok"); return; }
    const what = filters().map(function (f) { return f.field + " " + f.value; }).concat(q ? ["search “" + q + "”"] : []).join(", ");
    const ok = await C.confirm("Retry the " + C.num(total) + " failures matching " + (what || "no filter (all failures)") +
      "? Each is checked first: authentication failures, discarded jobs and failures already retried are left as they are.",
      "Retry " + C.num(total));
    if (!ok) return;
    const prog = $("retry-progress");
    // until_id bounds the walk to the failures there were when it began, so
    // that it never retries the failures of its own retries.
    let after = 0, until = 0, queued = 0, refused = 0, examined = 0;
    const btn = $("retry-all"); btn.disabled = true;
    try {
      for (;;) {
        const body = new URLSearchParams(p); body.set("after_id", String(after));
        if (until) body.set("until_id", String(until));
        const r = await C.api("POST", "/api/v1/failures/retry", undefined, body.toString());
        queued += r.queued; refused += r.refused; examined += r.examined; after = r.next_after_id; until = r.until_id;
        prog.textContent = "retried " + C.num(queued) + ", refused " + C.num(refused) + " of " + C.num(total);
        if (!r.more) break;
      }
      C.toast("Retried " + C.num(queued) + " failures; " + C.num(refused) + " refused by the rules.", "ok");
    } catch (e) {
      C.toast(e.message, "bad");
    } finally {
      btn.disabled = false;
      table.replaceData();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    table = new Tabulator("#failures-table", {
      ajaxURL: "/api/v1/failures",
      ajaxConfig: { method: "GET", credentials: "same-origin" },
      ajaxParams: function () { return q ? { q: q } : {}; },
      ajaxResponse: function (url, params, resp) {
        $("failure-total").textContent = C.num(resp.total) + " matching";
        return resp;
      },
      pagination: true, paginationMode: "remote", paginationSize: 50, paginationSizeSelector: [25, 50, 100, 250],
      sortMode: "remote", filterMode: "remote",
      initialSort: [{ column: "occurred_at", dir: "desc" }],
      initialFilter: filters(),
      layout: "fitDataFill",
      placeholder: "No failures. Jobs that fail show up here, grouped by cause.",
      index: "id",
      columns: [
        { title: "when", field: "occurred_at", width: 110, formatter: function (c) { return C.timeEl(c.getValue()); } },
        { title: "id", field: "id", width: 70, formatter: cellText },
        { title: "class", field: "class", formatter: cellText },
        { title: "queue", field: "queue", width: 120, formatter: cellText },
        { title: "kind", field: "kind", width: 110, formatter: cellText },
        { title: "error", field: "error_message", headerSort: false, widthGrow: 3, formatter: cellText },
        { title: "account", field: "account_id", width: 80, formatter: cellText },
        { title: "retry", field: "retry_status", width: 100, formatter: function (c) { return text(c.getRow().getData().retry.status); } },
        { title: "", field: "actions", headerSort: false, width: 70, formatter: function (c) {
          const b = document.createElement("button"); b.textContent = "retry"; b.className = "row-retry";
          return b;
        }, cellClick: function (e, c) { e.stopPropagation(); retryOne(c.getRow().getData().id); } },
      ],
    });
    table.on("rowClick", function (e, row) { showDetail(row.getData().id); });
    let timer = null;
    $("q").addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { q = $("q").value.trim(); table.setData(); }, 250);
    });
    ["f-class", "f-queue", "f-kind", "f-status"].forEach(function (id) {
      $(id).addEventListener("change", function () { table.setFilter(filters()); });
    });
    $("retry-all").addEventListener("click", retryAll);
    $("d-close").addEventListener("click", function () { $("detail").hidden = true; });
    $("d-retry").addEventListener("click", async function () {
      const id = $("detail").dataset.id;
      const err = await retryOne(id);
      if (err && err.data) { $("d-refused").hidden = false; $("d-refused").textContent = err.message; }
      else if (!err) showDetail(id);
    });
    C.onTopic("job_failures_changed", function () { table.replaceData(); });
    C.onOpen(function () { table.replaceData(); });
  });
})();
