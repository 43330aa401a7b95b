// An alert's card, the same in the feed and the worklist: who, where, when, the comment with
// its evidence highlighted, the ticket and its countdown, the script, and the buttons the
// daemon's rules allow in the alert's state (vocab.js); a click sends the action.

import { state, noteServerTime, serverNow } from "./state.js";
import { $, h, esc, clock, timeOf, timeSecOf } from "./util.js";
import { t, tf, dur } from "./i18n.js";
import { label, ticketActive, fits, allowed } from "./vocab.js";
import { SCRIPTS, fill } from "./scripts.js";
import { upsert } from "./feed.js";

const COPY_NOTE_MS = 8000;
const SHOWN_FOLLOWUPS = 3;
const RESOLVE_CHOICES = ["refund", "exchange", "other"];

// The alert a card shows, from the feed or the worklist.
export const alertOf = (seq) => state.alerts.get(seq) || state.work.alerts.get(seq);

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

// The promise still running on a ticket: the first response until there was one, then the
// resolution. Null when the ticket is closed.
export function running(tk) {
  if (!ticketActive(tk)) return null;
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

function ticketBox(a) {
  const tk = a.ticket;
  const box = h("div", { class: "ticket", "data-ticket": tk.status });
  const line = h("div", { class: "ticket-line" },
    h("span", { class: `tag tstatus ts-${tk.status}` }, label("ticket_statuses", tk.status)),
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
  if (allowed(a, "resolve")) {
    const row = h("div", { class: "resolve-row" }, h("span", { class: "muted" }, t("resolveLabel")));
    for (const c of RESOLVE_CHOICES) {
      row.append(h("button", { class: `resolve r-${c}`, type: "button", "data-act": "resolve", "data-choice": c }, t(`r_${c}`)));
    }
    box.append(row);
  }
  return box;
}

export function newCard(seq) {
  const card = document.createElement("article");
  card.dataset.seq = seq;
  card.tabIndex = -1; // j / k move the keyboard focus here
  card.addEventListener("click", onCardClick);
  card.addEventListener("change", onCardChange);
  return card;
}

// An alert's card contents: who, where, when, the comment with its evidence, the ticket (one
// status chip: the ticket's, when there is one), the script and the buttons that fit.
export function fillCard(card, a) {
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
  const act = (x) => label("console_actions", x);
  const actName = (r) => r.action === "resolve" ? `${act("resolve")}: ${t(`r_${r.choice}`)}` : act(r.action);
  const log = (a.actions || []).map((r) => `${esc(actName(r))} · ${esc(t("by"))} ${esc(r.by)} · ${timeSecOf(r.at_ms)}`).join("<br>");
  // A button for each action that suits the alert, enabled when its state allows it.
  const button = (cls, x) => fits(a, x)
    ? `<button class="${cls}" data-act="${x}" ${allowed(a, x) ? "" : "disabled"}>${esc(act(x))}</button>` : "";
  // Brigades list people by name (ids for alerts stored before names were kept): the first
  // 20, with users_total counting them all.
  const users = a.users || [];
  const names = (a.user_names || []).length === users.length ? a.user_names : users;
  const note = state.copyNotes.get(a.seq);
  const noteOn = note && note.until > Date.now();
  card.innerHTML = `
    <div class="meta"><span class="user">${esc(name)}</span><span class="room">${esc(a.room)}</span><time>${esc(time)}</time>
      ${a.kind !== "comment" ? `<span class="kind">${esc(label("alert_kinds", a.kind))}${a.count > 1 ? " ×" + a.count : ""}</span>` : (a.count > 1 ? `<span class="kind">×${a.count}</span>` : "")}
      ${a.backlog ? `<span>${esc(t("backlog"))}</span>` : ""}${a.retracted ? `<span>${esc(t("retracted"))}</span>` : ""}
      ${a.ticket ? "" : `<span class="timer"></span>`}</div>
    <p class="text">${highlight(a.text, a.evidence)}</p>
    ${a.kind === "brigade" || users.length > 1 ? `<div class="users">${Math.max(a.users_total || 0, users.length)} ${esc(t("users"))}: ${names.map(esc).join(", ")}${(a.users_total || 0) > users.length ? ", …" : ""}</div>` : ""}
    <div class="tags">${a.topic ? `<span class="tag topic" data-topic="${esc(a.topic)}">${esc(label("topics", a.topic))}</span>` : ""}
      ${a.class !== "neutral" ? `<span class="tag score">${Number(a.score).toFixed(2)}</span><span class="tag action">${esc(label("actions", a.action))}</span>` : ""}
      ${a.ticket ? "" : `<span class="tag status">${esc(label("alert_statuses", a.status))}</span>`}</div>
    <div class="ticket-slot"></div>
    ${a.class !== "neutral" ? `
    <textarea class="script" rows="3">${esc(keepDraft ?? (a.script || ""))}</textarea>
    <div class="buttons">
      ${button("invite", "invite")}
      <select class="choice">${choices.map((c) => `<option value="${c}">${esc(t(c))}</option>`).join("")}</select>
      ${button("send", "send_script")}
      ${button("mute", "mute")}
      ${button("dismiss", "dismiss")}
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
export function redraw(a) {
  if (state.cards.has(a.seq)) fillCard(state.cards.get(a.seq), a);
  const w = state.work.cards.get(a.seq);
  if (w) fillCard(w, a);
}

let toastTimer = 0;
export function toast(msg) {
  const el = $("toast");
  el.textContent = msg;
  el.classList.add("on");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("on"), 3000);
}

export function flashCard(card) {
  card.style.display = "";
  card.scrollIntoView({ behavior: "smooth", block: "center" });
  card.classList.add("flash");
  setTimeout(() => card.classList.remove("flash"), 1600);
}

// The countdown on one card: the ticket's running deadline (amber within the last quarter, red
// when overdue); without a ticket, the console's promised response time from arrival.
export function updateTimer(a, card, now) {
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
