// What the page knows about the server, refreshed by polling: every
// plugin's status (`GET /plugins`), the log head (`GET /healthz`) and the
// append counter (`GET /metrics`). Each poll adds a sample to a history kept
// in the page, which the charts draw and the status history lists; nothing
// of it is stored on the server.

import { get, request, parseMetrics, ApiError } from "./api.js";
import { short, shownState } from "./dom.js";

// How often to poll, in ms: `?refresh=MS` in the page's URL, else 1 s.
const requested = Number(new URLSearchParams(location.search).get("refresh"));
export const REFRESH_MS = requested >= 250 ? requested : 1000;
// How much history to keep.
const KEEP_MS = 15 * 60_000;
const KEEP_TRANSITIONS = 200;

export const store = {
  plugins: [],
  health: null,
  // Events appended per second, from the change of the append counter.
  appendRate: null,
  // [{t, head, rate}]
  logHistory: [],
  // name → [{t, lag, eps, position, candidateProgress}]
  history: new Map(),
  // name → [{t, text, state}] newest last
  transitions: new Map(),
  // The last poll's failure, if it failed.
  error: null,
  updatedAt: 0,
};

const listeners = new Set();
export function subscribe(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

let lastAppended = null;
const signatures = new Map();

function keep(list, now) {
  while (list.length && list[0].t < now - KEEP_MS) list.shift();
}

function note(name, now, text, state) {
  const list = store.transitions.get(name) ?? [];
  list.push({ t: now, text, state });
  if (list.length > KEEP_TRANSITIONS) list.shift();
  store.transitions.set(name, list);
}

// What changed in a plugin since the last poll, in words.
function noteTransitions(p, now) {
  const sig = {
    state: shownState(p),
    generation: p.generation,
    candidate: p.candidate ? `${p.candidate.generation}:${shownState(p.candidate)}:${p.candidate.ready}` : null,
    failed: p.failed_candidate?.generation ?? null,
    previous: p.previous?.generation ?? null,
  };
  const before = signatures.get(p.name);
  signatures.set(p.name, sig);
  if (!before) {
    note(p.name, now, `first seen: ${sig.state}, generation ${short(p.generation)}`, sig.state);
    return;
  }
  if (before.generation !== sig.generation) {
    note(p.name, now, `generation ${short(sig.generation)} took over from ${short(before.generation)}`, sig.state);
  }
  if (before.state !== sig.state) {
    note(p.name, now, `${before.state} → ${sig.state}`, sig.state);
  }
  if (before.candidate !== sig.candidate) {
    const c = p.candidate;
    if (c) {
      note(
        p.name,
        now,
        `candidate ${short(c.generation)} (${c.purpose ?? "new content"}): ${shownState(c)}${c.ready ? ", ready" : ""}`,
        shownState(c),
      );
    } else if (before.generation === sig.generation) {
      note(p.name, now, "candidate gone", sig.state);
    }
  }
  if (sig.failed && before.failed !== sig.failed) {
    note(p.name, now, `candidate ${short(sig.failed)} failed: ${p.failed_candidate.error?.message ?? ""}`, "failed");
  }
  if (before.previous !== sig.previous) {
    note(
      p.name,
      now,
      sig.previous ? `generation ${short(sig.previous)} kept for a rollback` : "no previous generation kept",
      sig.state,
    );
  }
}

async function pollOnce() {
  const now = Date.now();
  const [plugins, health, metrics] = await Promise.allSettled([
    get("/plugins"),
    get("/healthz"),
    request("GET", "/metrics", { text: true, silent401: true }),
  ]);
  if (health.status === "fulfilled") {
    store.health = health.value;
  }
  if (metrics.status === "fulfilled") {
    const appended = parseMetrics(metrics.value.body).prism_events_appended_total;
    if (lastAppended && appended !== undefined) {
      const dt = (now - lastAppended.t) / 1000;
      store.appendRate = dt > 0 ? Math.max(0, appended - lastAppended.n) / dt : null;
    }
    if (appended !== undefined) lastAppended = { t: now, n: appended };
  }
  if (store.health) {
    store.logHistory.push({ t: now, head: store.health.head, rate: store.appendRate ?? 0 });
    keep(store.logHistory, now);
  }
  if (plugins.status === "fulfilled") {
    store.plugins = plugins.value.plugins;
    store.error = null;
    store.updatedAt = now;
    for (const p of store.plugins) {
      const list = store.history.get(p.name) ?? [];
      list.push({
        t: now,
        lag: p.lag ?? 0,
        eps: p.events_per_second ?? 0,
        position: p.position ?? 0,
        candidateLag: p.candidate?.lag ?? null,
        candidateEps: p.candidate?.events_per_second ?? null,
      });
      keep(list, now);
      store.history.set(p.name, list);
      noteTransitions(p, now);
    }
  } else {
    const e = plugins.reason;
    store.error = e instanceof ApiError ? e : new ApiError(0, "unreachable", String(e));
  }
}

let timer = null;
let running = false;

// Poll now (after an action, or a new token), then go on at the usual rate.
export async function refresh() {
  if (running) return;
  running = true;
  clearTimeout(timer);
  try {
    await pollOnce();
  } finally {
    running = false;
    listeners.forEach((f) => f());
    timer = setTimeout(tick, REFRESH_MS);
  }
}

function tick() {
  // A hidden tab does not poll; it catches up the moment it is shown.
  if (document.hidden) {
    timer = setTimeout(tick, REFRESH_MS);
    return;
  }
  refresh();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});

export function pluginByName(name) {
  return store.plugins.find((p) => p.name === name);
}
