// The daemon's vocabulary (`vocab` in GET /api/console, built from the Rust types): the labels
// of topics, classes, kinds, statuses and actions in zh and en, and the rule of each console
// action (which alert states allow it). The page writes none of these by hand.

import { state } from "./state.js";

let vocab = null;
let seen = "";
const rows = new Map(); // "group/name" -> row

// Takes the vocabulary from a settings answer; true when it changed (the page redraws).
export function setVocab(v) {
  if (!v) return false;
  const json = JSON.stringify(v);
  if (json === seen) return false;
  seen = json;
  vocab = v;
  rows.clear();
  for (const [group, list] of Object.entries(v)) for (const r of list) rows.set(`${group}/${r.name}`, r);
  return true;
}

// The label of `name` in `group` (`topics`, `classes`, `alert_kinds`, `alert_statuses`,
// `ticket_statuses`, `actions`, `dues`, `stages`, `console_actions`) in the page's language;
// the name itself when the daemon sent none.
export function label(group, name) {
  const r = rows.get(`${group}/${name}`);
  return r ? r[state.lang] ?? r.en : String(name ?? "");
}

// The names of `group`, in the daemon's order, that `keep` accepts.
export const names = (group, keep) => ((vocab && vocab[group]) || []).filter(keep || (() => true)).map((r) => r.name);

// The topics of a class (`complaint`, `attack`).
export const topicsOf = (cls) => names("topics", (r) => r.class === cls);

// A ticket whose promises still run (open or responding).
export const ticketActive = (tk) => Boolean(tk) && rows.get(`ticket_statuses/${tk.status}`)?.active === true;

// Whether console action `act` suits alert `a` at all (its class; a ticket to resolve): its
// button is shown.
export function fits(a, act) {
  const r = rows.get(`console_actions/${act}`);
  return Boolean(r) && r.classes.includes(a.class) && (!r.ticket || ticketActive(a.ticket));
}

// Whether the daemon would accept `act` on `a` as it stands: its button is enabled. The same
// reading of the rule as the Rust side's `ConsoleAction::check` (its unit test reads it so).
export function allowed(a, act) {
  const r = rows.get(`console_actions/${act}`);
  return Boolean(r) && fits(a, act)
    && (!a.retracted || r.after_retraction)
    && !(r.once && (a.actions || []).some((x) => x.action === act))
    && r.from.includes(a.status);
}
