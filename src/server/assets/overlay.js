// liveguard overlay (an OBS browser source): shows, one at a time and calmly, only the prompts
// the floor manager pushed for this room: an invite (the user's name and the issue in a few
// words, never the raw comment) or the script to read. Each hides after ?hide= seconds.
"use strict";

const params = new URLSearchParams(location.search);
const room = params.get("room") || "";
// An overlay-role token for OBS, which can send neither a header nor a cookie.
const token = params.get("token") || "";
const hideMs = Math.max(3, Number(params.get("hide")) || 15) * 1000;
// The daemon's vocabulary, inlined in the page by the server (the console's, so both name a
// topic alike): the issue an invite is about, in the prompt's language.
const VOCAB = JSON.parse(document.getElementById("vocab")?.textContent || "{}");
const issueOf = (topic, lang) => {
  const r = (VOCAB.topics || []).find((x) => x.name === topic);
  return r ? r[lang] : "";
};
const queue = [];
let showing = false;
const box = document.getElementById("prompt");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function show(p) {
  showing = true;
  const lang = p.lang === "zh" ? "zh" : "en";
  const issue = p.topic && issueOf(p.topic, lang);
  box.className = p.kind;
  box.innerHTML = p.kind === "invite"
    ? `<div class="line"><span class="badge">${lang === "zh" ? "连麦" : "ON MIC"}</span>${esc(p.text)}</div>${issue ? `<div class="issue">${lang === "zh" ? "问题：" : "About: "}${esc(issue)}</div>` : ""}`
    : `<div class="line">${esc(p.text)}</div>`;
  box.dataset.seq = p.seq;
  // Force a layout so the fade-in transition runs; no requestAnimationFrame, which a hidden
  // or background page never fires.
  void box.offsetWidth;
  box.classList.add("on");
  setTimeout(() => {
    box.classList.remove("on");
    setTimeout(next, 700);
  }, hideMs);
  updateQueue();
}

function next() {
  showing = false;
  box.innerHTML = "";
  if (queue.length) show(queue.shift()); else updateQueue();
}

function updateQueue() {
  document.getElementById("queue").textContent = queue.length ? `+${queue.length}` : "";
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/overlay?room=${encodeURIComponent(room)}${token ? `&token=${encodeURIComponent(token)}` : ""}`);
  ws.onmessage = (ev) => {
    const p = JSON.parse(ev.data);
    if (showing) { queue.push(p); updateQueue(); } else show(p);
  };
  ws.onclose = () => setTimeout(connect, 1000);
}

connect();
