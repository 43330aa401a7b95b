// The page around the lists: its tabs (Alerts, Tickets, Insights), its language, the keys
// (j / k the next / previous open complaint in the list shown, n the most urgent ticket) and
// the dock that must never cover a button.

import { state } from "./state.js";
import { $ } from "./util.js";
import { t } from "./i18n.js";
import { alertOf } from "./cards.js";
import { fillFilters, renderAll, flushPending, updatePill, held } from "./feed.js";
import { loadWork, renderWork, reminderText } from "./tickets.js";
import { loadStats, renderStats } from "./insights.js";
import { tick, renderBlind } from "./live.js";

// Every word on the page again, in `state.lang` (the toggle, or a new vocabulary).
export function applyI18n() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang-toggle").textContent = t("lang");
  $("operator").placeholder = t("operator");
  fillFilters();
  renderAll();
  renderWork();
  for (const el of $("reminders").children) el.querySelector(".msg").textContent = reminderText(el.reminder);
  renderBlind();
  updatePill();
  renderStats();
  tick();
}

export function showTab(tab) {
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

export function onKey(ev) {
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
export function watchDock() {
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
