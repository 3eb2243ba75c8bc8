// Conveyor pages: live panels, actions, confirmations, relative times.
// Every panel is an element with data-panel="name" and data-topics="topic …";
// when GET /api/v1/events names one of its topics, the panel is re-fetched
// as an HTML fragment of the page (?panel=name, rendered and escaped by the
// server) and swapped in. When the stream (re)opens, every panel is
// re-fetched, since events are not replayed. Nothing here builds markup
// from data: text goes in with textContent.
(function () {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const handlers = {}; // panel name → function(panelElement) for panels fed by JSON
  const topicHooks = []; // [topic, fn]: page scripts that act on topics themselves
  const openHooks = [];
  const inflight = new Map(); // panel name → {again: bool}

  function panelURL(name) {
    const u = new URL(location.href);
    u.searchParams.set("panel", name);
    return u.pathname + u.search;
  }

  async function refresh(el) {
    const name = el.dataset.panel;
    if (inflight.has(name)) { inflight.get(name).again = true; return; }
    const st = { again: false };
    inflight.set(name, st);
    try {
      if (handlers[name]) {
        await handlers[name](el);
      } else {
        const resp = await fetch(panelURL(name), { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (resp.status === 401 || resp.redirected && resp.url.includes("/admin/login")) { location.reload(); return; }
        if (!resp.ok) return;
        const tpl = document.createElement("template");
        tpl.innerHTML = await resp.text(); // server-rendered, escaped by html/template
        const next = tpl.content.querySelector('[data-panel="' + name + '"]');
        const cur = document.querySelector('[data-panel="' + name + '"]');
        if (next && cur) {
          cur.replaceWith(next);
          relTimes(next);
          document.dispatchEvent(new CustomEvent("conveyor:panel", { detail: { name: name, el: next } }));
        }
      }
    } catch (e) {
      // network hiccup: the next event or reopen refreshes it
    } finally {
      inflight.delete(name);
      if (st.again) {
        const cur = document.querySelector('[data-panel="' + name + '"]');
        if (cur) refresh(cur);
      }
    }
  }

  function refreshTopic(topic) {
    document.querySelectorAll("[data-panel]").forEach(function (el) {
      if ((el.dataset.topics || "").split(/\s+/).includes(topic)) refresh(el);
    });
    topicHooks.forEach(function (h) { if (h[0] === topic) h[1](); });
  }

  function refreshAll() {
    document.querySelectorAll("[data-panel]").forEach(refresh);
    openHooks.forEach(function (f) { f(); });
  }

  const TOPICS = ["jobs_changed", "job_failures_changed", "issues_changed", "dashboard_metrics_changed",
    "profiles_table_changed", "schedule_changed"];
  let es = null;
  function connect() {
    const ind = document.getElementById("live");
    es = new EventSource("/api/v1/events");
    es.addEventListener("open", function () {
      if (ind) { ind.className = "live on"; ind.textContent = "live"; }
      refreshAll();
    });
    es.addEventListener("error", function () {
      if (ind) { ind.className = "live off"; ind.textContent = "reconnecting"; }
    });
    TOPICS.forEach(function (t) { es.addEventListener(t, function () { refreshTopic(t); }); });
  }

  // Relative times: <time datetime="…" data-rel> shows "12 s ago"; the
  // absolute time is its title.
  function human(ms) {
    ms = Math.max(0, ms);
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 10) return (Math.floor(s * 10) / 10) + " s";
    if (s < 60) return Math.floor(s) + " s";
    const two = function (a, an, b, bn) { return b ? a + " " + an + " " + b + " " + bn : a + " " + an; };
    if (s < 3600) return two(Math.floor(s / 60), "min", Math.floor(s % 60), "s");
    if (s < 86400) return two(Math.floor(s / 3600), "h", Math.floor(s % 3600 / 60), "min");
    return two(Math.floor(s / 86400), "d", Math.floor(s % 86400 / 3600), "h");
  }
  function rel(iso) {
    if (!iso) return "never";
    const d = Date.now() - Date.parse(iso);
    if (Math.abs(d) < 1000) return "just now";
    return d > 0 ? human(Math.floor(d / 1000) * 1000) + " ago" : "in " + human(Math.floor(-d / 1000) * 1000);
  }
  function relTimes(root) {
    (root || document).querySelectorAll("time[data-rel]").forEach(function (t) {
      t.textContent = rel(t.getAttribute("datetime"));
    });
  }
  function timeEl(iso) {
    const t = document.createElement("time");
    if (!iso) { t.textContent = "never"; return t; }
    t.setAttribute("datetime", iso);
    t.dataset.rel = "";
    t.title = new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    t.textContent = rel(iso);
    return t;
  }

  // Confirmation dialog: every destructive action names what it touches and
  // how many before it runs.
  function confirmDialog(text, ok) {
    const dlg = document.getElementById("confirm");
    if (!dlg || !dlg.showModal) return Promise.resolve(window.confirm(text));
    dlg.querySelector(".msg").textContent = text;
    dlg.querySelector('button[value="ok"]').textContent = ok || "Yes";
    dlg.returnValue = "";
    return new Promise(function (resolve) {
      dlg.addEventListener("close", function done() {
        dlg.removeEventListener("close", done);
        resolve(dlg.returnValue === "ok");
      });
      dlg.showModal();
    });
  }

  let toastTimer = null;
  function toast(text, kind) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = "toast " + (kind || "ok");
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, kind === "bad" ? 8000 : 3000);
  }

  // api calls the JSON API with the session cookie and the CSRF token, and
  // returns the decoded body; a non-2xx answer throws its error text.
  async function api(method, path, body, form) {
    const opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } };
    if (form) {
      opts.headers["Content-Type"] = "application/x-www-form-urlencoded";
      opts.body = form;
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 409 && data && data.reason) {
      const err = new Error(data.error || "refused");
      err.data = data;
      throw err;
    }
    if (!resp.ok) throw new Error((data && data.error) || ("HTTP " + resp.status));
    return data;
  }

  // Buttons with data-action="METHOD /path" call the API; data-confirm asks
  // first; data-ok names the button of the question; data-done says what
  // happened.
  document.addEventListener("click", async function (ev) {
    const b = ev.target.closest("[data-action]");
    if (!b) return;
    ev.preventDefault();
    const parts = b.dataset.action.split(" ");
    if (b.dataset.confirm && !(await confirmDialog(b.dataset.confirm, b.dataset.ok))) return;
    b.disabled = true;
    try {
      const body = b.dataset.body ? JSON.parse(b.dataset.body) : undefined;
      await api(parts[0], parts[1], body);
      toast(b.dataset.done || "Done.", "ok");
      (b.dataset.refresh || "").split(/\s+/).filter(Boolean).forEach(function (n) {
        const el = document.querySelector('[data-panel="' + n + '"]');
        if (el) refresh(el);
      });
    } catch (e) {
      toast(e.message, "bad");
    } finally {
      b.disabled = false;
    }
  });

  window.Conveyor = {
    api: api, toast: toast, confirm: confirmDialog, timeEl: timeEl, rel: rel, human: human, csrf: csrf,
    // onPanel feeds a panel from the page's own code instead of a fragment.
    onPanel: function (name, fn) { handlers[name] = fn; },
    // onTopic runs fn when an event names topic; onOpen when the stream (re)opens.
    onTopic: function (topic, fn) { topicHooks.push([topic, fn]); },
    onOpen: function (fn) { openHooks.push(fn); },
    refresh: function (name) { const el = document.querySelector('[data-panel="' + name + '"]'); if (el) refresh(el); },
    num: function (n) { return Number(n).toLocaleString("en-US"); },
  };

  document.addEventListener("DOMContentLoaded", function () {
    relTimes(document);
    setInterval(function () { relTimes(document); }, 10000);
    if (document.body.dataset.live !== "off") connect();
  });
})();
