// liveguard console: the floor manager's live alert feed (feed.js, cards.js), the worklist of
// tickets and the reminders (tickets.js), the Insights charts (insights.js), the tabs, keys and
// language (page.js), over the daemon's socket and settings (live.js). Every label of the
// daemon's types comes from its vocabulary (vocab.js); the page's own words are in i18n.js.
// ES modules, no build step: each file is served as it is from /assets/.

import { state } from "./state.js";
import { $ } from "./util.js";
import { renderAll, flushPending, watchHold } from "./feed.js";
import { loadWork, WORK_PAGE } from "./tickets.js";
import { loadStats } from "./insights.js";
import { connect, refreshSettings, tick } from "./live.js";
import { applyI18n, showTab, onKey, watchDock } from "./page.js";

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
      renderAll();
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
