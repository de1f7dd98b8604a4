// The Prism HTTP API as the page uses it: every request carries the bearer
// token the user entered, errors come back as ApiError with the API's own
// code and message, and a 401 asks the page for a token. The change feed is
// read with fetch() and parsed here, because EventSource cannot send an
// Authorization header (and a token in the URL would end up in logs).

const TOKEN_KEY = "prism.token";

// The API lives where the page does: /ui on the server's root, or under the
// same prefix behind a reverse proxy.
export const base = location.pathname.replace(/\/ui\/?$/, "");

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY) ?? "";
}

// Kept for this tab only unless `remember` is set.
export function setToken(value, remember) {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (value) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, value);
  tokenListeners.forEach((f) => f());
}

const tokenListeners = [];
export function onTokenChange(f) {
  tokenListeners.push(f);
}

let unauthorizedHandler = () => {};
// What to do when the server answers 401 (the page shows its token prompt).
export function onUnauthorized(f) {
  unauthorizedHandler = f;
}

// A 401 to a request sent with `sentWith` says the page's token is refused
// only if the page still has that token: a request sent before the user
// entered a new one (a poll while the prompt was open) answers for the old.
function unauthorized(error, sentWith) {
  if (sentWith === token()) unauthorizedHandler(error);
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }

  // A sentence a person can act on.
  explain() {
    switch (this.status) {
      case 0:
        return `The server did not answer: ${this.message}`;
      case 401:
        return "401 unauthorized: this server needs a valid token.";
      case 403:
        return `403 forbidden: ${this.message.replace(/\.$/, "")}. Actions that change plugins need a token with the admin scope.`;
      default:
        return `${this.status} ${this.code}: ${this.message}`;
    }
  }
}

function headers(extra) {
  const h = new Headers(extra);
  const t = token();
  if (t) h.set("Authorization", `Bearer ${t}`);
  return h;
}

export function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return base + path + (s ? `?${s}` : "");
}

// A path segment: keys and names may hold any character, `/` included.
export const seg = encodeURIComponent;

async function errorOf(response) {
  const text = await response.text().catch(() => "");
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's page, say): keep the text as the message.
  }
  const e = body?.error;
  return new ApiError(
    response.status,
    e?.code ?? "http_error",
    e?.message ?? (text.slice(0, 200) || response.statusText),
    body,
  );
}

// One request. Resolves to {status, body, headers}; `body` is parsed JSON,
// or text when `text` is set. Rejects with ApiError.
export async function request(method, path, { query, body, text = false, silent401 = false, tokenOverride } = {}) {
  const h = headers();
  if (tokenOverride !== undefined) h.set("Authorization", `Bearer ${tokenOverride}`);
  const sentWith = tokenOverride ?? token();
  let response;
  try {
    response = await fetch(url(path, query), { method, headers: h, body, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "unreachable", e.message);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !silent401) unauthorized(error, sentWith);
    throw error;
  }
  if (response.status === 204) return { status: 204, body: null, headers: response.headers };
  const content = text ? await response.text() : await response.json().catch(() => null);
  return { status: response.status, body: content, headers: response.headers };
}

export const get = async (path, query, opts) => (await request("GET", path, { query, ...opts })).body;

// Prometheus text → {name: value} of the samples without labels.
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+) ([0-9.eE+-]+|NaN)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// The change feed of a view, followed until `stop()` is called. Reconnects
// after a drop with `Last-Event-ID`, as EventSource would (or `since`, the
// position it opened at, before any change came), so no change is missed or
// seen twice. `onEvent(type, data, id)` gets every event;
// `onState(state, detail)` says "open", "reconnecting" or "error".
export function follow(path, { onEvent, onState }) {
  const abort = new AbortController();
  let lastId = null;
  // What the server asks for between reconnects (its `retry` field), and
  // the wait after a refusal, which grows so a gone plugin is not hammered.
  let retryMs = 1000;
  let backoffMs = 0;
  let stopped = false;

  // Where the stream opened, to resume from if it drops before the first
  // change (which would otherwise give the position to resume after).
  let since = null;

  const dispatch = (type, data, id) => {
    let parsed = data;
    try {
      parsed = JSON.parse(data);
    } catch {
      // Not JSON: hand over the text.
    }
    if (type === "open" && lastId === null && typeof parsed?.position === "number") since = parsed.position;
    onEvent(type, parsed, id);
  };

  async function readOnce() {
    const h = headers({ Accept: "text/event-stream" });
    const sentWith = token();
    if (lastId) h.set("Last-Event-ID", lastId);
    const query = !lastId && since !== null ? { since } : {};
    const response = await fetch(url(path, query), { headers: h, signal: abort.signal, cache: "no-store" });
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) unauthorized(error, sentWith);
      throw error;
    }
    onState("open");
    backoffMs = 0;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    // The event being assembled, by the rules of the SSE format.
    let buffer = "";
    let type = "";
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the very end may be the first half of \r\n.
        if (buffer[newline] === "\r" && newline === buffer.length - 1) break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (id !== null) lastId = id;
          if (data.length) dispatch(type || "message", data.join("\n"), lastId);
          type = "";
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") type = v;
        else if (field === "data") data.push(v);
        else if (field === "id" && !v.includes("\0")) id = v;
        else if (field === "retry" && /^\d+$/.test(v)) retryMs = Number(v);
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await readOnce();
        if (!stopped) onState("reconnecting", "the server closed the stream");
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError) {
          backoffMs = Math.min(Math.max(backoffMs * 2, 2000), 30000);
          onState("error", e.explain());
        } else {
          onState("reconnecting", e.message);
        }
      }
      await new Promise((r) => setTimeout(r, Math.max(retryMs, backoffMs)));
    }
  })();

  return {
    stop() {
      stopped = true;
      abort.abort();
    },
  };
}
