// The live feed: alerts from the socket (new ones, and updates merged into the alert held),
// drawn newest on top, filtered by room, class and topic. While a pointer or a finger is on a
// list, or a script is being edited, it holds still: new alerts wait behind an "N new" pill.

import { state } from "./state.js";
import { $, esc } from "./util.js";
import { t, tf } from "./i18n.js";
import { label, names, topicsOf } from "./vocab.js";
import { newCard, fillCard } from "./cards.js";
import { loadWorkSoon, renderWork } from "./tickets.js";
import { refreshSettings, tickSoon } from "./live.js";

const MAX_CARDS = 400; // the live feed; the worklist (GET /api/tickets) keeps everything active
const TOUCH_HOLD_MS = 4000; // a finger lifted: the feed stays still this long for the next tap

export function fillFilters() {
  const keep = (sel) => sel.value;
  const room = keep($("f-room")), cls = keep($("f-class")), topic = keep($("f-topic"));
  $("f-room").innerHTML = `<option value="">${esc(t("allRooms"))}</option>` +
    [...state.rooms].sort().map((r) => `<option value="${esc(r)}">${esc(r)}</option>`).join("");
  $("f-class").innerHTML = `<option value="">${esc(t("allClasses"))}</option>` +
    names("classes").map((c) => `<option value="${c}">${esc(label("classes", c))}</option>`).join("");
  $("f-topic").innerHTML = `<option value="">${esc(t("allTopics"))}</option>` +
    [...topicsOf("complaint"), ...topicsOf("attack")].map((x) => `<option value="${x}">${esc(label("topics", x))}</option>`).join("");
  $("f-room").value = room; $("f-class").value = cls; $("f-topic").value = topic;
}

function visible(a) {
  const room = $("f-room").value, cls = $("f-class").value, topic = $("f-topic").value;
  return (!room || a.room === room || a.room === "*") && (!cls || a.class === cls) && (!topic || a.topic === topic);
}

// The feed's card for `a`: a new one goes in newest on top, unless the feed is held (it waits
// behind the pill, see `held`); a known one is redrawn in place.
export function render(a) {
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

// Redraws every card of the feed (a filter or the language changed).
export function renderAll() {
  for (const a of state.alerts.values()) if (state.cards.has(a.seq)) render(a);
}

// `update` applied to `held`: each top-level field present replaces the held one, a null
// removes it. An update carries what changed (older daemons send the whole alert: the same).
export function merge(held, update) {
  const out = { ...held };
  for (const [k, v] of Object.entries(update)) {
    if (k === "type") continue;
    if (v === null) delete out[k]; else out[k] = v;
  }
  return out;
}

// `m` is older than `held` (the answer to an action overtaken by the socket, or the other way
// round). Only alerts with a `version` can tell.
const older = (m, held) => Number.isFinite(m.version) && Number.isFinite(held?.version) && m.version <= held.version;

// An alert or a new version of one: from the socket (`live`: not replayed history), the
// answer to an action, or a fetch.
export function upsert(a, live) {
  const mine = state.alerts.get(a.seq) || state.work.alerts.get(a.seq);
  if (older(a, mine)) return;
  if (a.type !== undefined) a = merge({}, a);
  const known = Boolean(mine);
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

// Updates that came for an alert while it is being fetched, by seq.
const fetching = new Map();

// An `update` message: merged into the alert held. One for an alert this page does not hold
// is fetched when the feed would show it, else ignored (the feed dropped it as too old).
export function onUpdate(m, live) {
  if (fetching.has(m.seq)) { fetching.get(m.seq).push(m); return; }
  const mine = state.alerts.get(m.seq) || state.work.alerts.get(m.seq);
  if (mine) { if (!older(m, mine)) upsert(merge(mine, m), live); return; }
  if (inView(m.seq)) fetchAlert(m);
}

// Whether the feed would show alert `seq`: it is not full yet, or `seq` is newer than its oldest.
function inView(seq) {
  if (state.cards.size + state.pending.size < MAX_CARDS) return true;
  return seq > Math.min(...state.cards.keys(), ...state.pending);
}

async function fetchAlert(m) {
  fetching.set(m.seq, [m]);
  let a = null;
  try {
    const res = await fetch(`/api/alerts/${m.seq}`);
    if (res.ok) a = await res.json();
  } catch (_) { /* the next update tries again */ }
  const later = fetching.get(m.seq) || [];
  fetching.delete(m.seq);
  if (!a) return;
  // The store commits before the socket sends, so the fetched alert may already hold some of
  // these; merged in order, the newest still wins.
  for (const u of later) if (!older(u, a)) a = merge(a, u);
  upsert(a, false);
}

let audio = null;
export function chime() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.06;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.15);
  } catch (_) { /* audio needs a user gesture in some browsers */ }
}

// ---------------------------------------------------------------------------------------------
// A steady feed: while a pointer is on a list (a finger: until a few seconds after it lifts) or
// one of its scripts is being edited, the list does not move. New alerts wait behind a pill
// that counts them; they come in when the pointer leaves, or the pill is clicked.

const touchTimers = {};
export function held(list) {
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

export function watchHold(el, list) {
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

export function flushPending() {
  if (!state.pending.size) return;
  const seqs = [...state.pending].sort((x, y) => x - y);
  state.pending.clear();
  state.pendingDropped = 0;
  for (const seq of seqs) { const a = state.alerts.get(seq); if (a) render(a); }
  updatePill();
  tickSoon();
}

export function updatePill() {
  const n = state.pending.size + state.pendingDropped, pill = $("pill");
  pill.hidden = n === 0 || state.tab !== "feed";
  pill.textContent = n ? tf("pillNew", { n }) : "";
}
