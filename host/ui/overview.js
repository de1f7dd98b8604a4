// The overview: every plugin as a card with its state, position, lag and
// rate, a chart of the last minutes, replay progress, the candidate beside
// it, a failed candidate's error and the generation kept for rollback; the
// log's head and append rate on top; a form to install a new plugin.

import { seg } from "./api.js";
import { h, show, fmtNum, fmtRate, fmtBytes, fmtDuration, fmtTime, short, stateBadge, shownState, errorBox, logLink } from "./dom.js";
import { chart } from "./chart.js";
import { store } from "./poller.js";
import { act, access } from "./dialogs.js";

export const firstLine = (text) => {
  const line = String(text ?? "").split("\n")[0];
  return line.length > 240 ? `${line.slice(0, 240)}…` : line;
};

export function progress(report, label) {
  const pct = Math.max(0, Math.min(100, report.replay_progress ?? 0));
  return h(
    "div",
    { class: "progress" },
    h("progress", { max: 100, value: pct.toFixed(1) }),
    h(
      "span",
      { class: "progress-text" },
      `${label} ${pct.toFixed(1)}%`,
      report.replay_eta_seconds !== null && report.replay_eta_seconds !== undefined
        ? ` · ETA ${fmtDuration(report.replay_eta_seconds)}`
        : "",
      ` · ${fmtNum(report.position)} / ${fmtNum(report.head)}`,
    ),
  );
}

export function kindLine(p) {
  const d = p.description;
  if (!d) return h("div", { class: "kind muted" }, p.loading ? `loading ${short(p.loading)}` : "no description yet");
  return h(
    "div",
    { class: "kind" },
    d.kind,
    d.language ? ` · ${d.language}` : "",
    d.version ? ` · v${d.version}` : "",
    d.name && d.name !== p.name ? ` · ${d.name}` : "",
  );
}

export function errorLink(error) {
  if (error?.position === undefined || error?.position === null) return "";
  return h("a", { href: logLink(error.position), class: "event-link" }, `event ${fmtNum(error.position)}`);
}

function card(p) {
  const state = shownState(p);
  const history = store.history.get(p.name) ?? [];
  const link = `#/plugins/${seg(p.name)}`;
  return h(
    "article",
    { class: `card plugin state-border-${state}`, dataset: { plugin: p.name } },
    h("header", {}, h("h3", {}, h("a", { href: link }, p.name)), stateBadge(state)),
    kindLine(p),
    h(
      "div",
      { class: "stats" },
      h("div", { class: "stat" }, h("span", { class: "label" }, "position"), h("span", { class: "position" }, fmtNum(p.position))),
      h("div", { class: "stat" }, h("span", { class: "label" }, "lag"), h("span", { class: "lag" }, fmtNum(p.lag))),
      h("div", { class: "stat" }, h("span", { class: "label" }, "events/s"), h("span", { class: "rate" }, fmtNum(p.events_per_second))),
      h("div", { class: "stat" }, h("span", { class: "label" }, "storage"), h("span", {}, fmtBytes(p.storage_bytes))),
    ),
    p.generation ? h("div", { class: "muted small" }, `generation ${short(p.generation)}`, p.dead_letters ? ` · ${fmtNum(p.dead_letters)} dead letters` : "") : "",
    p.state === "replaying" || (p.state === "loading" && p.position) ? progress(p, "replay") : "",
    p.waiting_for ? h("div", { class: "warn small" }, `waiting for ${p.waiting_for}`) : "",
    p.last_error && (p.state === "failed" || p.state === "quarantined")
      ? h("div", { class: "error small last-error" }, firstLine(p.last_error.message), " ", errorLink(p.last_error))
      : "",
    p.candidate
      ? h(
          "div",
          { class: "sub candidate" },
          h("div", {}, h("strong", {}, "candidate "), short(p.candidate.generation), ` (${p.candidate.purpose ?? "new content"}) `, stateBadge(shownState(p.candidate)), p.candidate.ready ? h("span", { class: "badge ready" }, "ready to promote") : ""),
          p.candidate.ready ? "" : progress(p.candidate, "replay"),
          p.candidate.last_error ? h("div", { class: "error small" }, firstLine(p.candidate.last_error.message)) : "",
        )
      : "",
    p.failed_candidate
      ? h(
          "div",
          { class: "sub failed-candidate" },
          h("strong", {}, "failed candidate "),
          short(p.failed_candidate.generation),
          h("div", { class: "error small" }, firstLine(p.failed_candidate.error?.message), " ", errorLink(p.failed_candidate.error)),
        )
      : "",
    p.previous
      ? h("div", { class: "sub previous muted small" }, `previous ${short(p.previous.generation)} kept for rollback until ${fmtTime(p.previous.expires_at_ms)}`)
      : "",
    chart(
      history,
      [
        { key: "lag", label: "lag", cls: "s-lag" },
        { key: "eps", label: "events/s", cls: "s-rate" },
      ],
      { label: `lag and events per second of ${p.name}` },
    ),
  );
}

function summary() {
  const counts = {};
  for (const p of store.plugins) {
    const s = shownState(p);
    counts[s] = (counts[s] ?? 0) + 1;
  }
  const health = store.health;
  return h(
    "section",
    { class: "summary" },
    h(
      "div",
      { class: "card log-card" },
      h("header", {}, h("h3", {}, h("a", { href: "#/log" }, "Event log")), health ? h("span", { class: `badge health-${health.status}` }, health.status) : ""),
      h(
        "div",
        { class: "stats" },
        h("div", { class: "stat" }, h("span", { class: "label" }, "head"), h("span", { id: "overview-head" }, fmtNum(health?.head))),
        h("div", { class: "stat" }, h("span", { class: "label" }, "appended"), h("span", {}, fmtRate(store.appendRate))),
        h("div", { class: "stat" }, h("span", { class: "label" }, "plugins"), h("span", {}, fmtNum(store.plugins.length))),
      ),
      health?.storage?.state && health.storage.state !== "ok" ? h("div", { class: "error small" }, health.storage.message ?? `storage ${health.storage.state}`) : "",
      h("div", { class: "states" }, Object.entries(counts).map(([s, n]) => h("span", {}, stateBadge(s), ` ${n}`))),
      chart(store.logHistory, [{ key: "rate", label: "appended/s", cls: "s-rate" }], { label: "events appended per second" }),
    ),
  );
}

function installForm() {
  const name = h("input", { id: "install-name", placeholder: "name (a-z 0-9 - _)", pattern: "[a-z0-9_\\-]{1,64}", required: true });
  const file = h("input", { id: "install-file", type: "file", accept: ".wasm,application/wasm", required: true });
  const form = h(
    "form",
    {
      class: "install",
      onsubmit: async (event) => {
        event.preventDefault();
        const f = file.files[0];
        if (!f || !name.value) return;
        const result = await act({
          title: `Install plugin ${name.value}`,
          body: [`Upload ${f.name} (${fmtBytes(f.size)}) as plugin “${name.value}”? If the plugin exists, this replaces it: the new content replays beside the old one and takes over once caught up.`],
          okLabel: "Install",
          method: "PUT",
          path: `/plugins/${seg(name.value)}`,
          upload: f,
          done: `Plugin ${name.value} installed.`,
        });
        if (result) form.reset();
      },
    },
    h("label", {}, "Plugin ", name),
    h("label", {}, "Component ", file),
    h("button", { type: "submit", title: access.adminDenied ? "needs a token with the admin scope" : null }, "Install"),
  );
  return h("details", { class: "card install-box" }, h("summary", {}, "Install a plugin"), form);
}

export function mount(main) {
  const top = h("div", { id: "overview-top" });
  const list = h("section", { class: "grid", id: "plugins" });
  main.append(h("h1", {}, "Overview"), top, list, installForm());
  function update() {
    show(top, store.error ? errorBox(store.error) : "", summary());
    if (!store.plugins.length && !store.error) {
      show(list, h("p", { class: "muted" }, store.updatedAt ? "No plugins yet: drop NAME.wasm into the plugin directory, or install one below." : "Loading…"));
    } else {
      show(list, ...store.plugins.map(card));
    }
  }
  update();
  return { update };
}
