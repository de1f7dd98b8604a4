// The view browser: page through a plugin's keys, open a document, run the
// queries the plugin exports, and watch the view's change feed live.

import { request, seg, follow } from "./api.js";
import { h, show, fmtNum, fmtTime, jsonBlock, errorBox, stateBadge, shownState } from "./dom.js";
import { store, pluginByName } from "./poller.js";

const PAGE = 50;
const KEEP_CHANGES = 200;

// Keys starting with `_` are the API's own paths; `_doc/` reads any key.
export const docPath = (plugin, key) =>
  key.startsWith("_") ? `/views/${seg(plugin)}/_doc/${seg(key)}` : `/views/${seg(plugin)}/${seg(key)}`;

function preview(value) {
  const text = JSON.stringify(value);
  return text.length > 140 ? `${text.slice(0, 140)}…` : text;
}

function headersLine(headers) {
  const position = headers.get("Prism-Position");
  const generation = headers.get("Prism-Generation");
  const state = headers.get("Prism-State");
  return h(
    "p",
    { class: "muted small" },
    position ? `at position ${fmtNum(Number(position))}` : "",
    generation ? ` · generation ${generation.slice(0, 12)}` : "",
    state ? ` · ${state}` : "",
  );
}

function choosePlugin(main) {
  const list = h("ul", { class: "plugin-links" });
  main.append(h("h1", {}, "Views"), h("p", { class: "muted" }, "Choose a plugin to browse its view."), list);
  const update = () =>
    show(
      list,
      store.error ? errorBox(store.error) : "",
      store.plugins.map((p) => h("li", {}, h("a", { href: `#/views/${seg(p.name)}` }, p.name), " ", stateBadge(shownState(p)))),
    );
  update();
  return { update };
}

export function mount(main, [plugin], query) {
  if (!plugin) return choosePlugin(main);
  // The fragment follows what is shown, so a view can be linked to.
  const state = {
    prefix: query.get("prefix") ?? "",
    start: query.get("start") ?? "",
    key: query.get("key"),
    query: query.get("query"),
  };
  const remember = () => {
    const q = new URLSearchParams();
    for (const k of ["prefix", "start", "key", "query"]) if (state[k]) q.set(k, state[k]);
    const s = q.toString();
    history.replaceState(null, "", `#/views/${seg(plugin)}${s ? `?${s}` : ""}`);
  };

  const prefix = h("input", { id: "scan-prefix", value: state.prefix, placeholder: "prefix" });
  const start = h("input", { id: "scan-start", value: state.start, placeholder: "first key" });
  const keysEl = h("div", { id: "keys" });
  const docEl = h("section", { class: "card", id: "document", hidden: true });
  const queryEl = h("section", { class: "card", id: "queries" });
  const changesEl = h("ol", { class: "changes", id: "changes" });
  const feedStatus = h("span", { class: "muted", id: "feed-status" }, "not watching");
  const watch = h("button", { type: "button", id: "watch-button" }, "Watch changes");
  const heading = h("div");

  // Cursors of the pages before this one, for "previous".
  let cursors = [];
  let cursor = null;

  async function scan() {
    show(keysEl, h("p", { class: "muted" }, "Reading…"));
    try {
      const r = await request("GET", `/views/${seg(plugin)}`, {
        query: { prefix: state.prefix, start: state.start, limit: PAGE, cursor },
      });
      const items = r.body.items;
      const next = r.body.cursor;
      show(
        keysEl,
        headersLine(r.headers),
        items.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "keys" },
                h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "document"))),
                h(
                  "tbody",
                  {},
                  items.map((item) =>
                    h(
                      "tr",
                      {},
                      h("td", {}, h("a", { href: "#", class: "key", dataset: { key: item.key } }, item.key)),
                      h("td", { class: "mono small preview" }, preview(item.value)),
                    ),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, "No keys here."),
        h(
          "div",
          { class: "pager" },
          h("button", { type: "button", class: "ghost", id: "keys-first", disabled: !cursors.length && !cursor }, "First page"),
          h("button", { type: "button", class: "ghost", id: "keys-prev", disabled: !cursors.length && !cursor }, "Previous"),
          h("button", { type: "button", id: "keys-next", disabled: !next, dataset: { cursor: next ?? "" } }, "Next page"),
        ),
      );
    } catch (e) {
      show(keysEl, errorBox(e));
    }
  }

  keysEl.addEventListener("click", (event) => {
    const a = event.target.closest("a.key");
    if (a) {
      event.preventDefault();
      open(a.dataset.key);
      return;
    }
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "keys-next") {
      cursors.push(cursor);
      cursor = button.dataset.cursor;
    } else if (button.id === "keys-prev") {
      cursor = cursors.pop() ?? null;
    } else if (button.id === "keys-first") {
      cursors = [];
      cursor = null;
    }
    scan();
  });

  async function open(key) {
    state.key = key;
    remember();
    docEl.hidden = false;
    show(docEl, h("h2", {}, "Document"), h("p", { class: "mono" }, key), h("p", { class: "muted" }, "Reading…"));
    try {
      const r = await request("GET", docPath(plugin, key));
      show(docEl, h("h2", {}, "Document"), h("p", { class: "mono doc-key" }, key), headersLine(r.headers), jsonBlock(r.body, { id: "doc-json" }));
    } catch (e) {
      show(docEl, h("h2", {}, "Document"), h("p", { class: "mono doc-key" }, key), errorBox(e));
    }
    docEl.scrollIntoView({ block: "nearest" });
  }

  // Queries: the plugin names them; what parameters they take is up to it,
  // so the form takes any name=value pairs.
  const queryName = h("select", { id: "query-name" });
  const params = h("div", { class: "params" });
  const queryResult = h("div", { id: "query-result" });
  const addParam = (k = "", v = "") =>
    params.append(
      h(
        "div",
        { class: "param" },
        h("input", { class: "param-name", placeholder: "parameter", value: k }),
        h("input", { class: "param-value", placeholder: "value", value: v }),
        h("button", { type: "button", class: "ghost", onclick: (e) => e.target.closest(".param").remove() }, "×"),
      ),
    );
  addParam();
  const queryForm = h(
    "form",
    {
      class: "query-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const q = {};
        for (const row of params.querySelectorAll(".param")) {
          const k = row.querySelector(".param-name").value.trim();
          if (k) q[k] = row.querySelector(".param-value").value;
        }
        state.query = queryName.value;
        remember();
        show(queryResult, h("p", { class: "muted" }, "Running…"));
        try {
          const r = await request("GET", `/views/${seg(plugin)}/_query/${seg(queryName.value)}`, { query: q });
          show(queryResult, headersLine(r.headers), jsonBlock(r.body, { id: "query-json" }));
        } catch (e) {
          show(queryResult, errorBox(e));
        }
      },
    },
    h("label", {}, "Query ", queryName),
    params,
    h("div", { class: "buttons" }, h("button", { type: "button", class: "ghost", onclick: () => addParam() }, "Add parameter"), h("button", { type: "submit", id: "query-run" }, "Run")),
  );

  let feed = null;
  let changes = 0;
  function addChange(item) {
    changesEl.prepend(item);
    changes++;
    while (changesEl.children.length > KEEP_CHANGES) changesEl.lastElementChild.remove();
  }
  function startFeed() {
    changesEl.replaceChildren();
    changes = 0;
    watch.textContent = "Stop watching";
    feedStatus.textContent = "connecting…";
    feed = follow(`/views/${seg(plugin)}/_changes`, {
      onState(s, detail) {
        feedStatus.textContent = s === "open" ? "watching" : `${s}${detail ? `: ${detail}` : ""}`;
        feedStatus.className = s === "open" ? "ok" : s === "error" ? "error" : "warn";
      },
      onEvent(type, data, id) {
        const t = fmtTime(Date.now());
        if (type === "change") {
          addChange(
            h(
              "li",
              { class: data.deleted ? "deleted" : "changed", dataset: { key: data.key } },
              h("time", {}, t),
              " ",
              h("a", { href: "#", class: "key", dataset: { key: data.key } }, data.key),
              " ",
              data.deleted ? h("span", { class: "warn" }, "deleted") : h("span", { class: "mono small" }, preview(data.value)),
              h("span", { class: "muted small" }, ` ${id ?? ""}`),
            ),
          );
        } else if (type === "open") {
          addChange(h("li", { class: "marker" }, h("time", {}, t), ` watching from position ${fmtNum(data.position)} (generation ${String(data.generation ?? "").slice(0, 12)})`));
        } else if (type === "reset" || type === "generation") {
          addChange(
            h("li", { class: "marker warn" }, h("time", {}, t), ` ${type === "reset" ? "reset" : "new generation"} at position ${fmtNum(data.position)}: re-read the view`),
          );
          scan();
        }
      },
    });
  }
  function stopFeed() {
    feed?.stop();
    feed = null;
    watch.textContent = "Watch changes";
    feedStatus.textContent = `stopped after ${changes} changes`;
    feedStatus.className = "muted";
  }
  watch.addEventListener("click", () => (feed ? stopFeed() : startFeed()));
  changesEl.addEventListener("click", (event) => {
    const a = event.target.closest("a.key");
    if (a) {
      event.preventDefault();
      open(a.dataset.key);
    }
  });

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/views" }, "Views"), " / ", h("a", { href: `#/plugins/${seg(plugin)}` }, plugin)),
    heading,
    h(
      "section",
      { class: "card" },
      h("h2", {}, "Keys"),
      h(
        "form",
        {
          class: "scan-form",
          onsubmit: (event) => {
            event.preventDefault();
            state.prefix = prefix.value;
            state.start = start.value;
            cursors = [];
            cursor = null;
            remember();
            scan();
          },
        },
        h("label", {}, "Prefix ", prefix),
        h("label", {}, "From key ", start),
        h("button", { type: "submit", id: "scan-button" }, "List"),
      ),
      keysEl,
    ),
    docEl,
    queryEl,
    h("section", { class: "card" }, h("h2", {}, "Changes"), h("div", { class: "buttons" }, watch, feedStatus), changesEl),
  );

  function update() {
    const p = pluginByName(plugin);
    show(heading, h("h1", {}, `View of ${plugin} `, p ? stateBadge(shownState(p)) : ""));
    const queries = p?.description?.queries ?? [];
    if (queries.length && !queryEl.firstChild) {
      queryName.replaceChildren(...queries.map((q) => h("option", { value: q, selected: q === state.query }, q)));
      show(queryEl, h("h2", {}, "Queries"), queryForm, queryResult);
    }
    queryEl.hidden = !queries.length;
  }

  update();
  scan();
  if (state.key) open(state.key);
  return {
    update,
    unmount() {
      feed?.stop();
    },
  };
}
