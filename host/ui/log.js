// The log browser: the global log from a position, or one stream from a
// version, page by page, each event opening to its data and metadata.

import { get, seg } from "./api.js";
import { h, show, fmtNum, jsonBlock, errorBox, logLink } from "./dom.js";
import { store } from "./poller.js";

const LIMIT = 50;

export function mount(main, _parts, query) {
  const state = {
    stream: query.get("stream") ?? "",
    from: query.get("from") ? Number(query.get("from")) : null,
    focus: query.get("focus") !== null ? Number(query.get("focus")) : null,
  };
  const remember = () => {
    const q = new URLSearchParams();
    if (state.stream) q.set("stream", state.stream);
    if (state.from !== null) q.set("from", state.from);
    if (state.focus !== null) q.set("focus", state.focus);
    history.replaceState(null, "", `#/log?${q}`);
  };

  const stream = h("input", { id: "log-stream", value: state.stream, placeholder: "all streams" });
  const from = h("input", { id: "log-from", type: "number", min: 0, value: state.from ?? "", placeholder: "first" });
  const tail = h("input", { type: "checkbox", id: "log-tail" });
  const list = h("div", { id: "events" });
  const pager = h("div", { class: "pager" });
  const heading = h("h1", {}, "Event log");
  // Where the pages before this one started, for "previous".
  let back = [];
  let next = null;
  let loading = false;

  async function load() {
    loading = true;
    remember();
    const oneStream = !!state.stream;
    heading.textContent = oneStream ? `Stream ${state.stream}` : "Event log";
    try {
      const page = oneStream
        ? await get(`/streams/${seg(state.stream)}/events`, { from_version: state.from ?? 0, limit: LIMIT })
        : await get("/events", { from_position: state.from ?? 1, limit: LIMIT });
      next = oneStream ? page.next_version : page.next_position;
      const events = page.events;
      show(
        list,
        events.length
          ? events.map((e) => {
              const mark = oneStream ? e.stream_version : e.position;
              const focused = mark === state.focus;
              return h(
                "details",
                { class: `event${focused ? " focus" : ""}`, open: focused, dataset: { key: `e-${e.position}`, position: e.position } },
                h(
                  "summary",
                  {},
                  h("span", { class: "pos mono" }, `#${fmtNum(e.position)}`),
                  h("a", { href: logLink(e.stream_version, e.stream), class: "stream" }, e.stream),
                  h("span", { class: "mono muted" }, `v${e.stream_version}`),
                  h("span", { class: "event-type" }, e.type),
                  h("span", { class: "muted small" }, e.recorded_at),
                ),
                h("div", { class: "label" }, "data"),
                jsonBlock(e.data),
                h("div", { class: "label" }, "metadata"),
                jsonBlock(e.metadata),
                h("p", { class: "muted small mono" }, `id ${e.id}`),
              );
            })
          : h("p", { class: "muted" }, oneStream ? "No events in this stream from there." : "No events from there: this is the end of the log."),
      );
      show(
        pager,
        h("button", { type: "button", class: "ghost", id: "log-prev", disabled: !back.length }, "Previous"),
        h("button", { type: "button", id: "log-next", disabled: !events.length }, "Next page"),
        oneStream ? "" : h("button", { type: "button", class: "ghost", id: "log-newest" }, "Newest"),
        oneStream ? "" : h("span", { class: "muted small" }, ` head ${fmtNum(page.head)}`),
      );
      const focused = list.querySelector("details.focus");
      if (focused) focused.scrollIntoView({ block: "center" });
    } catch (e) {
      show(list, errorBox(e));
    } finally {
      loading = false;
    }
  }

  const newest = () => {
    const head = store.health?.head ?? 0;
    back = [];
    state.from = Math.max(1, head - LIMIT + 1);
    state.focus = null;
    load();
  };

  pager.addEventListener("click", (event) => {
    const b = event.target.closest("button");
    if (!b) return;
    state.focus = null;
    if (b.id === "log-next") {
      back.push(state.from);
      state.from = next;
    } else if (b.id === "log-prev") {
      state.from = back.pop() ?? null;
    } else if (b.id === "log-newest") {
      return newest();
    }
    load();
  });

  main.append(
    heading,
    h(
      "form",
      {
        class: "card log-form",
        onsubmit: (event) => {
          event.preventDefault();
          state.stream = stream.value.trim();
          state.from = from.value === "" ? null : Number(from.value);
          state.focus = null;
          back = [];
          load();
        },
      },
      h("label", {}, "Stream ", stream),
      h("label", {}, "From ", from, h("span", { class: "muted small" }, " position, or version in a stream")),
      h("button", { type: "submit", id: "log-go" }, "Read"),
      h("label", { class: "check" }, tail, " follow the newest events"),
    ),
    pager,
    list,
  );

  load();
  return {
    // Following the log: the newest page, again at every poll.
    update() {
      if (tail.checked && !state.stream && !loading) {
        const head = store.health?.head ?? 0;
        const wanted = Math.max(1, head - LIMIT + 1);
        if (wanted !== state.from || !list.querySelector("details")) {
          back = [];
          state.from = wanted;
          state.focus = null;
          load();
        }
      }
    },
  };
}
