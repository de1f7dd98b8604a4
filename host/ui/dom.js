// Building the page: a small element helper, the formats numbers and times
// are shown in, and the pieces every page uses (state badges, JSON blocks).

// h("a", {href: "#/", class: "x", onclick: f}, "text", child, [more]) → element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// Make `el` show `children`, changing only what differs: a page refreshed
// every second then keeps its elements (a link being clicked, a text
// selection, an open <details>, a table's scroll position) wherever what
// they show did not change.
export function show(el, ...children) {
  const next = document.createElement(el.tagName);
  append(next, children);
  patchChildren(el, next);
}

function patchChildren(el, next) {
  const old = [...el.childNodes];
  const fresh = [...next.childNodes];
  if (old.length !== fresh.length) {
    el.replaceChildren(...fresh);
    return;
  }
  fresh.forEach((n, i) => patch(old[i], n));
}

function patch(old, fresh) {
  if (old.nodeType === Node.ELEMENT_NODE && fresh.nodeType === Node.ELEMENT_NODE) {
    if (old.outerHTML === fresh.outerHTML) return;
    if (old.tagName === fresh.tagName && sameAttributes(old, fresh) && old.tagName !== "svg") {
      patchChildren(old, fresh);
      return;
    }
  } else if (old.nodeType === fresh.nodeType && old.nodeValue === fresh.nodeValue) {
    return;
  }
  old.replaceWith(fresh);
}

function sameAttributes(a, b) {
  // A <details> the reader opened or closed stays as they left it.
  const skip = a.tagName === "DETAILS" ? "open" : null;
  const names = (e) => [...e.attributes].map((x) => x.name).filter((n) => n !== skip);
  const an = names(a);
  const bn = names(b);
  return an.length === bn.length && an.every((n) => b.getAttribute(n) === a.getAttribute(n));
}

export function fmtNum(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: n < 10 ? 1 : 0 });
}

export function fmtRate(n) {
  if (n === undefined || n === null) return "–";
  return `${fmtNum(n)}/s`;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtTime(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const sameDay = new Date().toDateString() === d.toDateString();
  return sameDay ? d.toLocaleTimeString("en-GB") : d.toLocaleString("en-GB");
}

// The log browser around one event (a few before it for context), with
// that event open and marked.
export function logLink(at, stream) {
  const first = Math.max(stream ? 0 : 1, at - 5);
  return stream ? `#/log?stream=${encodeURIComponent(stream)}&from=${first}&focus=${at}` : `#/log?from=${first}&focus=${at}`;
}

export const short = (hash) => (hash ? hash.slice(0, 12) : "–");

// The words for each state; the colour comes from the stylesheet.
const STATE_TITLES = {
  loading: "compiling and starting",
  replaying: "catching up with the log",
  live: "caught up, following the log",
  failed: "stopped by an error",
  stalled: "has lag that does not move",
  quarantined: "took the process down once; waits for resume, skip, rebuild or removal",
  parked: "kept for a rollback",
};

export function stateBadge(state) {
  const s = state ?? "unknown";
  return h("span", { class: `badge state-${s}`, title: STATE_TITLES[s] ?? s, dataset: { state: s } }, s);
}

// The state a person should see: `stalled` is a flag beside `live` or
// `replaying` in the API, but on the page it is what matters.
export function shownState(status) {
  if (!status) return "unknown";
  return status.stalled && status.state !== "failed" ? "stalled" : status.state;
}

export function jsonBlock(value, attrs) {
  return h("pre", { class: "json", ...attrs }, JSON.stringify(value, null, 2));
}

export function field(label, ...value) {
  return h("div", { class: "field" }, h("span", { class: "label" }, label), h("span", { class: "value" }, ...value));
}

export function errorBox(error) {
  const text = error?.explain ? error.explain() : String(error?.message ?? error);
  return h("div", { class: "error-box", role: "alert" }, text);
}
