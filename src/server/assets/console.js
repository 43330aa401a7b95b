// liveguard console: the floor manager's live alert feed. Reads /ws/alerts (replaying what it
// missed with ?since=), sends actions to POST /api/alerts/{seq}/actions, and re-renders each
// card from the daemon's updates, so every console shows the same state. Complaints carry a
// ticket (deadlines, follow-ups, reminders); the Insights tab draws GET /api/stats as SVG.
"use strict";

const I18N = {
  zh: {
    console: "场控台", complaints5: "投诉 (5分钟)", attacks5: "攻击 (5分钟)", brigades5: "刷屏团伙 (5分钟)",
    allRooms: "全部直播间", allClasses: "全部类别", allTopics: "全部话题", operator: "场控名",
    complaint: "真实投诉", attack: "恶意攻击", neutral: "运营", invite: "邀请连麦", sendScript: "发送话术",
    mute: "禁言/标记", dismiss: "误报忽略", suggested: "建议话术", refund: "方案A 退款", exchange: "方案B 换货",
    explain: "解释说明", private: "引导私聊", open: "待处理", invited: "已邀请连麦", scripted: "已发话术",
    muted: "已禁言", dismissed: "已忽略(误报)", resolved: "已解决", overdue: "已超时", left: "剩余", backlog: "历史消息",
    retracted: "平台已删除", users: "位用户", rulesBroken: "规则更新失败，仍在使用上一版规则：", copied: "话术已复制", connected: "已连接", lang: "EN",
    invite_costream: "建议连麦", scripted_reply: "建议话术回复", private_resolution: "引导私下解决",
    mute_review: "建议禁言审核", none: "—", by: "操作", brigade: "团伙刷屏", split: "拆字", repetition: "重复刷屏",
    flood: "刷屏", ops: "运维", comment: "评论",
    defect: "质量问题", not_as_shown: "与直播不符", authenticity: "真假质疑", size_fit: "尺寸不合",
    logistics: "物流问题", after_sales: "售后无回应", refund_request: "要求退款", insult: "辱骂",
    diversion: "引流", smear: "抹黑", spam: "广告刷屏", threat: "威胁", hate: "仇恨言论", other: "其他",
    // Tickets
    ticket: "工单", t_open: "待回应", t_responding: "处理中", t_resolved_refund: "已解决 · 方案A 退款",
    t_resolved_exchange: "已解决 · 方案B 换货", t_resolved_other: "已解决 · 其他", t_dismissed: "已忽略",
    respondIn: "首次回应剩余", respondLate: "首次回应已超时", resolveIn: "解决剩余", resolveLate: "解决已超时",
    resolvedAfter: "用时", resolveLabel: "结案：", r_refund: "方案A 退款", r_exchange: "方案B 换货", r_other: "其他",
    followups: "买家追问 {n} 次", overdueTickets: "超时工单", resolve: "结案",
    overdueOnly: "只显示超时工单。再次点击“超时工单”显示全部。", noOverdue: "（目前没有超时工单）",
    remindNearing: "提醒：{user} 的「{topic}」投诉，{due}即将到期（{time} 前）",
    remindOverdue: "提醒：{user} 的「{topic}」投诉，{due}已超时（应于 {time} 前）",
    due_response: "首次回应", due_resolution: "解决承诺", close: "关闭",
    // Insights
    tabFeed: "告警", tabInsights: "数据", range24h: "近24小时", range7d: "近7天", refresh: "刷新",
    loading: "加载中…", updatedAt: "更新于 {time}", statsError: "数据暂不可用：{err}",
    empty: "这段时间没有投诉或攻击，一切平静。", emptyChart: "这段时间没有数据。", emptyResponse: "这段时间还没有首次回应。",
    chartTopics: "每小时投诉（按话题）", chartResponse: "每小时首次回应用时（中位数 / P90）",
    ticketsTitle: "工单状态", promisesTitle: "承诺兑现", byProduct: "投诉商品", byRoom: "投诉直播间",
    attacksTitle: "攻击（按话题）", rulesTitle: "规则误报率", tComplaints: "投诉", tAttacks: "攻击",
    tOpened: "新工单", tRespMedian: "回应中位数", tBreaches: "超时次数", key: "名称", n: "数量",
    median: "中位数", p90: "P90", breaches: "超时", promise: "承诺 {d}", promiseOff: "承诺 {d}（超出图表范围）",
    response: "首次回应", resolution: "解决", rule: "规则", fired: "触发", dismissedN: "误报", fpRate: "误报率",
    brigades: "刷屏团伙 {n} 个，涉及 {u} 位用户", scopeAll: "全部直播间", scopeRoom: "直播间 {room}",
    status: "状态", moreRules: "另有 {n} 条规则（误报率更低）",
  },
  en: {
    console: "floor console", complaints5: "complaints (5 min)", attacks5: "attacks (5 min)", brigades5: "brigades (5 min)",
    allRooms: "all rooms", allClasses: "all classes", allTopics: "all topics", operator: "your name",
    complaint: "complaint", attack: "attack", neutral: "ops", invite: "Invite to co-stream", sendScript: "Send script",
    mute: "Mute / flag", dismiss: "Dismiss (false positive)", suggested: "suggested", refund: "Plan A refund",
    exchange: "Plan B exchange", explain: "explanation", private: "private resolution", open: "open",
    invited: "invited on mic", scripted: "script sent", muted: "muted", dismissed: "dismissed (false positive)",
    resolved: "resolved", overdue: "overdue", left: "left", backlog: "backlog", retracted: "deleted by platform", users: "users",
    rulesBroken: "Rules reload failed; still running the last good rules:",
    copied: "script copied", connected: "connected", lang: "中文",
    invite_costream: "invite to co-stream", scripted_reply: "scripted reply", private_resolution: "private resolution",
    mute_review: "mute & review", none: "—", by: "by", brigade: "brigade", split: "split word", repetition: "repetition",
    flood: "flood", ops: "ops", comment: "comment",
    defect: "defect", not_as_shown: "not as shown", authenticity: "authenticity", size_fit: "size / fit",
    logistics: "logistics", after_sales: "after-sales silence", refund_request: "refund request", insult: "insult",
    diversion: "diversion", smear: "smear", spam: "spam", threat: "threat", hate: "hate", other: "other",
    // Tickets
    ticket: "ticket", t_open: "open", t_responding: "responding", t_resolved_refund: "resolved: refund (方案A)",
    t_resolved_exchange: "resolved: exchange (方案B)", t_resolved_other: "resolved: other", t_dismissed: "dismissed",
    respondIn: "respond within", respondLate: "response overdue by", resolveIn: "resolve within", resolveLate: "resolution overdue by",
    resolvedAfter: "after", resolveLabel: "Resolve:", r_refund: "Refund (方案A)", r_exchange: "Exchange (方案B)", r_other: "Other",
    followups: "buyer followed up {n}×", overdueTickets: "overdue tickets", resolve: "resolve",
    overdueOnly: "Showing overdue tickets only. Click “overdue tickets” again to show everything.", noOverdue: "(no ticket is overdue right now)",
    remindNearing: "Reminder: {user}'s {topic} complaint: the {due} is due soon (by {time})",
    remindOverdue: "Reminder: {user}'s {topic} complaint: the {due} is overdue (was due {time})",
    due_response: "first response", due_resolution: "resolution", close: "Close",
    // Insights
    tabFeed: "Alerts", tabInsights: "Insights", range24h: "last 24 h", range7d: "last 7 days", refresh: "Refresh",
    loading: "loading…", updatedAt: "updated {time}", statsError: "Insights unavailable: {err}",
    empty: "No complaints or attacks in this period: a quiet stream.", emptyChart: "No data in this period.",
    emptyResponse: "No first responses in this period yet.",
    chartTopics: "Complaints per hour, by topic", chartResponse: "Time to first response per hour (median / p90)",
    ticketsTitle: "Tickets", promisesTitle: "Promises kept", byProduct: "Complaints by product", byRoom: "Complaints by room",
    attacksTitle: "Attacks by topic", rulesTitle: "Rules by false-positive rate", tComplaints: "complaints", tAttacks: "attacks",
    tOpened: "tickets opened", tRespMedian: "median response", tBreaches: "deadlines missed", key: "name", n: "count",
    median: "median", p90: "p90", breaches: "missed", promise: "promise {d}", promiseOff: "promise {d} (off the scale)",
    response: "first response", resolution: "resolution", rule: "rule", fired: "fired", dismissedN: "dismissed", fpRate: "FP rate",
    brigades: "{n} brigades, {u} users involved", scopeAll: "all rooms", scopeRoom: "room {room}",
    status: "status", moreRules: "{n} more rules (lower false-positive rates)",
  },
};

// Script templates a floor manager can pick (the SOPs' 方案A / 方案B), by comment language.
const SCRIPTS = {
  zh: {
    refund: "{user}您好，非常抱歉给您带来不好的体验。方案A：我们马上安排客服联系您办理全额退款，{product}无需寄回。",
    exchange: "{user}您好，这确实是我们的疏忽。方案B：您可以在直播间任选同等或更高价位的一款，我们立即为您换货，运费全部由我们承担。",
    explain: "{user}您好，感谢您的反馈！我们马上核实{product}的情况，稍后在直播间给您说明。",
    private: "{user}您好，具体问题请私信客服，我们一对一为您处理，感谢理解。",
  },
  en: {
    refund: "{user}, we're so sorry about this. Plan A: our team will contact you now for a full refund, no need to send {product} back.",
    exchange: "{user}, that's on us. Plan B: pick any piece of the same or higher price from the live room and we'll exchange it, shipping paid both ways.",
    explain: "{user}, thank you for telling us! We're checking {product} right now and will explain here on the live.",
    private: "{user}, please message our customer service and we'll sort this out with you one to one. Thank you!",
  },
};
const TOPICS = {
  complaint: ["defect", "not_as_shown", "authenticity", "size_fit", "logistics", "after_sales", "refund_request"],
  attack: ["insult", "diversion", "smear", "spam", "threat", "hate"],
};
// Calm, distinguishable topic colours for the charts (legend shows the names).
const TOPIC_COLOURS = {
  defect: "#f0a030", not_as_shown: "#5b8def", authenticity: "#c678dd", size_fit: "#3fb27f",
  logistics: "#4fc1c9", after_sales: "#e07b53", refund_request: "#d4c95a", other: "#7d838c",
};
const TICKET_STATUSES = ["open", "responding", "resolved_refund", "resolved_exchange", "resolved_other", "dismissed"];
const RESOLVE_CHOICES = ["refund", "exchange", "other"];
const FIVE_MIN = 5 * 60 * 1000;
const HOUR = 3600 * 1000;
const MAX_CARDS = 400;
const MAX_REMINDERS = 4; // toasts on screen at once; older ones make room
const REMINDER_MS = 20000; // how long a reminder toast stays
const SHOWN_FOLLOWUPS = 3;
const MAX_RULE_ROWS = 12; // the worst offenders; the full list is in /api/stats

const state = {
  alerts: new Map(), // seq -> alert
  cards: new Map(), // seq -> element
  lastSeq: 0,
  replayTo: 0, // alerts up to this seq on the current socket are replayed history
  lang: localStorage.getItem("lg-lang") || "zh",
  responseMs: 2 * 3600 * 1000,
  rooms: new Set(),
  seenComplaints: new Set(),
  // Server time minus browser time. Deadlines are the daemon's clock; the browser's may differ
  // (or, in tests, the daemon's clock is moved): estimated from live timestamps, never lowered.
  skew: null,
  overdueOnly: false,
  tab: location.hash === "#insights" ? "insights" : "feed",
  stats: null,
  statsError: null,
  statsAt: 0,
};
const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || key;
const tf = (key, vars) => t(key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// DOM builders: attributes are set one by one and children appended as text nodes, so user
// text never goes through innerHTML.
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}
const SVGNS = "http://www.w3.org/2000/svg";
function sv(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function noteServerTime(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return;
  const s = ms - Date.now();
  state.skew = state.skew === null ? s : Math.max(state.skew, s);
}
const serverNow = () => Date.now() + (state.skew ?? 0);

// Evidence spans are UTF-8 byte offsets into the original text; JS strings are UTF-16.
function highlight(text, evidence) {
  const bytes = new TextEncoder().encode(text);
  const dec = new TextDecoder();
  const spans = (evidence || []).filter((e) => e.start < e.end && e.end <= bytes.length).sort((a, b) => a.start - b.start || b.end - a.end);
  let out = "";
  let pos = 0;
  for (const e of spans) {
    if (e.start < pos) continue;
    out += esc(dec.decode(bytes.slice(pos, e.start)));
    out += `<mark title="${esc(e.rule)}">${esc(dec.decode(bytes.slice(e.start, e.end)))}</mark>`;
    pos = e.end;
  }
  return out + esc(dec.decode(bytes.slice(pos)));
}

function fill(template, alert) {
  const user = alert.user.name || alert.user.handle || alert.user.id;
  // As on the server: in English {product} is a whole noun phrase ("the …" / "your item").
  const product = alert.lang === "zh" ? (alert.product || "这款") : (alert.product ? `the ${alert.product}` : "your item");
  return template.replaceAll("{user}", user).replaceAll("{product}", product);
}

// h:mm:ss (or m:ss under an hour) for countdowns.
function clock(ms) {
  const abs = Math.abs(ms), hh = Math.floor(abs / HOUR), m = Math.floor((abs % HOUR) / 60000), s = Math.floor((abs % 60000) / 1000);
  return hh ? `${hh}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

// A duration in the largest sensible units: 45s, 7m, 2h 05m, 3d 4h.
function dur(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const timeOf = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// The promise still running on a ticket: the first response until there was one, then the
// resolution. Null when the ticket is closed.
function running(tk) {
  if (!tk || !["open", "responding"].includes(tk.status)) return null;
  const due = tk.responded_ms == null ? "response" : "resolution";
  const by = due === "response" ? tk.respond_by_ms : tk.resolve_by_ms;
  return { due, by, span: Math.max(1, by - tk.opened_ms) };
}

// Past its running deadline by the daemon's clock, or the daemon already said so.
function isOverdue(a, now) {
  const r = running(a.ticket);
  if (!r) return false;
  return now >= r.by || (a.ticket.reminders || []).some((x) => x.due === r.due && x.stage === "overdue");
}

function applyI18n() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang-toggle").textContent = t("lang");
  $("operator").placeholder = t("operator");
  fillFilters();
  for (const a of state.alerts.values()) render(a);
  for (const el of $("reminders").children) el.querySelector(".msg").textContent = reminderText(el.reminder);
  renderStats();
  tick();
}

function fillFilters() {
  const keep = (sel) => sel.value;
  const room = keep($("f-room")), cls = keep($("f-class")), topic = keep($("f-topic"));
  $("f-room").innerHTML = `<option value="">${esc(t("allRooms"))}</option>` +
    [...state.rooms].sort().map((r) => `<option value="${esc(r)}">${esc(r)}</option>`).join("");
  $("f-class").innerHTML = `<option value="">${esc(t("allClasses"))}</option>` +
    ["complaint", "attack", "neutral"].map((c) => `<option value="${c}">${esc(t(c))}</option>`).join("");
  $("f-topic").innerHTML = `<option value="">${esc(t("allTopics"))}</option>` +
    [...TOPICS.complaint, ...TOPICS.attack].map((x) => `<option value="${x}">${esc(t(x))}</option>`).join("");
  $("f-room").value = room; $("f-class").value = cls; $("f-topic").value = topic;
}

function visible(a, now) {
  const room = $("f-room").value, cls = $("f-class").value, topic = $("f-topic").value;
  return (!room || a.room === room) && (!cls || a.class === cls) && (!topic || a.topic === topic) &&
    (!state.overdueOnly || isOverdue(a, now ?? serverNow()));
}

// The ticket part of a complaint card: status, countdown, follow-ups, resolve buttons.
function ticketBox(a) {
  const tk = a.ticket;
  const box = h("div", { class: "ticket", "data-ticket": tk.status });
  const line = h("div", { class: "ticket-line" },
    h("span", { class: `tag tstatus ts-${tk.status}` }, t(`t_${tk.status}`)),
    h("span", { class: "timer" }));
  if (tk.resolved_ms && tk.status !== "dismissed") {
    line.append(h("span", { class: "muted" }, `${t("resolvedAfter")} ${dur(tk.resolved_ms - tk.opened_ms)}`));
  }
  box.append(line);
  const fu = tk.followups || [];
  if (fu.length) {
    const list = h("ul", { class: "followups" });
    for (const f of fu.slice(-SHOWN_FOLLOWUPS).reverse()) {
      list.append(h("li", {}, h("time", {}, timeOf(f.at_ms)), " ", h("span", { class: "fu-text" }, f.text)));
    }
    box.append(h("div", { class: "fu-count" }, tf("followups", { n: fu.length })), list);
  }
  if (running(tk)) {
    const row = h("div", { class: "resolve-row" }, h("span", { class: "muted" }, t("resolveLabel")));
    for (const c of RESOLVE_CHOICES) {
      row.append(h("button", { class: `resolve r-${c}`, type: "button", "data-act": "resolve", "data-choice": c }, t(`r_${c}`)));
    }
    box.append(row);
  }
  return box;
}

function render(a) {
  let card = state.cards.get(a.seq);
  const isNew = !card;
  if (isNew) {
    card = document.createElement("article");
    card.dataset.seq = a.seq;
    card.addEventListener("click", onCardClick);
    card.addEventListener("change", onCardChange);
    state.cards.set(a.seq, card);
    const feed = $("feed");
    const after = [...state.cards.keys()].filter((s) => s > a.seq).sort((x, y) => x - y)[0];
    const before = after !== undefined ? state.cards.get(after) : null;
    // Newest on top: insert after the card with the next higher seq.
    if (before && before.parentNode === feed) feed.insertBefore(card, before.nextSibling); else feed.prepend(card);
    while (state.cards.size > MAX_CARDS) {
      const oldest = Math.min(...state.cards.keys());
      state.cards.get(oldest).remove();
      state.cards.delete(oldest);
      state.alerts.delete(oldest);
    }
  }
  const draft = card.querySelector("textarea.script");
  const keepDraft = draft && draft.dataset.edited === "1" ? draft.value : null;
  const active = Boolean(running(a.ticket));
  const done = a.status !== "open" && !active;
  card.className = `card ${a.class === "neutral" ? "ops" : a.class} kind-${a.kind}${a.kind === "brigade" ? " brigade" : ""}${done ? " done" : ""}${a.retracted ? " retracted" : ""}`;
  card.dataset.status = a.status;
  card.dataset.user = a.user.id;
  card.style.display = visible(a) ? "" : "none";
  const name = a.user.name || a.user.handle || a.user.id;
  const time = new Date(a.received_ms).toLocaleTimeString();
  const isComplaint = a.class === "complaint";
  const choices = isComplaint ? ["suggested", "refund", "exchange", "explain"] : ["suggested", "private"];
  const used = new Set((a.actions || []).map((r) => r.action));
  const actName = (r) => r.action === "send_script" ? t("sendScript") : r.action === "resolve" ? `${t("resolve")}: ${t(`r_${r.choice}`)}` : t(r.action);
  const log = (a.actions || []).map((r) => `${esc(actName(r))} · ${esc(t("by"))} ${esc(r.by)} · ${new Date(r.at_ms).toLocaleTimeString()}`).join("<br>");
  card.innerHTML = `
    <div class="meta"><span class="user">${esc(name)}</span><span class="room">${esc(a.room)}</span><time>${esc(time)}</time>
      ${a.kind !== "comment" ? `<span class="kind">${esc(t(a.kind))}${a.count > 1 ? " ×" + a.count : ""}</span>` : (a.count > 1 ? `<span class="kind">×${a.count}</span>` : "")}
      ${a.backlog ? `<span>${esc(t("backlog"))}</span>` : ""}${a.retracted ? `<span>${esc(t("retracted"))}</span>` : ""}
      ${a.ticket ? "" : `<span class="timer"></span>`}</div>
    <p class="text">${highlight(a.text, a.evidence)}</p>
    ${a.kind === "brigade" || (a.users || []).length > 1 ? `<div class="users">${(a.users || []).length} ${esc(t("users"))}: ${(a.users || []).map(esc).join(", ")}</div>` : ""}
    <div class="tags">${a.topic ? `<span class="tag topic">${esc(t(a.topic))}</span>` : ""}
      ${a.class !== "neutral" ? `<span class="tag score">${Number(a.score).toFixed(2)}</span><span class="tag action">${esc(t(a.action))}</span>` : ""}
      <span class="tag status">${esc(t(a.status))}</span></div>
    <div class="ticket-slot"></div>
    ${a.class !== "neutral" ? `
    <textarea class="script" rows="3">${esc(keepDraft ?? (a.script || ""))}</textarea>
    <div class="buttons">
      ${isComplaint ? `<button class="invite" data-act="invite" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("invite"))}</button>` : ""}
      <select class="choice">${choices.map((c) => `<option value="${c}">${esc(t(c))}</option>`).join("")}</select>
      <button class="send" data-act="send_script" ${used.has("send_script") || ["muted", "dismissed", "resolved"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("sendScript"))}</button>
      <button class="mute" data-act="mute" ${["muted", "dismissed", "invited", "resolved"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("mute"))}</button>
      <button class="dismiss" data-act="dismiss" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("dismiss"))}</button>
    </div>` : ""}
    <div class="log">${log}</div>`;
  if (a.ticket) card.querySelector(".ticket-slot").replaceWith(ticketBox(a));
  else card.querySelector(".ticket-slot").remove();
  if (keepDraft !== null) card.querySelector("textarea.script").dataset.edited = "1";
  updateTimer(a, card, serverNow());
  if (isNew && isComplaint && !a.backlog && !state.seenComplaints.has(a.seq)) {
    state.seenComplaints.add(a.seq);
    chime();
  }
}

function onCardChange(ev) {
  const card = ev.currentTarget;
  const a = state.alerts.get(Number(card.dataset.seq));
  if (!a) return;
  if (ev.target.classList.contains("choice")) {
    const area = card.querySelector("textarea.script");
    const choice = ev.target.value;
    const lang = a.lang === "zh" ? "zh" : "en";
    area.value = choice === "suggested" ? (a.script || "") : fill(SCRIPTS[lang][choice], a);
    area.dataset.edited = "1";
  } else if (ev.target.classList.contains("script")) {
    ev.target.dataset.edited = "1";
  }
}

async function onCardClick(ev) {
  const btn = ev.target.closest("button[data-act]");
  if (!btn || btn.disabled) return;
  const card = ev.currentTarget;
  const seq = Number(card.dataset.seq);
  const act = btn.dataset.act;
  const body = { action: act, by: $("operator").value || "console" };
  if (act === "send_script") {
    body.script = card.querySelector("textarea.script").value;
    body.choice = card.querySelector("select.choice").value;
    try { await navigator.clipboard.writeText(body.script); toast(t("copied")); } catch (_) { /* no clipboard in this context */ }
  } else if (act === "resolve") {
    body.choice = btn.dataset.choice;
  }
  btn.disabled = true;
  let res, json;
  try {
    res = await fetch(`/api/alerts/${seq}/actions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    json = await res.json().catch(() => ({}));
  } catch (e) {
    toast(String(e)); btn.disabled = false; return;
  }
  // 409 (someone acted first) and 422 (does not fit) name the reason; the socket's update
  // brings the card to the state the other console left it in.
  if (!res.ok) { toast(json.error || res.statusText); btn.disabled = false; return; }
  noteServerTime(json.updated_ms);
  upsert(json);
}

function upsert(a) {
  state.alerts.set(a.seq, a);
  if (!state.rooms.has(a.room)) { state.rooms.add(a.room); fillFilters(); }
  render(a);
  tick();
}

let toastTimer = 0;
function toast(msg) {
  const el = $("toast");
  el.textContent = msg;
  el.classList.add("on");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("on"), 3000);
}

function reminderText(m) {
  const key = m.stage === "overdue" ? "remindOverdue" : "remindNearing";
  return tf(key, { user: m.user, topic: m.topic ? t(m.topic) : t("complaint"), due: t(`due_${m.due}`), time: timeOf(m.due_ms) });
}

// A calm reminder toast: amber for "nearing", red for "overdue"; it names the user, the topic
// and the promise; a click shows the card.
function remind(m) {
  const box = $("reminders");
  const el = h("div", { class: `reminder ${m.stage === "overdue" ? "overdue" : "nearing"}`, "data-seq": m.seq, "data-due": m.due, "data-stage": m.stage },
    h("span", { class: "msg" }, reminderText(m)),
    h("span", { class: "room muted" }, m.room),
    h("button", { type: "button", class: "close", "aria-label": t("close") }, "×"));
  el.reminder = m;
  el.addEventListener("click", (ev) => {
    el.remove();
    if (ev.target.closest("button.close")) return;
    showTab("feed");
    const card = state.cards.get(m.seq);
    if (card) { card.style.display = ""; card.scrollIntoView({ behavior: "smooth", block: "center" }); card.classList.add("flash"); setTimeout(() => card.classList.remove("flash"), 1600); }
  });
  box.prepend(el);
  while (box.children.length > MAX_REMINDERS) box.lastElementChild.remove();
  setTimeout(() => el.remove(), REMINDER_MS);
  chime();
}

let audio = null;
function chime() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.06;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.15);
  } catch (_) { /* audio needs a user gesture in some browsers */ }
}

// The countdown on one card: the ticket's running deadline (amber within the last quarter, red
// when overdue); without a ticket, the console's promised response time from arrival.
function updateTimer(a, card, now) {
  const el = card.querySelector(".timer");
  if (!el) return;
  const r = running(a.ticket);
  card.classList.toggle("overdue", isOverdue(a, now));
  if (r) {
    const left = r.by - now;
    const late = left <= 0 || isOverdue(a, now);
    el.className = "timer" + (late ? " red" : left <= r.span / 4 ? " amber" : "");
    const key = r.due === "response" ? (late ? "respondLate" : "respondIn") : (late ? "resolveLate" : "resolveIn");
    el.textContent = `${t(key)} ${clock(Math.max(0, late ? -left : left))}`;
    return;
  }
  if (a.ticket || a.class !== "complaint" || a.status !== "open" || a.retracted) { el.textContent = ""; el.className = "timer"; return; }
  const used = now - a.received_ms, left = state.responseMs - used;
  el.className = "timer" + (left <= 0 ? " red" : used >= state.responseMs / 2 ? " amber" : "");
  el.textContent = left <= 0 ? `${t("overdue")} ${clock(left)}` : `${t("left")} ${clock(left)}`;
}

// Once a second: countdowns, the counter strip, the overdue badge and the title badge.
function tick() {
  const now = serverNow();
  let open = 0, overdue = 0;
  const counts = { complaint: 0, attack: 0, brigade: 0 };
  for (const a of state.alerts.values()) {
    if (now - a.received_ms <= FIVE_MIN) {
      if (a.class === "complaint") counts.complaint++;
      if (a.class === "attack") counts.attack++;
      if (a.kind === "brigade") counts.brigade++;
    }
    if (a.class === "complaint" && a.status === "open" && !a.retracted) open++;
    if (isOverdue(a, now)) overdue++;
  }
  $("c-complaint").textContent = counts.complaint;
  $("c-attack").textContent = counts.attack;
  $("c-brigade").textContent = counts.brigade;
  $("overdue-n").textContent = overdue;
  $("overdue").classList.toggle("hot", overdue > 0);
  document.title = (open ? `(${open}) ` : "") + (overdue ? `⚠${overdue} ` : "") + "liveguard";
  const note = $("filter-note");
  note.hidden = !state.overdueOnly || state.tab !== "feed";
  note.textContent = state.overdueOnly ? t("overdueOnly") + (overdue ? "" : ` ${t("noOverdue")}`) : "";
  for (const [seq, card] of state.cards) {
    const a = state.alerts.get(seq);
    if (!a) continue;
    updateTimer(a, card, now);
    if (state.overdueOnly) card.style.display = visible(a, now) ? "" : "none";
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/alerts?since=${state.lastSeq}`);
  ws.onopen = () => $("conn").classList.add("up");
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") {
      state.replayTo = m.last_seq || 0;
    } else if (m.type === "alert" || m.type === "update") {
      if (m.type === "alert") state.lastSeq = Math.max(state.lastSeq, m.seq);
      // Replayed alerts are history: only live messages tell the daemon's time.
      if (m.type === "update" || m.seq > state.replayTo) noteServerTime(m.updated_ms);
      upsert(m);
    } else if (m.type === "reminder") {
      noteServerTime(m.at_ms);
      remind(m);
      tick();
    } else if (m.type === "lagged") {
      ws.close(); // reconnect with since= to catch up exactly
    }
  };
  ws.onclose = () => { $("conn").classList.remove("up"); setTimeout(connect, 1000); };
}

// Settings, and the rules-reload banner (ops broke a rule file: the old rules still run).
async function refreshSettings() {
  try {
    const cfg = await (await fetch("/api/console")).json();
    if (cfg.response_ms) state.responseMs = cfg.response_ms;
    const banner = $("banner");
    banner.hidden = !cfg.rules_error;
    banner.textContent = cfg.rules_error ? `${t("rulesBroken")}\n${cfg.rules_error}` : "";
  } catch (_) { /* keep the last settings */ }
}

// ---------------------------------------------------------------------------------------------
// Insights: GET /api/stats?since=24h|7d&room=R, drawn as hand-written SVG and small tables.

function showTab(tab) {
  state.tab = tab;
  $("tab-feed").setAttribute("aria-selected", String(tab === "feed"));
  $("tab-insights").setAttribute("aria-selected", String(tab === "insights"));
  $("feed").hidden = tab !== "feed";
  $("insights").hidden = tab !== "insights";
  document.body.dataset.tab = tab;
  // Only when it changes: a same-document navigation while the page loads confuses tools
  // that wait for the load (and there is nothing to remember).
  const hash = tab === "insights" ? "#insights" : "";
  if (location.hash !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
  if (tab === "insights") loadStats();
  tick();
}

let statsReq = 0;
async function loadStats() {
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

function renderStats() {
  const st = state.stats, err = state.statsError;
  const room = $("f-room").value;
  $("ins-scope").textContent = room ? tf("scopeRoom", { room }) : t("scopeAll");
  $("ins-status").textContent = err ? tf("statsError", { err }) : state.statsAt ? tf("updatedAt", { time: new Date(state.statsAt).toLocaleTimeString() }) : "";
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
    TICKET_STATUSES.map((s) => ({ attrs: { "data-status": s }, cells: [t(`t_${s}`), { text: (tk.by_status || {})[s] ?? 0, class: "n" }] }))));
  $("tbl-promises").replaceChildren(table(["", "n", t("median"), t("p90"), t("breaches")],
    [["response", resp], ["resolution", resol]].map(([k, p]) => ({
      attrs: { "data-promise": k },
      cells: [t(k), { text: p.n ?? 0, class: "n" }, { text: dur(p.median_ms), class: "n" }, { text: dur(p.p90_ms), class: "n" },
        { text: p.breaches ?? 0, class: `n${p.breaches ? " warn" : ""}` }],
    }))));
  $("tbl-products").replaceChildren(barTable(c.by_product || [], (k) => k));
  $("tbl-rooms").replaceChildren(barTable(c.by_room || [], (k) => k));
  const attacks = barTable(at.by_topic || [], (k) => t(k));
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
  const topics = [...TOPICS.complaint.filter((x) => seen.has(x)), ...[...seen].filter((x) => !TOPICS.complaint.includes(x)).sort()];
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
      rect.append(sv("title", {}, `${hourLabel(hr, 0, true)} · ${t(k)}: ${v}`));
      f.svg.append(rect);
      acc += v;
    }
  });
  box.replaceChildren(f.svg);
  legend.replaceChildren(...topics.map((k) => legendItem(colour(k), t(k))));
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
    const tip = `${hourLabel(hr, 0, true)} · n=${r.n} · ${t("median")} ${dur(r.median_ms)} · ${t("p90")} ${dur(r.p90_ms)}`;
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

async function start() {
  await refreshSettings();
  setInterval(refreshSettings, 3000);
  $("operator").value = localStorage.getItem("lg-operator") || "";
  $("operator").addEventListener("change", () => localStorage.setItem("lg-operator", $("operator").value));
  $("lang-toggle").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("lg-lang", state.lang);
    applyI18n();
  });
  for (const id of ["f-room", "f-class", "f-topic"]) {
    $(id).addEventListener("change", () => {
      for (const a of state.alerts.values()) render(a);
      if (id === "f-room" && state.tab === "insights") loadStats();
    });
  }
  $("overdue").addEventListener("click", () => {
    state.overdueOnly = !state.overdueOnly;
    $("overdue").setAttribute("aria-pressed", String(state.overdueOnly));
    if (state.tab !== "feed") showTab("feed");
    for (const a of state.alerts.values()) render(a);
    tick();
  });
  $("tab-feed").addEventListener("click", () => showTab("feed"));
  $("tab-insights").addEventListener("click", () => showTab("insights"));
  $("ins-range").addEventListener("change", loadStats);
  $("ins-refresh").addEventListener("click", loadStats);
  // While the tab is open the figures follow along; closed, nothing is fetched.
  setInterval(() => { if (state.tab === "insights") loadStats(); }, 30000);
  applyI18n();
  showTab(state.tab);
  setInterval(tick, 1000);
  connect();
}

start();
