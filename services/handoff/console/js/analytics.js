// Analytics (R21): how the human side is doing, as figures and charts. The charts are drawn
// by Chart.js (vendor/chart.umd.min.js, loaded by index.html as window.Chart).

import { get, paths } from "./api.js";
import { clear, duration, h, loading, plural, saidBox } from "./ui.js";

const RANGES = [
  ["24h", "Last 24 hours", 24],
  ["7d", "Last 7 days", 24 * 7],
  ["30d", "Last 30 days", 24 * 30],
];
const COLORS = ["#2f5bea", "#d9822b", "#15704d", "#9b51e0", "#b42318", "#0e7c86", "#7a5c00", "#5d6878"];
const CAUSES = { agent: "The agent", operator: "A teammate", timeout: "A timeout" };
const dayAndHour = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
const hourOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export function analyticsPage(session) {
  const charts = [];
  let range = "24h";
  let queue = "";

  const rangeSelect = h("select", { id: "analytics-range", onchange: () => { range = rangeSelect.value; load(); } },
    RANGES.map(([value, label]) => h("option", { value }, label)));
  const queueSelect = h("select", { id: "analytics-queue", onchange: () => { queue = queueSelect.value; draw(); } },
    h("option", { value: "" }, "All queues"));
  const body = h("div", { class: "analytics-body" }, loading());
  const el = h("div", { class: "page analytics-page" },
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Analytics"), h("p", { class: "muted small" }, "Handoffs, waiting and the way back to the AI. Hourly; times in your browser's time zone.")),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "analytics-range" }, "Period"), rangeSelect),
        h("div", { class: "field" }, h("label", { for: "analytics-queue" }, "Queue"), queueSelect))),
    body);

  let data = null;

  async function load() {
    const hours = RANGES.find(([v]) => v === range)[2];
    const to = new Date();
    const from = new Date(to.getTime() - hours * 3600 * 1000);
    const query = `?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    try {
      data = await get(`${paths.analytics(session.tenant)}${query}`);
    } catch (err) {
      destroyCharts();
      clear(body, saidBox(err));
      return;
    }
    const names = data.queues.map((q) => q.queue);
    if (queue && !names.includes(queue)) queue = "";
    clear(queueSelect, h("option", { value: "" }, "All queues"), names.map((n) => h("option", { value: n, selected: n === queue }, n)));
    draw();
  }

  function destroyCharts() {
    while (charts.length) charts.pop().destroy();
  }

  function draw() {
    destroyCharts();
    if (!data) return;
    const scope = queue ? data.queues.find((q) => q.queue === queue) : { ...data.totals, series: data.series };
    if (!window.Chart) {
      clear(body, h("div", { class: "alert alert-error" }, "The chart library did not load; reload the page."));
      return;
    }
    const label = range === "24h" ? hourOnly : dayAndHour;
    const labels = scope.series.map((p) => label.format(new Date(p.start)));
    const canvases = {
      wait: h("canvas", { id: "chart-pickup-wait", "aria-label": "Pickup wait over time", role: "img" }),
      queues: h("canvas", { id: "chart-handoffs-by-queue", "aria-label": "Handoffs by queue over time", role: "img" }),
      reasons: h("canvas", { id: "chart-handoffs-by-reason", "aria-label": "Handoffs by reason", role: "img" }),
      returns: h("canvas", { id: "chart-returns-by-cause", "aria-label": "Returns to the AI by cause", role: "img" }),
    };
    clear(body,
      figures(scope),
      h("div", { class: "chart-grid" },
        chartCard("Pickup wait", "Median and 90th percentile wait for a teammate, per hour.", canvases.wait, !scope.pickup_wait_seconds.count),
        chartCard("Handoffs by queue", "Handoffs to a person, per hour.", canvases.queues, !scope.handoffs),
        chartCard("Handoffs by reason", "The commonest reasons the AI or a teammate gave.", canvases.reasons, !scope.top_reasons.length),
        chartCard("Returns to the AI", "Who gave the conversation back to the AI.", canvases.returns, !scope.returns_to_ai)));

    const Chart = window.Chart;
    const base = { responsive: true, maintainAspectRatio: false, animation: false };
    const seconds = { ticks: { callback: (v) => duration(v) }, beginAtZero: true };
    charts.push(new Chart(canvases.wait, {
      type: "line",
      data: {
        labels,
        datasets: [
          { label: "p50", data: scope.series.map((p) => p.pickup_wait_p50), borderColor: COLORS[0], backgroundColor: COLORS[0], spanGaps: true },
          { label: "p90", data: scope.series.map((p) => p.pickup_wait_p90), borderColor: COLORS[1], backgroundColor: COLORS[1], spanGaps: true },
        ],
      },
      options: { ...base, scales: { y: seconds }, plugins: { tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${duration(c.parsed.y)}` } } } },
    }));
    const queueNames = [...new Set(scope.series.flatMap((p) => Object.keys(p.handoffs_by_queue)))].sort();
    charts.push(new Chart(canvases.queues, {
      type: "bar",
      data: {
        labels,
        datasets: queueNames.map((name, i) => ({
          label: name,
          data: scope.series.map((p) => p.handoffs_by_queue[name] || 0),
          backgroundColor: COLORS[i % COLORS.length],
        })),
      },
      options: { ...base, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    }));
    charts.push(new Chart(canvases.reasons, {
      type: "bar",
      data: {
        labels: scope.top_reasons.map((r) => (r.reason.length > 48 ? `${r.reason.slice(0, 47)}…` : r.reason)),
        datasets: [{ label: "Handoffs", data: scope.top_reasons.map((r) => r.count), backgroundColor: COLORS[0] }],
      },
      options: { ...base, indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }, plugins: { legend: { display: false } } },
    }));
    const causes = Object.keys(scope.returns_by_cause);
    charts.push(new Chart(canvases.returns, {
      type: "doughnut",
      data: {
        labels: causes.map((c) => CAUSES[c] || c),
        datasets: [{ data: causes.map((c) => scope.returns_by_cause[c]), backgroundColor: causes.map((_, i) => COLORS[i % COLORS.length]) }],
      },
      options: { ...base, plugins: { legend: { position: "right" } } },
    }));
  }

  load();
  const timer = setInterval(load, 60000);
  return {
    title: "Analytics",
    el,
    cleanup: () => {
      clearInterval(timer);
      destroyCharts();
    },
  };
}

function figure(name, label, value, note) {
  return h("div", { class: "figure card", dataset: { figure: name } },
    h("div", { class: "figure-label" }, label),
    h("div", { class: "figure-value" }, value),
    note ? h("div", { class: "figure-note muted small" }, note) : null);
}

function figures(s) {
  const rate = s.bounce_back_rate === null ? "—" : `${Math.round(s.bounce_back_rate * 1000) / 10} %`;
  const causes = Object.entries(s.handoffs_by_cause).map(([c, n]) => `${(CAUSES[c] || c).toLowerCase()} ${n}`).join(" · ");
  return h("div", { class: "figures" },
    figure("handoffs", "Handoffs", String(s.handoffs), causes ? `by ${causes}` : "none in this period"),
    figure("pickup-p50", "Pickup wait (median)", duration(s.pickup_wait_seconds.p50), `90 % within ${duration(s.pickup_wait_seconds.p90)} · ${plural(s.pickup_wait_seconds.count, "pickup")}`),
    figure("first-reply-p50", "First human reply (median)", duration(s.first_human_reply_seconds.p50), `90 % within ${duration(s.first_human_reply_seconds.p90)}`),
    figure("handle-p50", "Handle time (median)", duration(s.handle_seconds.p50), `90 % within ${duration(s.handle_seconds.p90)}`),
    figure("returns", "Back to the AI", String(s.returns_to_ai), Object.entries(s.returns_by_cause).map(([c, n]) => `${(CAUSES[c] || c).toLowerCase()} ${n}`).join(" · ") || "none in this period"),
    figure("bounce-rate", "Bounce-back rate", rate, `${plural(s.bounce_backs, "handoff")} within 24 h of a return`));
}

function chartCard(title, hint, canvas, empty) {
  return h("section", { class: "card chart-card" },
    h("h2", {}, title),
    h("p", { class: "muted small" }, hint),
    h("div", { class: "chart-box" }, canvas),
    empty ? h("p", { class: "empty chart-empty" }, "No data in this period yet.") : null);
}
