// liveguard console: the floor manager's live alert feed. Reads /ws/alerts (replaying what it
// missed with ?since=), sends actions to POST /api/alerts/{seq}/actions, and re-renders each
// card from the daemon's updates, so every console shows the same state. Complaints carry a
// ticket (deadlines, follow-ups, reminders); the Tickets tab is the worklist the store keeps
// (GET /api/tickets: nothing that needs an answer leaves it, whatever the feed dropped), and
// the header's counts come from there too. While a pointer or a finger is on a list, or a
// script is being edited, new alerts wait behind an "N new" pill: cards never move under a
// tap. The Insights tab draws GET /api/stats as SVG.
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
    chartTopics: "每小时投诉（按话题）", chartResponse: "每小时首次回应用时（中位数 / 90分位）",
    ticketsTitle: "工单状态", promisesTitle: "承诺兑现", byProduct: "投诉商品", byRoom: "投诉直播间",
    attacksTitle: "攻击（按话题）", rulesTitle: "规则误报率", tComplaints: "投诉", tAttacks: "攻击",
    tOpened: "新工单", tRespMedian: "回应中位数", tBreaches: "超时次数", key: "名称", n: "数量",
    median: "中位数", p90: "90分位", breaches: "超时", promise: "承诺 {d}", promiseOff: "承诺 {d}（超出图表范围）",
    response: "首次回应", resolution: "解决", rule: "规则", fired: "触发", dismissedN: "误报", fpRate: "误报率",
    brigades: "刷屏团伙 {n} 个，涉及 {u} 位用户", scopeAll: "全部直播间", scopeRoom: "直播间 {room}",
    status: "状态", moreRules: "另有 {n} 条规则（误报率更低）",
    // Worklist, steady feed, copy, health
    tabTickets: "工单", prev: "上一页", next: "下一页",
    workCounts: "待回应 {open} · 处理中 {responding} · 已超时 {overdue}",
    workPage: "第 {from}–{to} 条，共 {total} 条", workEmpty: "没有等待处理的工单。", workEmptyOverdue: "目前没有超时工单。",
    pillNew: "{n} 条新告警 ↑", keys: "快捷键：j / k 下一条 / 上一条待回应投诉 · n 最紧急的工单",
    copySelect: "话术已选中，请按 Ctrl+C（Mac 上 ⌘C）复制",
    blindDisconnected: "看不到评论：数据源 {source} 已断开 {for}（{time} 起）",
    blindSilent: "看不到评论：数据源 {source} 已连接，但 {for} 没有任何消息（{time} 起）",
    blindStore: "告警数据库无法写入（{time} 起，正在重试）：{err}",
    u_s: "{n}秒", u_m: "{n}分钟", u_hm: "{h}小时{m}分", u_dh: "{d}天{h}小时",
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
    // Worklist, steady feed, copy, health
    tabTickets: "Tickets", prev: "Previous", next: "Next",
    workCounts: "{open} open · {responding} responding · {overdue} overdue",
    workPage: "{from}–{to} of {total}", workEmpty: "No ticket is waiting for an answer.", workEmptyOverdue: "No ticket is overdue right now.",
    pillNew: "{n} new ↑", keys: "Keys: j / k next / previous open complaint · n most urgent ticket",
    copySelect: "Script selected: press Ctrl+C (⌘C on a Mac) to copy",
    blindDisconnected: "Blind: source {source} disconnected for {for} (since {time})",
    blindSilent: "Blind: source {source} connected but silent for {for} (since {time})",
    blindStore: "The alert database cannot commit (since {time}, retrying): {err}",
    u_s: "{n}s", u_m: "{n}m", u_hm: "{h}h {m}m", u_dh: "{d}d {h}h",
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
const MAX_CARDS = 400; // the live feed; the worklist (GET /api/tickets) keeps everything active
const WORK_PAGE = 50;
const MAX_REMINDERS = 3; // toasts on screen at once; older ones make room
const TOUCH_HOLD_MS = 4000; // a finger lifted: the feed stays still this long for the next tap
const COPY_NOTE_MS = 8000;
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
  tab: ["#insights", "#tickets"].includes(location.hash) ? location.hash.slice(1) : "feed",
  // Counts from the store (GET /api/tickets): the header badge and the title.
  counts: { open: 0, responding: 0, overdue: 0 },
  // The worklist page shown: alerts in order, their cards, and where the page starts.
  work: { alerts: new Map(), order: [], cards: new Map(), total: 0, offset: 0, stale: false },
  // Steady feed: why the lists must not move now, and the alerts waiting to be shown.
  hold: { pointer: new Set(), touchUntil: 0, editing: false },
  pending: new Set(),
  pendingDropped: 0, // waiting alerts beyond what the feed would keep
  copyNotes: new Map(), // seq -> {kind: "copied" | "selected", until}
  selected: null, // seq of the card chosen with j / k
  health: null, // {reasons, at} from /api/console
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
  // Functions, not strings, as replacements: a viewer named `$'` or `$&` stays a name.
  return template.replaceAll("{user}", () => user).replaceAll("{product}", () => product);
}

// h:mm:ss (or m:ss under an hour) for countdowns.
function clock(ms) {
  const abs = Math.abs(ms), hh = Math.floor(abs / HOUR), m = Math.floor((abs % HOUR) / 60000), s = Math.floor((abs % 60000) / 1000);
  return hh ? `${hh}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

// A duration in the largest sensible units, in the console's language: 45s, 7m, 2h 05m, 3d 4h
// (45秒, 7分钟, 2小时05分, 3天4小时).
function dur(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = Math.round(ms / 1000);
  if (s < 60) return tf("u_s", { n: s });
  if (s < 3600) return tf("u_m", { n: Math.round(s / 60) });
  if (s < 48 * 3600) return tf("u_hm", { h: Math.floor(s / 3600), m: String(Math.floor((s % 3600) / 60)).padStart(2, "0") });
  return tf("u_dh", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}

// Local times on a 24-hour clock in both languages (toLocaleTimeString gave "03:04 PM").
const pad2 = (n) => String(n).padStart(2, "0");
const timeOf = (ms) => { const d = new Date(ms); return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; };
const timeSecOf = (ms) => `${timeOf(ms)}:${pad2(new Date(ms).getSeconds())}`;

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
  for (const a of state.alerts.values()) if (state.cards.has(a.seq)) render(a);
  renderWork();
  for (const el of $("reminders").children) el.querySelector(".msg").textContent = reminderText(el.reminder);
  renderBlind();
  updatePill();
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

function visible(a) {
  const room = $("f-room").value, cls = $("f-class").value, topic = $("f-topic").value;
  return (!room || a.room === room || a.room === "*") && (!cls || a.class === cls) && (!topic || a.topic === topic);
}

// The alert a card shows, from the feed or the worklist.
const alertOf = (seq) => state.alerts.get(seq) || state.work.alerts.get(seq);

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

// The feed's card for `a`: a new one goes in newest on top, unless the feed is held (it waits
// behind the pill, see `held`); a known one is redrawn in place.
function render(a) {
  let card = state.cards.get(a.seq);
  if (!card) {
    if (held("feed")) {
      state.pending.add(a.seq);
      // Only the newest MAX_CARDS would be shown anyway: older waiting ones are dropped (the
      // worklist keeps every ticket), still counted on the pill.
      while (state.pending.size > MAX_CARDS) {
        const oldest = Math.min(...state.pending);
        state.pending.delete(oldest);
        state.alerts.delete(oldest);
        state.pendingDropped++;
      }
      updatePill();
      return;
    }
    card = newCard(a.seq);
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
  fillCard(card, a);
  card.style.display = visible(a) ? "" : "none";
}

function newCard(seq) {
  const card = document.createElement("article");
  card.dataset.seq = seq;
  card.tabIndex = -1; // j / k move the keyboard focus here
  card.addEventListener("click", onCardClick);
  card.addEventListener("change", onCardChange);
  return card;
}

// An alert's card contents: who, where, when, the comment with its evidence, the ticket (one
// status chip: the ticket's, when there is one), the script and the buttons that fit.
function fillCard(card, a) {
  const draft = card.querySelector("textarea.script");
  const keepDraft = draft && draft.dataset.edited === "1" ? draft.value : null;
  const hadFocus = draft && document.activeElement === draft;
  const active = Boolean(running(a.ticket));
  const done = a.status !== "open" && !active;
  card.className = `card ${a.class === "neutral" ? "ops" : a.class} kind-${a.kind}${a.kind === "brigade" ? " brigade" : ""}${done ? " done" : ""}${a.retracted ? " retracted" : ""}${state.selected === a.seq ? " selected" : ""}`;
  card.dataset.status = a.status;
  card.dataset.user = a.user.id;
  const name = a.user.name || a.user.handle || a.user.id;
  const time = timeSecOf(a.received_ms);
  const isComplaint = a.class === "complaint";
  const choices = isComplaint ? ["suggested", "refund", "exchange", "explain"] : ["suggested", "private"];
  const used = new Set((a.actions || []).map((r) => r.action));
  const actName = (r) => r.action === "send_script" ? t("sendScript") : r.action === "resolve" ? `${t("resolve")}: ${t(`r_${r.choice}`)}` : t(r.action);
  const log = (a.actions || []).map((r) => `${esc(actName(r))} · ${esc(t("by"))} ${esc(r.by)} · ${timeSecOf(r.at_ms)}`).join("<br>");
  // Brigades list people by name (ids for alerts stored before names were kept): the first
  // 20, with users_total counting them all.
  const users = a.users || [];
  const names = (a.user_names || []).length === users.length ? a.user_names : users;
  const note = state.copyNotes.get(a.seq);
  const noteOn = note && note.until > Date.now();
  card.innerHTML = `
    <div class="meta"><span class="user">${esc(name)}</span><span class="room">${esc(a.room)}</span><time>${esc(time)}</time>
      ${a.kind !== "comment" ? `<span class="kind">${esc(t(a.kind))}${a.count > 1 ? " ×" + a.count : ""}</span>` : (a.count > 1 ? `<span class="kind">×${a.count}</span>` : "")}
      ${a.backlog ? `<span>${esc(t("backlog"))}</span>` : ""}${a.retracted ? `<span>${esc(t("retracted"))}</span>` : ""}
      ${a.ticket ? "" : `<span class="timer"></span>`}</div>
    <p class="text">${highlight(a.text, a.evidence)}</p>
    ${a.kind === "brigade" || users.length > 1 ? `<div class="users">${Math.max(a.users_total || 0, users.length)} ${esc(t("users"))}: ${names.map(esc).join(", ")}${(a.users_total || 0) > users.length ? ", …" : ""}</div>` : ""}
    <div class="tags">${a.topic ? `<span class="tag topic">${esc(t(a.topic))}</span>` : ""}
      ${a.class !== "neutral" ? `<span class="tag score">${Number(a.score).toFixed(2)}</span><span class="tag action">${esc(t(a.action))}</span>` : ""}
      ${a.ticket ? "" : `<span class="tag status">${esc(t(a.status))}</span>`}</div>
    <div class="ticket-slot"></div>
    ${a.class !== "neutral" ? `
    <textarea class="script" rows="3">${esc(keepDraft ?? (a.script || ""))}</textarea>
    <div class="buttons">
      ${isComplaint ? `<button class="invite" data-act="invite" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("invite"))}</button>` : ""}
      <select class="choice">${choices.map((c) => `<option value="${c}">${esc(t(c))}</option>`).join("")}</select>
      <button class="send" data-act="send_script" ${used.has("send_script") || ["muted", "dismissed", "resolved"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("sendScript"))}</button>
      ${isComplaint ? "" : `<button class="mute" data-act="mute" ${["muted", "dismissed", "invited", "resolved"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("mute"))}</button>`}
      <button class="dismiss" data-act="dismiss" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("dismiss"))}</button>
    </div>
    ${noteOn ? `<div class="copy-note ${note.kind}" role="status">${esc(note.kind === "copied" ? t("copied") : t("copySelect"))}</div>` : ""}` : ""}
    <div class="log">${log}</div>`;
  if (a.ticket) card.querySelector(".ticket-slot").replaceWith(ticketBox(a));
  else card.querySelector(".ticket-slot").remove();
  const area = card.querySelector("textarea.script");
  if (keepDraft !== null && area) area.dataset.edited = "1";
  // The fallback copy left the script selected for Ctrl+C: keep it so across the redraw.
  if (noteOn && note.kind === "selected" && area) { area.focus({ preventScroll: true }); area.select(); }
  else if (hadFocus && area) area.focus({ preventScroll: true });
  updateTimer(a, card, serverNow());
}

function onCardChange(ev) {
  const card = ev.currentTarget;
  const a = alertOf(Number(card.dataset.seq));
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

// Puts `text` on the clipboard. navigator.clipboard exists only in secure contexts (https,
// localhost): a tablet on the shop's Wi-Fi over plain http gets the old way, a selected
// textarea and execCommand("copy"), which must run inside the click itself. When even that is
// refused, the card's script is left selected with a hint. Returns "copied" or "selected".
function copyText(text, area) {
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).catch(() => { /* the fallback below already ran */ });
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.style.cssText = "position:fixed;top:0;left:0;width:1px;height:1px;opacity:0;";
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
  ta.remove();
  if (ok) return "copied";
  if (area) { area.focus({ preventScroll: true }); area.select(); }
  return "selected";
}

async function onCardClick(ev) {
  const btn = ev.target.closest("button[data-act]");
  if (!btn || btn.disabled) return;
  const card = ev.currentTarget;
  const seq = Number(card.dataset.seq);
  const act = btn.dataset.act;
  const body = { action: act, by: $("operator").value || "console" };
  if (act === "send_script") {
    const area = card.querySelector("textarea.script");
    body.script = area.value;
    body.choice = card.querySelector("select.choice").value;
    // Before any await: the copy needs the click's user activation.
    const kind = copyText(body.script, area);
    state.copyNotes.set(seq, { kind, until: Date.now() + COPY_NOTE_MS });
    setTimeout(() => { state.copyNotes.delete(seq); const x = alertOf(seq); if (x) redraw(x); }, COPY_NOTE_MS + 50);
    const x = alertOf(seq);
    if (x) redraw(x);
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
  upsert(json, false);
}

// Redraws every card that shows `a` (the feed's, the worklist's).
function redraw(a) {
  if (state.cards.has(a.seq)) fillCard(state.cards.get(a.seq), a);
  const w = state.work.cards.get(a.seq);
  if (w) fillCard(w, a);
}

// An alert or a new version of one: from the socket (`live`: not replayed history) or the
// answer to an action.
function upsert(a, live) {
  const known = state.alerts.has(a.seq) || state.work.alerts.has(a.seq);
  state.alerts.set(a.seq, a);
  if (!state.rooms.has(a.room) && a.room !== "*") { state.rooms.add(a.room); fillFilters(); }
  if (!state.pending.has(a.seq)) render(a); // a waiting alert shows its latest version when it comes in
  if (state.work.alerts.has(a.seq)) {
    state.work.alerts.set(a.seq, a);
    const c = state.work.cards.get(a.seq);
    if (c) fillCard(c, a);
  }
  if (!known && live && a.class === "complaint" && !a.backlog && !state.seenComplaints.has(a.seq)) {
    state.seenComplaints.add(a.seq);
    chime();
  }
  if (a.ticket) loadWorkSoon();
  if (a.kind === "ops" && live) refreshSettings(); // a source went down or came back: the banner
  tickSoon();
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
    // The card in the feed, else the ticket in the worklist (the feed keeps only the newest).
    if (state.cards.has(m.seq)) { showTab("feed"); flashCard(state.cards.get(m.seq)); }
    else { state.overdueOnly = m.stage === "overdue"; state.work.offset = 0; showTab("tickets"); loadWork({ focus: m.seq, force: true }); }
  });
  box.prepend(el);
  while (box.children.length > MAX_REMINDERS) box.lastElementChild.remove();
  setTimeout(() => el.remove(), REMINDER_MS);
  chime();
  loadWorkSoon();
}

function flashCard(card) {
  card.style.display = "";
  card.scrollIntoView({ behavior: "smooth", block: "center" });
  card.classList.add("flash");
  setTimeout(() => card.classList.remove("flash"), 1600);
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

// Once a second: countdowns, the counter strip, the overdue badge and the title badge. The
// open and overdue counts are the store's (GET /api/tickets), not what this page received.
function tick() {
  const now = serverNow();
  const counts = { complaint: 0, attack: 0, brigade: 0 };
  for (const a of state.alerts.values()) {
    if (now - a.received_ms <= FIVE_MIN) {
      if (a.class === "complaint") counts.complaint++;
      if (a.class === "attack") counts.attack++;
      if (a.kind === "brigade") counts.brigade++;
    }
  }
  const { open, overdue } = state.counts;
  $("c-complaint").textContent = counts.complaint;
  $("c-attack").textContent = counts.attack;
  $("c-brigade").textContent = counts.brigade;
  $("overdue-n").textContent = overdue;
  $("overdue").classList.toggle("hot", overdue > 0);
  $("overdue").setAttribute("aria-pressed", String(state.overdueOnly));
  $("work-n").textContent = open + state.counts.responding || "";
  document.title = (open ? `(${open}) ` : "") + (overdue ? `⚠${overdue} ` : "") + "liveguard";
  for (const [seq, card] of state.cards) {
    const a = state.alerts.get(seq);
    if (a) updateTimer(a, card, now);
  }
  for (const [seq, card] of state.work.cards) {
    const a = state.work.alerts.get(seq);
    if (a) updateTimer(a, card, now);
  }
  renderBlind();
}

// Many messages at once (a catch-up, a busy room) make one tick.
let tickTimer = 0;
function tickSoon() {
  if (!tickTimer) tickTimer = setTimeout(() => { tickTimer = 0; tick(); }, 50);
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/alerts?since=${state.lastSeq}`);
  ws.onopen = () => { $("conn").classList.add("up"); loadWorkSoon(); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "hello") {
      state.replayTo = m.last_seq || 0;
    } else if (m.type === "alert" || m.type === "update") {
      if (m.type === "alert") state.lastSeq = Math.max(state.lastSeq, m.seq);
      // Replayed alerts are history: only live messages tell the daemon's time.
      const live = m.type === "update" || m.seq > state.replayTo;
      if (live) noteServerTime(m.updated_ms);
      upsert(m, live);
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

// Settings, the rules-reload banner (ops broke a rule file: the old rules still run) and the
// daemon's health (a source down or silent, the store failing: the console is blind).
async function refreshSettings() {
  try {
    const res = await fetch("/api/console");
    // The session ended (expired, logged out, token removed): back to the login form.
    if (res.status === 401) { location.reload(); return; }
    const cfg = await res.json();
    if (cfg.identity && cfg.identity.token) {
      // Actions are signed by the token's name: nothing to type.
      $("operator").value = cfg.identity.name;
      $("operator").disabled = true;
    }
    if (cfg.response_ms) state.responseMs = cfg.response_ms;
    const banner = $("banner");
    banner.hidden = !cfg.rules_error;
    banner.textContent = cfg.rules_error ? `${t("rulesBroken")}\n${cfg.rules_error}` : "";
    state.health = { reasons: (cfg.health && cfg.health.reasons) || [], at: Date.now() };
    renderBlind();
  } catch (_) { /* keep the last settings */ }
}

// The red banner while the daemon is blind: which source, since when, for how long.
function renderBlind() {
  const el = $("blind");
  const reasons = (state.health && state.health.reasons) || [];
  el.hidden = reasons.length === 0;
  $("conn").classList.toggle("blind", reasons.length > 0);
  if (!reasons.length) { el.textContent = ""; return; }
  const since = Date.now() - state.health.at;
  el.replaceChildren(...reasons.map((r) => {
    const key = r.source == null ? "blindStore" : r.state === "silent" ? "blindSilent" : "blindDisconnected";
    return h("div", { "data-source": r.source ?? "", "data-state": r.state },
      tf(key, { source: r.source, for: dur(r.for_ms + since), time: timeSecOf(r.since_ms), err: r.message }));
  }));
}

// ---------------------------------------------------------------------------------------------
// A steady feed: while a pointer is on a list (a finger: until a few seconds after it lifts) or
// one of its scripts is being edited, the list does not move. New alerts wait behind a pill
// that counts them; they come in when the pointer leaves, or the pill is clicked.

const touchTimers = {};
function held(list) {
  return state.hold.pointer.has(list) || state.hold.editing === list;
}

function setHold(list, on) {
  if (on) { state.hold.pointer.add(list); return; }
  state.hold.pointer.delete(list);
  release(list);
}

function release(list) {
  if (held(list)) return;
  if (list === "feed") flushPending();
  else if (state.work.stale) renderWork();
}

function watchHold(el, list) {
  el.addEventListener("pointerenter", (e) => { if (e.pointerType !== "touch") setHold(list, true); });
  el.addEventListener("pointerleave", (e) => { if (e.pointerType !== "touch") setHold(list, false); });
  el.addEventListener("pointerdown", (e) => {
    if (e.pointerType !== "touch") return;
    clearTimeout(touchTimers[list]);
    setHold(list, true);
  });
  const lift = (e) => {
    if (e.pointerType !== "touch") return;
    clearTimeout(touchTimers[list]);
    touchTimers[list] = setTimeout(() => setHold(list, false), TOUCH_HOLD_MS);
  };
  el.addEventListener("pointerup", lift);
  el.addEventListener("pointercancel", lift);
  el.addEventListener("focusin", (e) => { if (e.target.matches("textarea, select, input")) state.hold.editing = list; });
  el.addEventListener("focusout", () => {
    if (state.hold.editing !== list) return;
    state.hold.editing = null;
    release(list);
  });
}

function flushPending() {
  if (!state.pending.size) return;
  const seqs = [...state.pending].sort((x, y) => x - y);
  state.pending.clear();
  state.pendingDropped = 0;
  for (const seq of seqs) { const a = state.alerts.get(seq); if (a) render(a); }
  updatePill();
  tickSoon();
}

function updatePill() {
  const n = state.pending.size + state.pendingDropped, pill = $("pill");
  pill.hidden = n === 0 || state.tab !== "feed";
  pill.textContent = n ? tf("pillNew", { n }) : "";
}

// ---------------------------------------------------------------------------------------------
// The worklist (Tickets tab): every open or responding ticket from the store, nearest deadline
// first, a page at a time. Its counts drive the header's badges and the title.

let workTimer = 0, workReq = 0;
function loadWorkSoon() {
  if (!workTimer) workTimer = setTimeout(() => { workTimer = 0; loadWork(); }, 250);
}

// Refreshes the counts and, when the tab is open, the page. A refresh waits while the list is
// held; one the floor manager asked for (`force`: a page, a filter) does not. `focus`: a seq to
// show flashed.
async function loadWork(opts) {
  const { focus, force } = opts || {};
  const req = ++workReq;
  const q = new URLSearchParams({ status: "open,responding", offset: String(state.work.offset), limit: String(WORK_PAGE) });
  const room = $("f-room").value;
  if (room) q.set("room", room);
  if (state.overdueOnly) q.set("overdue", "1");
  try {
    // The header counts every room; the page follows the room filter.
    const [page, all] = await Promise.all([
      fetch(`/api/tickets?${q}`).then((r) => r.json()),
      room ? fetch("/api/tickets?limit=1").then((r) => r.json()) : null,
    ]);
    if (req !== workReq || !page || !Array.isArray(page.tickets)) return;
    const c = all || page;
    state.counts = { open: c.open, responding: c.responding, overdue: c.overdue };
    state.work.total = page.total;
    state.work.page = page;
    const alerts = new Map(page.tickets.map((a) => [a.seq, a]));
    // The store answered before some live update was applied here: keep the newer version.
    for (const [seq, a] of alerts) {
      const mine = state.alerts.get(seq);
      if (mine && mine.updated_ms > a.updated_ms) alerts.set(seq, mine);
    }
    state.work.next = { alerts, order: page.tickets.map((a) => a.seq) };
    state.work.stale = true;
    if (state.tab === "tickets" && (force || !held("work"))) renderWork(focus);
  } catch (_) { /* the next message or tick tries again */ }
  tick();
}

function renderWork(focus) {
  const w = state.work;
  if (w.next) { w.alerts = w.next.alerts; w.order = w.next.order; w.next = null; }
  w.stale = false;
  const list = $("work-list");
  // Moving a node in the DOM drops its focus: the card chosen with j / k keeps it.
  const focused = list.contains(document.activeElement) ? document.activeElement : null;
  const cards = new Map();
  const els = w.order.map((seq) => {
    const card = w.cards.get(seq) || newCard(seq);
    fillCard(card, w.alerts.get(seq));
    cards.set(seq, card);
    return card;
  });
  list.replaceChildren(...els);
  if (focused && list.contains(focused)) focused.focus({ preventScroll: true });
  w.cards = cards;
  const page = w.page || { open: 0, responding: 0, overdue: 0 };
  $("work-counts").textContent = tf("workCounts", page);
  const from = w.total ? w.offset + 1 : 0, to = w.offset + w.order.length;
  $("work-page").textContent = tf("workPage", { from, to, total: w.total });
  $("work-prev").disabled = w.offset === 0;
  $("work-next").disabled = to >= w.total;
  $("work-empty").hidden = w.total > 0;
  $("work-empty").textContent = t(state.overdueOnly ? "workEmptyOverdue" : "workEmpty");
  const note = $("filter-note");
  note.hidden = !state.overdueOnly;
  note.textContent = state.overdueOnly ? t("overdueOnly") : "";
  if (focus && cards.has(focus)) flashCard(cards.get(focus));
}

// ---------------------------------------------------------------------------------------------
// Keys: j / k the next / previous open complaint in the list shown, n the most urgent ticket.

function needsAnswer(a) {
  return a && a.class === "complaint" && !a.retracted && (a.ticket ? a.ticket.status === "open" : a.status === "open");
}

function selectCard(card) {
  const seq = Number(card.dataset.seq);
  state.selected = seq;
  document.querySelectorAll("article.card.selected").forEach((c) => c.classList.remove("selected"));
  card.classList.add("selected");
  card.focus({ preventScroll: true });
  card.scrollIntoView({ block: "nearest" });
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.matches("input, textarea, select")) return;
  if (ev.key === "n") {
    ev.preventDefault();
    state.overdueOnly = false;
    state.work.offset = 0;
    showTab("tickets");
    loadWork({ force: true }).then(() => { const first = $("work-list").querySelector("article.card"); if (first) selectCard(first); });
    return;
  }
  if (ev.key !== "j" && ev.key !== "k") return;
  if (state.tab === "insights") return;
  ev.preventDefault();
  const list = state.tab === "tickets" ? $("work-list") : $("feed");
  const cards = [...list.querySelectorAll("article.card")].filter((c) => c.style.display !== "none" && needsAnswer(alertOf(Number(c.dataset.seq))));
  if (!cards.length) return;
  const at = cards.findIndex((c) => Number(c.dataset.seq) === state.selected);
  const next = at < 0 ? (ev.key === "j" ? 0 : cards.length - 1) : Math.min(cards.length - 1, Math.max(0, at + (ev.key === "j" ? 1 : -1)));
  selectCard(cards[next]);
}

// The dock at the bottom (reminders, messages, the keys hint) never covers a button: the page
// is padded by its height and scrolls things into view above it.
function watchDock() {
  const dock = $("dock"), header = document.querySelector("header");
  const set = () => {
    document.documentElement.style.setProperty("--dock-h", `${dock.offsetHeight}px`);
    document.documentElement.style.setProperty("--header-h", `${header.offsetHeight}px`);
  };
  const ro = new ResizeObserver(set);
  ro.observe(dock);
  ro.observe(header);
  set();
}

// ---------------------------------------------------------------------------------------------
// Insights: GET /api/stats?since=24h|7d&room=R, drawn as hand-written SVG and small tables.

function showTab(tab) {
  state.tab = tab;
  for (const x of ["feed", "tickets", "insights"]) $(`tab-${x}`).setAttribute("aria-selected", String(tab === x));
  $("feed").hidden = tab !== "feed";
  $("work").hidden = tab !== "tickets";
  $("insights").hidden = tab !== "insights";
  document.body.dataset.tab = tab;
  // Only when it changes: a same-document navigation while the page loads confuses tools
  // that wait for the load (and there is nothing to remember).
  const hash = tab === "feed" ? "" : `#${tab}`;
  if (location.hash !== hash) history.replaceState(null, "", location.pathname + location.search + hash);
  if (tab === "insights") loadStats();
  if (tab === "tickets") { if (state.work.stale) renderWork(); loadWork({ force: true }); }
  if (tab === "feed" && !held("feed")) flushPending();
  updatePill();
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
    TICKET_STATUSES.map((s) => ({ attrs: { "data-status": s }, cells: [t(`t_${s}`), { text: (tk.by_status || {})[s] ?? 0, class: "n" }] }))));
  $("tbl-promises").replaceChildren(table(["", t("n"), t("median"), t("p90"), t("breaches")],
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
      for (const a of state.alerts.values()) if (state.cards.has(a.seq)) render(a);
      if (id === "f-room" && state.tab === "insights") loadStats();
      if (id === "f-room") { state.work.offset = 0; loadWork({ force: true }); }
    });
  }
  // The badge opens the worklist's overdue tickets (all of them, not only the feed's); again:
  // every active ticket.
  $("overdue").addEventListener("click", () => {
    state.overdueOnly = !state.overdueOnly;
    state.work.offset = 0;
    showTab("tickets");
  });
  $("tab-feed").addEventListener("click", () => showTab("feed"));
  $("tab-tickets").addEventListener("click", () => showTab("tickets"));
  $("tab-insights").addEventListener("click", () => showTab("insights"));
  $("work-prev").addEventListener("click", () => { state.work.offset = Math.max(0, state.work.offset - WORK_PAGE); loadWork({ force: true }); });
  $("work-next").addEventListener("click", () => { state.work.offset += WORK_PAGE; loadWork({ force: true }); });
  $("pill").addEventListener("click", () => { flushPending(); window.scrollTo({ top: 0, behavior: "smooth" }); });
  watchHold($("feed"), "feed");
  watchHold($("work-list"), "work");
  document.addEventListener("keydown", onKey);
  watchDock();
  // The store's counts follow every message; this is the backstop for deadlines passing.
  setInterval(() => loadWork(), 5000);
  $("ins-range").addEventListener("change", loadStats);
  $("ins-refresh").addEventListener("click", loadStats);
  // While the tab is open the figures follow along; closed, nothing is fetched.
  setInterval(() => { if (state.tab === "insights") loadStats(); }, 30000);
  applyI18n();
  showTab(state.tab);
  setInterval(tick, 1000);
  loadWork();
  connect();
}

start();
