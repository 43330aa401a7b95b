// The Insights tab: GET /api/stats?since=24h|7d&room=R, drawn as hand-written SVG and small
// tables: complaints per hour by topic, time to first response, tickets, promises kept, the
// worst rules by false-positive rate.

import { state, noteServerTime } from "./state.js";
import { $, h, sv, HOUR, timeSecOf } from "./util.js";
import { t, tf, dur } from "./i18n.js";
import { label, names, topicsOf } from "./vocab.js";

const MAX_RULE_ROWS = 12; // the worst offenders; the full list is in /api/stats
// Calm, distinguishable topic colours for the charts (legend shows the names).
const TOPIC_COLOURS = {
  defect: "#f0a030", not_as_shown: "#5b8def", authenticity: "#c678dd", size_fit: "#3fb27f",
  logistics: "#4fc1c9", after_sales: "#e07b53", refund_request: "#d4c95a", other: "#7d838c",
};
// The chart's "other" bucket (hours whose count exceeds their topics) is the page's own word.
const topicName = (k) => k === "other" ? t("other") : label("topics", k);

let statsReq = 0;
export async function loadStats() {
  const req = ++statsReq;
  const room = $("f-room").value;
  const q = new URLSearchParams({ since: $("ins-range").value });
  if (room) q.set("room", room);
  $("ins-status").textContent = t("loading");
  try {
    const res = await fetch(`/api/stats?${q}`);
    const json = await res.json().catch(() => null);
    if (!res.ok || !json) throw new Error((json && json.error) || `${res.status} ${res.statusText}`);
    if (req !== statsReq) return; // a newer request (range or room changed) wins
    state.stats = json;
    state.statsError = null;
    if (json.until_ms) noteServerTime(json.until_ms);
  } catch (e) {
    if (req !== statsReq) return;
    state.statsError = e.message || String(e);
  }
  state.statsAt = Date.now();
  renderStats();
}

export function renderStats() {
  const st = state.stats, err = state.statsError;
  const room = $("f-room").value;
  $("ins-scope").textContent = room ? tf("scopeRoom", { room }) : t("scopeAll");
  $("ins-status").textContent = err ? tf("statsError", { err }) : state.statsAt ? tf("updatedAt", { time: timeSecOf(state.statsAt) }) : "";
  $("ins-status").classList.toggle("error", Boolean(err));
  if (!st) { $("ins-body").hidden = true; $("ins-empty").hidden = true; return; }
  const c = st.complaints || {}, at = st.attacks || {}, tk = st.tickets || {};
  const nothing = !(c.total > 0) && !(at.total > 0) && !(tk.opened > 0);
  $("ins-empty").hidden = !nothing;
  $("ins-empty").textContent = nothing ? t("empty") : "";
  $("ins-body").hidden = nothing;
  if (nothing) return;
  const resp = tk.response || {}, resol = tk.resolution || {};
  $("ins-tiles").replaceChildren(
    tile(c.total ?? 0, t("tComplaints"), "complaint"),
    tile(at.total ?? 0, t("tAttacks"), "attack"),
    tile(tk.opened ?? 0, t("tOpened")),
    tile(dur(resp.median_ms), t("tRespMedian")),
    tile((resp.breaches || 0) + (resol.breaches || 0), t("tBreaches"), (resp.breaches || resol.breaches) ? "warn" : ""));
  const hours = hourAxis(st, [...(c.by_hour || []), ...(tk.response_by_hour || [])].map((r) => r.hour_ms));
  drawTopicChart($("chart-topics"), $("legend-topics"), hours, c.by_hour || []);
  drawResponseChart($("chart-response"), $("legend-response"), hours, tk.response_by_hour || []);
  $("tbl-tickets").replaceChildren(table([t("status"), t("n")],
    names("ticket_statuses").map((s) => ({ attrs: { "data-status": s }, cells: [label("ticket_statuses", s), { text: (tk.by_status || {})[s] ?? 0, class: "n" }] }))));
  $("tbl-promises").replaceChildren(table(["", t("n"), t("median"), t("p90"), t("breaches")],
    [["response", resp], ["resolution", resol]].map(([k, p]) => ({
      attrs: { "data-promise": k },
      cells: [t(k), { text: p.n ?? 0, class: "n" }, { text: dur(p.median_ms), class: "n" }, { text: dur(p.p90_ms), class: "n" },
        { text: p.breaches ?? 0, class: `n${p.breaches ? " warn" : ""}` }],
    }))));
  $("tbl-products").replaceChildren(barTable(c.by_product || [], (k) => k));
  $("tbl-rooms").replaceChildren(barTable(c.by_room || [], (k) => k));
  const attacks = barTable(at.by_topic || [], (k) => label("topics", k));
  const brig = h("p", { class: "muted brigades" }, tf("brigades", { n: at.brigades ?? 0, u: at.brigade_users ?? 0 }));
  $("tbl-attacks").replaceChildren(attacks, brig);
  const rules = [...(st.rules || [])].sort((a, b) => (b.fp_rate ?? 0) - (a.fp_rate ?? 0) || b.fired - a.fired);
  const more = rules.length > MAX_RULE_ROWS ? h("p", { class: "muted" }, tf("moreRules", { n: rules.length - MAX_RULE_ROWS })) : null;
  $("tbl-rules").replaceChildren(rules.length ? table([t("rule"), t("fired"), t("dismissedN"), t("fpRate")],
    rules.slice(0, MAX_RULE_ROWS).map((r) => ({
      attrs: { "data-rule": r.rule },
      cells: [{ text: r.rule, class: "mono" }, { text: r.fired, class: "n" }, { text: r.dismissed, class: "n" },
        { text: `${Math.round((r.fp_rate ?? 0) * 100)}%`, class: `n${(r.fp_rate ?? 0) >= 0.25 ? " warn" : ""}` }],
    }))) : h("p", { class: "muted" }, t("emptyChart")), ...(more ? [more] : []));
}

function tile(value, label, cls) {
  return h("div", { class: `tile ${cls || ""}` }, h("b", {}, String(value)), h("span", {}, label));
}

// rows: [{attrs, cells: [text | {text, class}]}]
function table(head, rows) {
  const thead = h("thead", {}, h("tr", {}, ...head.map((x, i) => h("th", { class: i ? "n" : null }, x))));
  const tbody = h("tbody", {});
  for (const r of rows) {
    tbody.append(h("tr", r.attrs, ...r.cells.map((c) => typeof c === "object" ? h("td", { class: c.class }, String(c.text)) : h("td", {}, String(c)))));
  }
  return h("table", {}, thead, tbody);
}

// [{key, n}] as rows with a thin proportional bar.
function barTable(rows, label) {
  if (!rows.length) return h("p", { class: "muted" }, t("emptyChart"));
  const max = Math.max(1, ...rows.map((r) => r.n));
  const tbody = h("tbody", {});
  for (const r of rows.slice(0, 12)) {
    const bar = h("span", { class: "hbar" });
    bar.style.width = `${Math.max(2, (100 * r.n) / max)}%`;
    tbody.append(h("tr", { "data-key": r.key }, h("td", {}, label(r.key)), h("td", { class: "bar-cell" }, bar), h("td", { class: "n" }, String(r.n))));
  }
  return h("table", { class: "bars" }, tbody);
}

// Every hour of the requested range (so quiet hours show as gaps), plus any hour in the data.
function hourAxis(st, dataHours) {
  const set = new Set(dataHours);
  const since = st.since_ms, until = st.until_ms;
  if (since > 0 && until > since && (until - since) / HOUR <= 24 * 31) {
    for (let x = Math.floor(since / HOUR) * HOUR; x <= until; x += HOUR) set.add(x);
  }
  return [...set].sort((a, b) => a - b);
}

// An axis label: the hour over a day, the date (at midnight) over a week; `full` for tooltips.
function hourLabel(ms, span, full) {
  const d = new Date(ms);
  const hh = `${String(d.getHours()).padStart(2, "0")}:00`;
  const day = `${d.getMonth() + 1}/${d.getDate()}`;
  if (full) return `${day} ${hh}`;
  return span > 36 ? (d.getHours() ? `${day} ${hh}` : day) : hh;
}

// Round steps for an axis: counts in 1-2-5, durations in clock units.
function niceStep(raw, durations) {
  if (durations) {
    const steps = [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800].map((s) => s * 1000);
    return steps.find((s) => s >= raw) || Math.ceil(raw / 86400000) * 86400000;
  }
  const mag = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  return Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw));
}

// Frame, grid lines and axis labels; returns the plotting helpers.
function frame(hours, max, durations, label) {
  const W = 960, H = 230, m = { l: 52, r: 12, t: 12, b: 30 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const step = niceStep(max / 4, durations);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart-svg" });
  const y = (v) => m.t + ph - (ph * v) / top;
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(sv("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), class: v ? "grid" : "axis" }));
    svg.append(sv("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, durations ? dur(v) : String(v)));
  }
  const n = Math.max(1, hours.length), bw = pw / n;
  // At most ~12 labels, on round local hours (every 3 h over a day, midnight over a week).
  const every = [1, 2, 3, 6, 12, 24].find((e) => n / e <= 12) || 24 * Math.ceil(n / 288);
  hours.forEach((hr, i) => {
    if (every <= 24 ? new Date(hr).getHours() % every : i % every) return;
    svg.append(sv("text", { x: m.l + bw * i + bw / 2, y: H - m.b + 18, "text-anchor": "middle", class: "tick" }, hourLabel(hr, n)));
  });
  return { svg, y, x: (i) => m.l + bw * i, bw, top, W, m };
}

function legendItem(colour, text, cls) {
  const sw = h("span", { class: `swatch ${cls || ""}` });
  sw.style.background = colour;
  return h("span", { class: "item" }, sw, text);
}

function drawTopicChart(box, legend, hours, rows) {
  const byHour = new Map(rows.map((r) => [r.hour_ms, r]));
  const seen = new Set(rows.flatMap((r) => Object.keys(r.by_topic || {})));
  const complaints = topicsOf("complaint");
  const topics = [...complaints.filter((x) => seen.has(x)), ...[...seen].filter((x) => !complaints.includes(x)).sort()];
  const total = (r) => Math.max(r.n || 0, Object.values(r.by_topic || {}).reduce((s, v) => s + v, 0));
  const max = Math.max(0, ...rows.map(total));
  if (!rows.length || max === 0) { box.replaceChildren(h("p", { class: "empty small" }, t("emptyChart"))); legend.replaceChildren(); return; }
  const f = frame(hours, max, false, t("chartTopics"));
  const colour = (k) => TOPIC_COLOURS[k] || TOPIC_COLOURS.other;
  hours.forEach((hr, i) => {
    const r = byHour.get(hr);
    if (!r) return;
    const w = Math.max(1, f.bw * 0.72), x = f.x(i) + (f.bw - w) / 2;
    let acc = 0;
    const parts = topics.map((k) => [k, (r.by_topic || {})[k] || 0]);
    const rest = (r.n || 0) - parts.reduce((s, [, v]) => s + v, 0);
    if (rest > 0) parts.push(["other", rest]);
    for (const [k, v] of parts) {
      if (!v) continue;
      const rect = sv("rect", { class: "bar", x, y: f.y(acc + v), width: w, height: Math.max(0.5, f.y(acc) - f.y(acc + v)), fill: colour(k), "data-topic": k });
      rect.append(sv("title", {}, `${hourLabel(hr, 0, true)} · ${topicName(k)}: ${v}`));
      f.svg.append(rect);
      acc += v;
    }
  });
  box.replaceChildren(f.svg);
  legend.replaceChildren(...topics.map((k) => legendItem(colour(k), topicName(k))));
}

function drawResponseChart(box, legend, hours, rows) {
  const have = rows.filter((r) => r.n > 0 && r.median_ms != null);
  if (!have.length) { box.replaceChildren(h("p", { class: "empty small" }, t("emptyResponse"))); legend.replaceChildren(); return; }
  const byHour = new Map(have.map((r) => [r.hour_ms, r]));
  const dataMax = Math.max(...have.map((r) => Math.max(r.median_ms, r.p90_ms ?? 0)));
  // The promise line is drawn when it does not squash the data (within 3x of the slowest hour).
  const promise = state.responseMs;
  const showPromise = promise > 0 && promise <= dataMax * 3;
  const f = frame(hours, Math.max(dataMax, showPromise ? promise : 0), true, t("chartResponse"));
  hours.forEach((hr, i) => {
    const r = byHour.get(hr);
    if (!r) return;
    const w = Math.max(1, f.bw * 0.72), x = f.x(i) + (f.bw - w) / 2;
    const tip = `${hourLabel(hr, 0, true)} · ${t("n")} ${r.n} · ${t("median")} ${dur(r.median_ms)} · ${t("p90")} ${dur(r.p90_ms)}`;
    if (r.p90_ms != null) {
      const p = sv("rect", { class: "bar p90", x, y: f.y(r.p90_ms), width: w, height: Math.max(0.5, f.y(0) - f.y(r.p90_ms)) });
      p.append(sv("title", {}, tip));
      f.svg.append(p);
    }
    const mw = Math.max(1, w * 0.5);
    const md = sv("rect", { class: "bar median", x: x + (w - mw) / 2, y: f.y(r.median_ms), width: mw, height: Math.max(0.5, f.y(0) - f.y(r.median_ms)) });
    md.append(sv("title", {}, tip));
    f.svg.append(md);
  });
  if (showPromise) {
    f.svg.append(sv("line", { class: "promise", x1: f.m.l, x2: f.W - f.m.r, y1: f.y(promise), y2: f.y(promise) }));
  }
  box.replaceChildren(f.svg);
  legend.replaceChildren(
    legendItem("var(--median)", t("median")),
    legendItem("var(--p90)", t("p90")),
    legendItem("transparent", tf(showPromise ? "promise" : "promiseOff", { d: dur(promise) }), "dashed"));
}
