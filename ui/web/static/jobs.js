// The jobs screen's bulk actions: retry or discard every job of the
// filtered set, after confirming what and how many, in chunks the server
// bounds (POST /api/v1/jobs/bulk), with progress.
(function () {
  "use strict";
  const C = window.Conveyor;
  async function bulk(kind) {
    const box = document.getElementById("bulk");
    const f = { state: box.dataset.state, queue: box.dataset.queue, class: box.dataset.class };
    const p = new URLSearchParams();
    Object.keys(f).forEach(function (k) { if (f[k]) p.set(k, f[k]); });
    let count;
    try { count = await C.api("GET", "/api/v1/jobs/count?" + p.toString()); } catch (e) { C.toast(e.message, "bad"); return; }
    if (!count.count) { C.toast("No " + box.dataset.label + ": nothing to do.", "ok"); return; }
    const n = C.num(count.count) + (count.exact ? "" : "+");
    const msg = kind === "retry"
      ? "Retry the " + n + " " + box.dataset.label + " now? Each is checked first: authentication failures and jobs their handler discarded stay as they are."
      : "Delete the " + n + " " + box.dataset.label + "? They will not run again and their records are gone.";
    if (!(await C.confirm(msg, (kind === "retry" ? "Retry " : "Delete ") + n))) return;
    const prog = document.getElementById("bulk-progress");
    const status = document.getElementById("bulk-status");
    prog.hidden = false; prog.max = count.count; prog.value = 0;
    let cursor = "", done = 0, refused = 0, examined = 0;
    document.querySelectorAll("#bulk button").forEach(function (b) { b.disabled = true; });
    try {
      for (;;) {
        // Retries check each job's failure (about 0.5 ms a job): small requests keep the progress moving.
        const r = await C.api("POST", "/api/v1/jobs/bulk", { action: kind, state: f.state, queue: f.queue, class: f.class, cursor: cursor, limit: kind === "retry" ? 500 : 5000 });
        done += r.done; refused += r.refused; examined += r.examined;
        prog.value = Math.min(examined, count.count);
        status.textContent = (kind === "retry" ? "retried " : "deleted ") + C.num(done) + (refused ? ", refused " + C.num(refused) : "") + " of " + n;
        if (!r.more) break;
        cursor = r.next;
      }
      C.toast((kind === "retry" ? "Retried " : "Deleted ") + C.num(done) + " jobs" + (refused ? "; " + C.num(refused) + " refused by the failure rules." : "."), "ok");
    } catch (e) {
      C.toast(e.message, "bad");
    } finally {
      prog.hidden = true;
      C.refresh("jobs");
    }
  }
  document.addEventListener("click", function (ev) {
    const b = ev.target.closest("[data-action-kind]");
    if (b) { ev.preventDefault(); bulk(b.dataset.actionKind); }
  });
})();
