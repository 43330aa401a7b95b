// What the console page holds, shared by its modules, and the daemon's clock as seen from here.

export const state = {
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

export function noteServerTime(ms) {
  if (!Number.isFinite(ms) || ms <= 0) return;
  const s = ms - Date.now();
  state.skew = state.skew === null ? s : Math.max(state.skew, s);
}
export const serverNow = () => Date.now() + (state.skew ?? 0);
