// The worklist (Tickets tab): every open or responding ticket from the store (GET
// /api/tickets: nothing that needs an answer leaves it, whatever the feed dropped), nearest
// deadline first, a page at a time; its counts drive the header's badges and the title. And
// the reminders the daemon sends as a ticket nears or passes a deadline.

import { state } from "./state.js";
import { $, h, timeOf } from "./util.js";
import { t, tf } from "./i18n.js";
import { label } from "./vocab.js";
import { newCard, fillCard, flashCard } from "./cards.js";
import { held, chime } from "./feed.js";
import { tick } from "./live.js";
import { showTab } from "./page.js";

export const WORK_PAGE = 50;
const MAX_REMINDERS = 3; // toasts on screen at once; older ones make room
const REMINDER_MS = 20000; // how long a reminder toast stays

let workTimer = 0, workReq = 0;
export function loadWorkSoon() {
  if (!workTimer) workTimer = setTimeout(() => { workTimer = 0; loadWork(); }, 250);
}

// Refreshes the counts and, when the tab is open, the page. A refresh waits while the list is
// held; one the floor manager asked for (`force`: a page, a filter) does not. `focus`: a seq to
// show flashed.
export async function loadWork(opts) {
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

export function renderWork(focus) {
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

export function reminderText(m) {
  const key = m.stage === "overdue" ? "remindOverdue" : "remindNearing";
  const topic = m.topic ? label("topics", m.topic) : label("classes", "complaint");
  return tf(key, { user: m.user, topic, due: label("dues", m.due), time: timeOf(m.due_ms) });
}

// A calm reminder toast: amber for "nearing", red for "overdue"; it names the user, the topic
// and the promise; a click shows the card.
export function remind(m) {
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
