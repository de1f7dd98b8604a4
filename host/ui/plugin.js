// One plugin: its status and chart, generations, the last error with the
// event it failed on, settings, what it declares, the status history the
// page has seen, dead letters, its log, and every action on it (replace,
// rebuild, remove, diff, promote, rollback, discard, resume, skip), each
// confirmed before it is sent.

import { get, seg } from "./api.js";
import { h, show, fmtNum, fmtBytes, fmtDuration, fmtTime, short, stateBadge, shownState, jsonBlock, field, errorBox, logLink } from "./dom.js";
import { chart } from "./chart.js";
import { store, pluginByName, REFRESH_MS } from "./poller.js";
import { act, access, banner } from "./dialogs.js";
import { progress, kindLine, errorLink, firstLine } from "./overview.js";

// The events errors point at, by position: fetched once each.
const events = new Map();

function eventAt(position, rerender) {
  if (!events.has(position)) {
    events.set(position, { loading: true });
    get("/events", { from_position: position, limit: 1 })
      .then((page) => {
        const e = page.events[0];
        events.set(position, e && e.position === position ? { event: e } : { missing: true });
      })
      .catch((error) => events.set(position, { error }))
      .finally(rerender);
  }
  return events.get(position);
}

function eventBox(position, rerender) {
  const found = eventAt(position, rerender);
  if (found.loading) return h("p", { class: "muted" }, `Reading event ${position}…`);
  if (found.error) return errorBox(found.error);
  if (found.missing) return h("p", { class: "muted" }, `The log has no event at position ${position}.`);
  const e = found.event;
  return h(
    "div",
    { class: "event-box" },
    h(
      "div",
      { class: "fields" },
      field("position", h("a", { href: logLink(e.position), class: "event-link" }, fmtNum(e.position))),
      field("stream", h("a", { href: logLink(e.stream_version, e.stream) }, e.stream)),
      field("version", fmtNum(e.stream_version)),
      field("type", h("span", { class: "event-type" }, e.type)),
      field("recorded", e.recorded_at),
    ),
    h("div", { class: "label" }, "data"),
    jsonBlock(e.data, { class: "json event-data" }),
    Object.keys(e.metadata ?? {}).length ? [h("div", { class: "label" }, "metadata"), jsonBlock(e.metadata)] : "",
  );
}

function errorSection(title, error, rerender, cls) {
  return h(
    "section",
    { class: `card ${cls}` },
    h("h2", {}, title),
    h("p", { class: "error error-headline" }, firstLine(error.message)),
    error.message.includes("\n")
      ? h("details", { class: "error-details" }, h("summary", {}, "the whole message"), h("pre", { class: "error-text" }, error.message))
      : "",
    h("p", { class: "muted small" }, `at ${fmtTime(error.at_ms)}`, error.position ? [" · failed on ", errorLink(error)] : ""),
    error.position ? eventBox(error.position, rerender) : "",
  );
}

function generations(p) {
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Generations"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "generations" },
        h("thead", {}, h("tr", {}, h("th", {}, "role"), h("th", {}, "generation"), h("th", {}, "state"), h("th", {}, "position"), h("th", {}, "error"))),
        h(
          "tbody",
          {},
          p.generations.map((g) =>
            h(
              "tr",
              { dataset: { role: g.role } },
              h("td", {}, g.role),
              h("td", { class: "mono", title: g.generation }, short(g.generation)),
              h("td", {}, stateBadge(g.state)),
              h("td", {}, fmtNum(g.position)),
              h("td", { class: "error small" }, g.error ? g.error.message.split("\n")[0] : ""),
            ),
          ),
        ),
      ),
    ),
    p.candidate
      ? h(
          "div",
          { class: "sub candidate" },
          h("strong", {}, "Candidate "),
          h("span", { class: "mono" }, short(p.candidate.generation)),
          ` (${p.candidate.purpose ?? "new content"}): `,
          stateBadge(shownState(p.candidate)),
          p.candidate.ready ? h("span", { class: "badge ready" }, "ready to promote") : "",
          p.candidate.ready ? "" : progress(p.candidate, "replay"),
        )
      : "",
    p.previous
      ? h(
          "p",
          { class: "muted small" },
          `Previous generation ${short(p.previous.generation)} at position ${fmtNum(p.previous.position)}, retired ${fmtTime(p.previous.retired_at_ms)}, kept for a rollback until ${fmtTime(p.previous.expires_at_ms)}.`,
        )
      : "",
  );
}

function status(p) {
  const history = store.history.get(p.name) ?? [];
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Status"),
    h(
      "div",
      { class: "fields" },
      field("state", stateBadge(shownState(p))),
      field("generation", h("span", { class: "mono", title: p.generation ?? "" }, short(p.generation))),
      field("position", h("span", { class: "position" }, fmtNum(p.position))),
      field("head", fmtNum(p.head)),
      field("lag", h("span", { class: "lag" }, fmtNum(p.lag))),
      field("events/s", fmtNum(p.events_per_second)),
      field("processed", fmtNum(p.events_processed)),
      field("dead letters", fmtNum(p.dead_letters)),
      field("storage", fmtBytes(p.storage_bytes)),
      p.replay_eta_seconds ? field("replay ETA", fmtDuration(p.replay_eta_seconds)) : "",
      p.waiting_for ? field("waiting for", h("span", { class: "warn" }, p.waiting_for)) : "",
    ),
    p.state === "replaying" ? progress(p, "replay") : "",
    chart(
      history,
      [
        { key: "lag", label: "lag", cls: "s-lag" },
        { key: "eps", label: "events/s", cls: "s-rate" },
      ],
      { width: 600, height: 80, windowMs: 10 * 60_000, label: `lag and events per second of ${p.name}` },
    ),
  );
}

function settings(p) {
  const entries = Object.entries(p.settings ?? {});
  const d = p.description;
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Settings and description"),
    entries.length
      ? h("div", { class: "fields" }, entries.map(([k, v]) => field(k, typeof v === "object" ? JSON.stringify(v) : String(v))))
      : h("p", { class: "muted" }, "Every setting has its default ([plugin_defaults])."),
    entries.length ? h("p", { class: "muted small" }, "Settings not listed have their defaults.") : "",
    d
      ? h(
          "div",
          { class: "fields" },
          field("consumes", d.event_types.length ? d.event_types.join(", ") : "every event type"),
          field(
            "queries",
            d.queries.length ? d.queries.map((q, i) => [i ? ", " : "", h("a", { href: `#/views/${seg(p.name)}?query=${seg(q)}` }, q)]) : "none",
          ),
          d.indexes?.length ? field("indexes", d.indexes.map((i) => i.name ?? JSON.stringify(i)).join(", ")) : "",
        )
      : "",
  );
}

function historySection(p) {
  const list = [...(store.transitions.get(p.name) ?? [])].reverse();
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Status history"),
    h("p", { class: "muted small" }, "Seen by this page since it was opened."),
    h(
      "ol",
      { class: "history", id: "status-history" },
      list.map((t) => h("li", {}, h("time", {}, fmtTime(t.t)), " ", h("span", { class: `dot state-${t.state}` }), " ", t.text)),
    ),
  );
}

function deadLetters(data) {
  if (data?.error) return errorBox(data.error);
  const letters = data?.dead_letters ?? [];
  if (!letters.length) return h("p", { class: "muted" }, "None.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "dead-letters" },
      h("thead", {}, h("tr", {}, h("th", {}, "position"), h("th", {}, "stream"), h("th", {}, "type"), h("th", {}, "error"))),
      h(
        "tbody",
        {},
        letters.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: logLink(d.position) }, fmtNum(d.position))),
            h("td", {}, d.event?.stream ?? ""),
            h("td", {}, d.event?.type ?? ""),
            h(
              "td",
              {},
              h("details", { dataset: { key: `dl-${d.position}` } }, h("summary", {}, String(d.error ?? "").split("\n")[0]), h("pre", { class: "error-text" }, d.error), jsonBlock(d.event)),
            ),
          ),
        ),
      ),
    ),
  );
}

function logLines(data) {
  if (data?.error) return errorBox(data.error);
  const lines = data?.lines ?? [];
  return [
    data?.dropped ? h("p", { class: "muted small" }, `${fmtNum(data.dropped)} older lines dropped`) : "",
    lines.length
      ? h("pre", { class: "log-lines", id: "plugin-log" }, lines.map((l) => `${fmtTime(l.at_ms)} ${l.level.padEnd(6)} ${l.message}\n`).join(""))
      : h("p", { class: "muted" }, "Nothing logged."),
  ];
}

function actionButton(label, handler, { danger = false, admin = true, id } = {}) {
  return h(
    "button",
    {
      type: "button",
      id,
      class: danger ? "danger" : "",
      onclick: handler,
      title: admin ? "needs a token with the admin scope" : null,
    },
    label,
  );
}

export function mount(main, [name]) {
  const path = `/plugins/${seg(name)}`;
  const title = h("div", { class: "title-line" });
  const statusEl = h("div");
  const errorsEl = h("div");
  const gensEl = h("div");
  const diffEl = h("section", { class: "card", id: "diff", hidden: true });
  const settingsEl = h("div");
  const historyEl = h("div");
  const lettersEl = h("div", { id: "dead-letters-box" });
  const logEl = h("div", { id: "log-box" });
  const follow = h("input", { type: "checkbox", checked: true, id: "log-follow" });
  const adminNote = h("p", { class: "warn small", hidden: true }, "This token was refused an admin action: the actions below need a token with the admin scope.");

  const file = h("input", { type: "file", accept: ".wasm,application/wasm", id: "replace-file" });
  const simple = (label, method, suffix, what, opts = {}) =>
    actionButton(
      label,
      () =>
        act({
          title: `${label} ${name}`,
          body: what,
          method,
          path: path + suffix,
          danger: opts.danger,
          okLabel: label,
          done: opts.done,
        }).then((r) => {
          if (r && opts.after) opts.after();
        }),
      { danger: opts.danger, id: opts.id },
    );
  const buttons = {
    replace: actionButton(
      "Upload",
      async () => {
        const f = file.files[0];
        if (!f) return banner("Choose a .wasm file first.", "error");
        const r = await act({
          title: `Replace ${name}`,
          body: [`Upload ${f.name} (${fmtBytes(f.size)}) as the new content of ${name}?`, "It replays into a fresh keyspace while the current generation keeps serving, and takes over once it has caught up."],
          okLabel: "Upload",
          method: "PUT",
          path,
          upload: f,
          done: `Uploaded ${f.name} to ${name}.`,
        });
        if (r) file.value = "";
      },
      { id: "replace-button" },
    ),
    rebuild: simple("Rebuild", "POST", "/rebuild", "Replay the whole log into a fresh generation beside the serving one? It takes over once caught up.", { id: "rebuild-button" }),
    remove: simple("Remove", "DELETE", "", `Unload ${name} and drop all of its views? This cannot be undone.`, {
      danger: true,
      id: "remove-button",
      after: () => (location.hash = "#/"),
    }),
    diff: actionButton(
      "Diff",
      async () => {
        diffEl.hidden = false;
        show(diffEl, h("h2", {}, "Candidate against serving"), h("p", { class: "muted" }, "Comparing…"));
        try {
          const d = await get(`${path}/diff`, { sample: 10 });
          show(diffEl, h("h2", {}, "Candidate against serving"), diffReport(d));
        } catch (e) {
          show(diffEl, h("h2", {}, "Candidate against serving"), errorBox(e));
        }
      },
      { admin: false, id: "diff-button" },
    ),
    promote: simple("Promote", "POST", "/promote", "Cut over to the candidate now? The serving generation is kept as the previous one, for a rollback.", { id: "promote-button" }),
    discard: simple("Discard candidate", "DELETE", "/candidate", "Drop the candidate? The plugin file is rewritten with the serving generation's bytes.", {
      danger: true,
      id: "discard-button",
    }),
    rollback: simple("Rollback", "POST", "/rollback", "Bring the previous generation back? It catches up with what was appended since, then serves; the plugin file is rewritten with its bytes.", { id: "rollback-button" }),
    resume: simple("Resume", "POST", "/resume", "Run the quarantined generation again, one event at a time through the batch the process died in?", { id: "resume-button" }),
    skip: simple("Skip batch", "POST", "/skip", "Run the quarantined generation again past the batch the process died in? Its events are dead-lettered.", { id: "skip-button" }),
  };

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Overview"), " / ", name),
    title,
    errorsEl,
    statusEl,
    gensEl,
    h(
      "section",
      { class: "card actions" },
      h("h2", {}, "Actions"),
      adminNote,
      h("div", { class: "action-row" }, h("label", {}, "Replace with ", file), buttons.replace, buttons.rebuild, buttons.remove),
      h("div", { class: "action-row" }, buttons.diff, buttons.promote, buttons.discard, buttons.rollback, buttons.resume, buttons.skip),
    ),
    diffEl,
    settingsEl,
    historyEl,
    h("section", { class: "card" }, h("h2", {}, "Dead letters"), lettersEl),
    h("section", { class: "card" }, h("h2", {}, "Log"), h("label", { class: "check small" }, follow, " follow the newest lines"), logEl),
  );

  let letters = null;
  let logs = null;
  let lastTail = 0;
  let alive = true;
  async function tail() {
    lastTail = Date.now();
    const [l, d] = await Promise.allSettled([get(`${path}/logs`), get(`${path}/dead-letters`, { limit: 100 })]);
    if (!alive) return;
    logs = l.status === "fulfilled" ? l.value : { error: l.reason };
    letters = d.status === "fulfilled" ? d.value : { error: d.reason };
    show(lettersEl, deadLetters(letters));
    const pre = logEl.querySelector("pre");
    const atBottom = !pre || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    show(logEl, ...logLines(logs));
    const after = logEl.querySelector("pre");
    if (after && follow.checked && atBottom) after.scrollTop = after.scrollHeight;
  }

  function update() {
    const p = pluginByName(name);
    if (!p) {
      show(
        title,
        h("h1", {}, name),
        store.error ? errorBox(store.error) : store.updatedAt ? h("p", { class: "muted" }, `No plugin named ${name} is loaded.`) : h("p", { class: "muted" }, "Loading…"),
      );
      return;
    }
    show(
      title,
      h("h1", {}, name, " ", stateBadge(shownState(p))),
      kindLine(p),
      h("p", { class: "links" }, h("a", { href: `#/views/${seg(name)}` }, "Browse its view"), " · ", h("a", { href: `#/log?from=${Math.max(1, (p.position ?? 1) - 19)}` }, "Events around its position")),
    );
    adminNote.hidden = !access.adminDenied;
    buttons.diff.hidden = buttons.promote.hidden = buttons.discard.hidden = !p.candidate;
    buttons.rollback.hidden = !p.previous;
    buttons.resume.hidden = buttons.skip.hidden = p.state !== "quarantined";
    const rerender = () => alive && update();
    show(statusEl, status(p));
    show(
      errorsEl,
      p.last_error ? errorSection("Last error", p.last_error, rerender, "last-error-box") : "",
      p.failed_candidate ? errorSection(`Failed candidate ${short(p.failed_candidate.generation)}`, p.failed_candidate.error, rerender, "failed-candidate-box") : "",
    );
    show(gensEl, generations(p));
    show(settingsEl, settings(p));
    show(historyEl, historySection(p));
    if (Date.now() - lastTail >= Math.max(REFRESH_MS, 2000)) tail();
  }

  update();
  tail();
  return {
    update,
    unmount() {
      alive = false;
    },
  };
}

function diffReport(d) {
  const sample = (kind, item) =>
    h(
      "div",
      { class: `diff-item diff-${kind}` },
      h("div", { class: "mono" }, `${kind}: ${item.key}`),
      h(
        "div",
        { class: "side-by-side" },
        "serving" in item ? h("div", {}, h("div", { class: "label" }, "serving"), jsonBlock(item.serving)) : "",
        "candidate" in item ? h("div", {}, h("div", { class: "label" }, "candidate"), jsonBlock(item.candidate)) : "",
      ),
    );
  return h(
    "div",
    { id: "diff-report" },
    h("p", {}, `Serving ${short(d.serving)} and candidate ${short(d.candidate)}, both at position ${fmtNum(d.position)}.`),
    h("div", { class: "fields" }, ["added", "removed", "changed", "unchanged"].map((k) => field(`keys ${k}`, fmtNum(d[k])))),
    ["changed", "added", "removed"].flatMap((k) => (d.samples?.[k] ?? []).map((item) => sample(k, item))),
  );
}
