// The dashboard's charts: processed and failed attempts per minute (uPlot),
// fed by GET /api/v1/dashboard?panels=rates on every metrics event.
(function () {
  "use strict";
  const charts = {};
  function series(r, which) {
    return [r.minutes, r[which]];
  }
  function draw(el, r) {
    const which = el.dataset.which;
    const data = series(r, which);
    if (charts[which]) { charts[which].setData(data); return; }
    const color = which === "failed" ? "#c62828" : "#2557a7";
    charts[which] = new uPlot({
      width: Math.max(280, el.clientWidth - 12), height: 170,
      series: [{}, { label: which + "/min", stroke: color, fill: color + "22", width: 1.5 }],
      axes: [{}, { size: 50 }],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
    }, data, el);
  }
  function render(r) {
    if (!r) return;
    document.querySelectorAll(".chart[data-which]").forEach(function (el) { draw(el, r); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    const first = document.getElementById("chart-processed");
    if (first && first.dataset.series) {
      try { render(JSON.parse(first.dataset.series)); } catch (e) { /* no data yet */ }
    }
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (k) {
        const el = document.getElementById("chart-" + k);
        if (el) charts[k].setSize({ width: Math.max(280, el.clientWidth - 12), height: 170 });
      });
    });
  });
  Conveyor.onPanel("rates", async function () {
    const resp = await fetch("/api/v1/dashboard?panels=rates", { credentials: "same-origin" });
    if (!resp.ok) return;
    const d = await resp.json();
    render(d.rates);
  });
})();
