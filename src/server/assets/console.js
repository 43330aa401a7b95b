// liveguard console: the floor manager's live alert feed. Reads /ws/alerts (replaying what it
// missed with ?since=), sends actions to POST /api/alerts/{seq}/actions, and re-renders each
// card from the daemon's updates, so every console shows the same state.
"use strict";

const I18N = {
  zh: {
    console: "场控台", complaints5: "投诉 (5分钟)", attacks5: "攻击 (5分钟)", brigades5: "刷屏团伙 (5分钟)",
    allRooms: "全部直播间", allClasses: "全部类别", allTopics: "全部话题", operator: "场控名",
    complaint: "真实投诉", attack: "恶意攻击", neutral: "运营", invite: "邀请连麦", sendScript: "发送话术",
    mute: "禁言/标记", dismiss: "误报忽略", suggested: "建议话术", refund: "方案A 退款", exchange: "方案B 换货",
    explain: "解释说明", private: "引导私聊", open: "待处理", invited: "已邀请连麦", scripted: "已发话术",
    muted: "已禁言", dismissed: "已忽略(误报)", overdue: "已超时", left: "剩余", backlog: "历史消息",
    retracted: "平台已删除", users: "位用户", rulesBroken: "规则更新失败，仍在使用上一版规则：", copied: "话术已复制", connected: "已连接", lang: "EN",
    invite_costream: "建议连麦", scripted_reply: "建议话术回复", private_resolution: "引导私下解决",
    mute_review: "建议禁言审核", none: "—", by: "操作", brigade: "团伙刷屏", split: "拆字", repetition: "重复刷屏",
    flood: "刷屏", ops: "运维", comment: "评论",
    defect: "质量问题", not_as_shown: "与直播不符", authenticity: "真假质疑", size_fit: "尺寸不合",
    logistics: "物流问题", after_sales: "售后无回应", refund_request: "要求退款", insult: "辱骂",
    diversion: "引流", smear: "抹黑", spam: "广告刷屏", threat: "威胁", hate: "仇恨言论",
  },
  en: {
    console: "floor console", complaints5: "complaints (5 min)", attacks5: "attacks (5 min)", brigades5: "brigades (5 min)",
    allRooms: "all rooms", allClasses: "all classes", allTopics: "all topics", operator: "your name",
    complaint: "complaint", attack: "attack", neutral: "ops", invite: "Invite to co-stream", sendScript: "Send script",
    mute: "Mute / flag", dismiss: "Dismiss (false positive)", suggested: "suggested", refund: "Plan A refund",
    exchange: "Plan B exchange", explain: "explanation", private: "private resolution", open: "open",
    invited: "invited on mic", scripted: "script sent", muted: "muted", dismissed: "dismissed (false positive)",
    overdue: "overdue", left: "left", backlog: "backlog", retracted: "deleted by platform", users: "users",
    rulesBroken: "Rules reload failed; still running the last good rules:",
    copied: "script copied", connected: "connected", lang: "中文",
    invite_costream: "invite to co-stream", scripted_reply: "scripted reply", private_resolution: "private resolution",
    mute_review: "mute & review", none: "—", by: "by", brigade: "brigade", split: "split word", repetition: "repetition",
    flood: "flood", ops: "ops", comment: "comment",
    defect: "defect", not_as_shown: "not as shown", authenticity: "authenticity", size_fit: "size / fit",
    logistics: "logistics", after_sales: "after-sales silence", refund_request: "refund request", insult: "insult",
    diversion: "diversion", smear: "smear", spam: "spam", threat: "threat", hate: "hate",
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
const FIVE_MIN = 5 * 60 * 1000;
const MAX_CARDS = 400;

const state = {
  alerts: new Map(), // seq -> alert
  cards: new Map(), // seq -> element
  lastSeq: 0,
  lang: localStorage.getItem("lg-lang") || "zh",
  responseMs: 2 * 3600 * 1000,
  rooms: new Set(),
  seenComplaints: new Set(),
};
const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || key;
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

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

function applyI18n() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang-toggle").textContent = t("lang");
  $("operator").placeholder = t("operator");
  fillFilters();
  for (const a of state.alerts.values()) render(a);
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
  return (!room || a.room === room) && (!cls || a.class === cls) && (!topic || a.topic === topic);
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
  const done = a.status !== "open";
  card.className = `card ${a.class === "neutral" ? "ops" : a.class} kind-${a.kind}${a.kind === "brigade" ? " brigade" : ""}${done ? " done" : ""}${a.retracted ? " retracted" : ""}`;
  card.dataset.status = a.status;
  card.style.display = visible(a) ? "" : "none";
  const name = a.user.name || a.user.handle || a.user.id;
  const time = new Date(a.received_ms).toLocaleTimeString();
  const isComplaint = a.class === "complaint", isAttack = a.class === "attack";
  const choices = isComplaint ? ["suggested", "refund", "exchange", "explain"] : ["suggested", "private"];
  const used = new Set((a.actions || []).map((r) => r.action));
  const log = (a.actions || []).map((r) => `${esc(t(r.action === "send_script" ? "sendScript" : r.action))} · ${esc(t("by"))} ${esc(r.by)} · ${new Date(r.at_ms).toLocaleTimeString()}`).join("<br>");
  card.innerHTML = `
    <div class="meta"><span class="user">${esc(name)}</span><span class="room">${esc(a.room)}</span><time>${esc(time)}</time>
      ${a.kind !== "comment" ? `<span class="kind">${esc(t(a.kind))}${a.count > 1 ? " ×" + a.count : ""}</span>` : (a.count > 1 ? `<span class="kind">×${a.count}</span>` : "")}
      ${a.backlog ? `<span>${esc(t("backlog"))}</span>` : ""}${a.retracted ? `<span>${esc(t("retracted"))}</span>` : ""}
      <span class="timer" data-received="${a.received_ms}"></span></div>
    <p class="text">${highlight(a.text, a.evidence)}</p>
    ${a.kind === "brigade" || (a.users || []).length > 1 ? `<div class="users">${(a.users || []).length} ${esc(t("users"))}: ${(a.users || []).map(esc).join(", ")}</div>` : ""}
    <div class="tags">${a.topic ? `<span class="tag topic">${esc(t(a.topic))}</span>` : ""}
      ${a.class !== "neutral" ? `<span class="tag score">${Number(a.score).toFixed(2)}</span><span class="tag action">${esc(t(a.action))}</span>` : ""}
      <span class="tag status">${esc(t(a.status))}</span></div>
    ${a.class !== "neutral" ? `
    <textarea class="script" rows="3">${esc(keepDraft ?? (a.script || ""))}</textarea>
    <div class="buttons">
      ${isComplaint ? `<button class="invite" data-act="invite" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("invite"))}</button>` : ""}
      <select class="choice">${choices.map((c) => `<option value="${c}">${esc(t(c))}</option>`).join("")}</select>
      <button class="send" data-act="send_script" ${used.has("send_script") || ["muted", "dismissed"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("sendScript"))}</button>
      <button class="mute" data-act="mute" ${["muted", "dismissed", "invited"].includes(a.status) || a.retracted ? "disabled" : ""}>${esc(t("mute"))}</button>
      <button class="dismiss" data-act="dismiss" ${a.status !== "open" || a.retracted ? "disabled" : ""}>${esc(t("dismiss"))}</button>
    </div>` : ""}
    <div class="log">${log}</div>`;
  if (keepDraft !== null) card.querySelector("textarea.script").dataset.edited = "1";
  if (isNew && isComplaint && !a.backlog && !state.seenComplaints.has(a.seq)) {
    state.seenComplaints.add(a.seq);
    chime();
  }
  void isAttack;
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
  }
  btn.disabled = true;
  const res = await fetch(`/api/alerts/${seq}/actions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) { toast(json.error || res.statusText); btn.disabled = false; return; }
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

// Once a second: response timers, the counter strip and the title badge.
function tick() {
  const now = Date.now();
  let open = 0;
  const counts = { complaint: 0, attack: 0, brigade: 0 };
  for (const a of state.alerts.values()) {
    if (now - a.received_ms <= FIVE_MIN) {
      if (a.class === "complaint") counts.complaint++;
      if (a.class === "attack") counts.attack++;
      if (a.kind === "brigade") counts.brigade++;
    }
    if (a.class === "complaint" && a.status === "open" && !a.retracted) open++;
  }
  $("c-complaint").textContent = counts.complaint;
  $("c-attack").textContent = counts.attack;
  $("c-brigade").textContent = counts.brigade;
  document.title = (open ? `(${open}) ` : "") + "liveguard";
  for (const [seq, card] of state.cards) {
    const a = state.alerts.get(seq);
    const el = card.querySelector(".timer");
    if (!a || !el) continue;
    if (a.class !== "complaint" || a.status !== "open" || a.retracted) { el.textContent = ""; el.className = "timer"; continue; }
    const used = now - a.received_ms, left = state.responseMs - used;
    el.className = "timer" + (left <= 0 ? " red" : used >= state.responseMs / 2 ? " amber" : "");
    const abs = Math.abs(left), m = Math.floor(abs / 60000), s = Math.floor((abs % 60000) / 1000);
    const clock = `${m}:${String(s).padStart(2, "0")}`;
    el.textContent = left <= 0 ? `${t("overdue")} ${clock}` : `${t("left")} ${clock}`;
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/alerts?since=${state.lastSeq}`);
  ws.onopen = () => $("conn").classList.add("up");
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "alert" || m.type === "update") {
      if (m.type === "alert") state.lastSeq = Math.max(state.lastSeq, m.seq);
      upsert(m);
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
    $(id).addEventListener("change", () => { for (const a of state.alerts.values()) render(a); });
  }
  applyI18n();
  setInterval(tick, 1000);
  connect();
}

start();
