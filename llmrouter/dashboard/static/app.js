// The llmrouter dashboard: fetch data.json, draw every chart as inline SVG. No libraries.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function usd(value) {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 2 : abs >= 1 ? 4 : 6;
  return (value < 0 ? "-$" : "$") + abs.toFixed(digits);
}

function pct(value) { return (100 * value).toFixed(1) + "%"; }
function ms(value) { return value === null || value === undefined ? "–" : value.toFixed(1); }

function setText(id, text) { document.getElementById(id).textContent = text; }

function empty(container, message) {
  container.textContent = "";
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = message || "no calls in this window";
  container.appendChild(p);
}

// Horizontal bars: one row per item, the value written at the bar's end.
function hbars(container, items, format) {
  container.textContent = "";
  if (!items.length) return empty(container);
  const row = 26, labelW = 140, width = 520, valueW = 110;
  const max = Math.max(...items.map((d) => d.value), 1e-12);
  const svg = el("svg", { width: width, height: items.length * row + 4, role: "img" });
  items.forEach((d, i) => {
    const y = i * row + 2;
    const w = Math.max((width - labelW - valueW) * (d.value / max), d.value > 0 ? 1 : 0);
    svg.appendChild(el("text", { x: 0, y: y + 16 }, d.label));
    svg.appendChild(el("rect", { class: "bar" + (d.alt ? " alt" : ""), x: labelW, y: y + 3,
      width: w.toFixed(2), height: row - 8, "data-label": d.label, "data-value": d.value }));
    svg.appendChild(el("text", { class: "value", x: labelW + w + 6, y: y + 16,
      "data-label": d.label }, format(d.value, d)));
  });
  container.appendChild(svg);
}

// Vertical bars over days, with the baseline as a lighter bar behind each one.
function timebars(container, days) {
  container.textContent = "";
  if (!days.length) return empty(container);
  const height = 180, pad = 40, width = Math.max(520, days.length * 48 + pad);
  const max = Math.max(...days.map((d) => Math.max(d.cost_usd, d.baseline_cost_usd)), 1e-12);
  const slot = (width - pad) / days.length;
  const svg = el("svg", { width: width, height: height + 40, role: "img" });
  svg.appendChild(el("line", { class: "axis", x1: pad, y1: height, x2: width, y2: height }));
  svg.appendChild(el("text", { x: 0, y: 12 }, usd(max)));
  days.forEach((d, i) => {
    const x = pad + i * slot + slot * 0.15, w = slot * 0.7;
    const hb = (height - 20) * (d.baseline_cost_usd / max);
    const hc = (height - 20) * (d.cost_usd / max);
    svg.appendChild(el("rect", { class: "bar alt baseline", x: x, y: height - hb, width: w,
      height: hb, "data-label": d.day, "data-value": d.baseline_cost_usd }));
    svg.appendChild(el("rect", { class: "bar spend", x: x + w * 0.2, y: height - hc,
      width: w * 0.6, height: hc, "data-label": d.day, "data-value": d.cost_usd }));
    svg.appendChild(el("text", { x: x, y: height + 16 }, d.day.slice(5)));
    svg.appendChild(el("text", { class: "value", x: x, y: height + 32, "data-label": d.day },
      usd(d.cost_usd)));
  });
  container.appendChild(svg);
}

function donut(container, rate, hits, calls) {
  container.textContent = "";
  const r = 50, c = 2 * Math.PI * r;
  const svg = el("svg", { width: 260, height: 130, role: "img" });
  svg.appendChild(el("circle", { cx: 65, cy: 65, r: r, fill: "none", stroke: "#e3e8ee",
    "stroke-width": 18 }));
  svg.appendChild(el("circle", { class: "hit-arc", cx: 65, cy: 65, r: r, fill: "none",
    stroke: "#2e9e5b", "stroke-width": 18, "stroke-dasharray": `${(rate * c).toFixed(2)} ${c}`,
    transform: "rotate(-90 65 65)", "data-value": rate }));
  svg.appendChild(el("text", { x: 46, y: 70 }, pct(rate)));
  svg.appendChild(el("text", { x: 135, y: 60 }, `${hits} hits`));
  svg.appendChild(el("text", { x: 135, y: 80 }, `of ${calls} calls`));
  container.appendChild(svg);
}

// Remaining budget by day, from the limit down; the limit line dashed.
function burndown(limit, burn) {
  const width = 520, height = 120, pad = 40;
  const svg = el("svg", { width: width, height: height + 20, role: "img", class: "burn" });
  const top = Math.max(limit, ...burn.map((b) => b.spent_usd));
  const y = (v) => 10 + (height - 10) * (1 - v / top);
  const step = burn.length > 1 ? (width - pad) / (burn.length - 1) : 0;
  svg.appendChild(el("line", { class: "limit", x1: pad, x2: width, y1: y(limit), y2: y(limit) }));
  const points = [`${pad},${y(limit).toFixed(2)}`].concat(
    burn.map((b, i) => `${(pad + i * step).toFixed(2)},${y(b.remaining_usd).toFixed(2)}`));
  svg.appendChild(el("polyline", { class: "line", points: points.join(" "),
    "data-values": burn.map((b) => b.remaining_usd).join(",") }));
  svg.appendChild(el("line", { class: "axis", x1: pad, x2: width, y1: y(0), y2: y(0) }));
  svg.appendChild(el("text", { x: 0, y: y(limit) + 4 }, usd(limit)));
  return svg;
}

function budgets(container, list) {
  container.textContent = "";
  if (!list.length) return empty(container, "no budgets in the policy");
  for (const b of list) {
    const box = document.createElement("div");
    box.className = "budget";
    box.dataset.label = b.label;
    const title = document.createElement("h3");
    const period = b.period === "total" ? "in total" : "per " + b.period;
    title.textContent = `${b.label} — ${b.mode}, ${usd(b.limit_usd)} ${period}`;
    box.appendChild(title);
    if (!b.scopes.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "nothing spent this period";
      box.appendChild(p);
    }
    for (const s of b.scopes) {
      const line = document.createElement("p");
      line.className = "budget-scope" + (s.remaining_usd < 0 ? " over" : "");
      line.dataset.value = s.value;
      line.dataset.spent = s.spent_usd;
      line.textContent = `${s.value === "*" ? "all calls" : s.value}: ` +
        `spent ${usd(s.spent_usd)} of ${usd(b.limit_usd)} (${pct(s.used)}), ` +
        `${usd(s.remaining_usd)} left`;
      box.appendChild(line);
      box.appendChild(burndown(b.limit_usd, s.burn));
    }
    container.appendChild(box);
  }
}

function render(data) {
  const t = data.totals;
  setText("total-cost", usd(t.cost_usd));
  setText("total-baseline", usd(t.baseline_cost_usd));
  setText("total-saved", usd(t.saved_usd));
  setText("total-calls", String(t.calls));
  setText("cache-hit-rate", pct(t.cache_hit_rate));
  setText("total-errors", String(t.errors));
  const lat = data.latency.overall;
  setText("latency-p50", ms(lat.p50));
  setText("latency-p90", ms(lat.p90));
  setText("latency-p99", ms(lat.p99));
  const w = data.window;
  const day = (s) => new Date(s * 1000).toISOString().slice(0, 10);
  setText("window", (w.since ? day(w.since) : "start") + " → " + (w.until ? day(w.until) : "now"));
  timebars(document.getElementById("chart-spend-time"), data.spend_over_time);
  hbars(document.getElementById("chart-by-backend"),
    data.by_backend.map((d) => ({ label: d.backend, value: d.cost_usd })), usd);
  hbars(document.getElementById("chart-savings"), [
    { label: "routing", value: data.savings.routing },
    { label: "cache", value: data.savings.cache },
    { label: "compression", value: data.savings.compression },
  ], usd);
  hbars(document.getElementById("chart-routes"),
    data.routes.map((d) => ({ label: d.backend, value: d.share, calls: d.calls })),
    (v, d) => `${pct(v)} (${d.calls})`);
  donut(document.getElementById("chart-cache"), t.cache_hit_rate, t.cache_hits, t.calls);
  const latency = [];
  for (const b of data.latency.by_backend) {
    for (const q of ["p50", "p90", "p99"]) {
      latency.push({ label: `${b.backend} ${q}`, value: b[q] || 0, alt: q !== "p50" });
    }
  }
  hbars(document.getElementById("chart-latency"), latency, (v) => v.toFixed(1) + " ms");
  budgets(document.getElementById("budgets"), data.budgets);
}

async function load() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  const headers = key ? { Authorization: "Bearer " + key } : {};
  const status = document.getElementById("status");
  try {
    const response = await fetch("data.json" + location.search, { headers: headers });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || "HTTP " + response.status);
    }
    render(await response.json());
    status.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.state = "ready";
  } catch (error) {
    status.textContent = "could not load the data: " + error.message;
    document.body.dataset.state = "error";
  }
}

load();
setInterval(load, 30000);
