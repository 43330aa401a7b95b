// DOM builders and clock formatting shared by the console's modules; nothing here knows the
// console's language.

export const HOUR = 3600 * 1000;

export const $ = (id) => document.getElementById(id);
export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// DOM builders: attributes are set one by one and children appended as text nodes, so user
// text never goes through innerHTML.
export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}
const SVGNS = "http://www.w3.org/2000/svg";
export function sv(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// h:mm:ss (or m:ss under an hour) for countdowns.
export function clock(ms) {
  const abs = Math.abs(ms), hh = Math.floor(abs / HOUR), m = Math.floor((abs % HOUR) / 60000), s = Math.floor((abs % 60000) / 1000);
  return hh ? `${hh}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

// Local times on a 24-hour clock in both languages (toLocaleTimeString gave "03:04 PM").
const pad2 = (n) => String(n).padStart(2, "0");
export const timeOf = (ms) => { const d = new Date(ms); return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; };
export const timeSecOf = (ms) => `${timeOf(ms)}:${pad2(new Date(ms).getSeconds())}`;
