// The console's links to the daemon: the alert socket (/ws/alerts, replaying what it missed
// with ?since=), the settings it re-reads every few seconds (GET /api/console: the promised
// response time, the rules-reload banner, the daemon's health, the vocabulary), the red banner
// while the daemon is blind, and the once-a-second tick of counters and countdowns.

import { state, noteServerTime, serverNow } from "./state.js";
import { $, h, timeSecOf } from "./util.js";
import { t, tf, dur } from "./i18n.js";
import { setVocab } from "./vocab.js";
import { updateTimer } from "./cards.js";
import { upsert, onUpdate } from "./feed.js";
import { loadWorkSoon, remind } from "./tickets.js";
import { applyI18n } from "./page.js";

const FIVE_MIN = 5 * 60 * 1000;

// Once a second: countdowns, the counter strip, the overdue badge and the title badge. The
// open and overdue counts are the store's (GET /api/tickets), not what this page received.
export function tick() {
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
export function tickSoon() {
  if (!tickTimer) tickTimer = setTimeout(() => { tickTimer = 0; tick(); }, 50);
}

export function connect() {
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
      if (m.type === "alert") upsert(m, live); else onUpdate(m, live);
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
export async function refreshSettings() {
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
    // The first vocabulary, or a new one (the daemon was upgraded): every label redrawn.
    if (setVocab(cfg.vocab)) applyI18n();
    const banner = $("banner");
    banner.hidden = !cfg.rules_error;
    banner.textContent = cfg.rules_error ? `${t("rulesBroken")}\n${cfg.rules_error}` : "";
    state.health = { reasons: (cfg.health && cfg.health.reasons) || [], at: Date.now() };
    renderBlind();
  } catch (_) { /* keep the last settings */ }
}

// The red banner while the daemon is blind: which source, since when, for how long.
export function renderBlind() {
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
