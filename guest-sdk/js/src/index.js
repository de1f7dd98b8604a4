// Write Prism projections in JavaScript.
//
// `defineProjection({...})` describes a projection: its name, version, the event types it
// consumes, `handle(view, event)` and named queries. This module is the batch engine behind
// it and is free of any WebAssembly binding: `component.js` connects it to the `view` and
// `logging` imports inside a component, `testing.js` to an in-memory host in unit tests, so
// a test runs exactly the code the plugin runs.
//
// One `handle(batch)` is a handful of boundary crossings, not two per event: an optional
// `get-many` prefetches the keys `keys(event)` names, reads are cached and writes buffered
// in the guest, and one `write-many` carries the batch's writes at the end. An exception in
// `handle` for event i refuses the batch as `{index: i, message}` and writes nothing.

// JSON with 64-bit integers. A JavaScript number holds integers exactly only up to 2^53,
// while the host, Rust and Python projections keep integers up to 2^63. So `parse` returns
// integers beyond 2^53 as BigInt, and `dumps` writes BigInt as a plain JSON integer. Both
// take the engine's native path unless the text has a run of 16 or more digits / the value
// holds a BigInt.

/** Compact JSON, as serde_json writes it; BigInt values become JSON integers. */
export function dumps(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError) || !/BigInt/i.test(e.message)) throw e;
    text = stringifyWithBigInt(value, '');
  }
  if (text === undefined) {
    throw new TypeError(`cannot store ${typeof value} as a JSON document`);
  }
  return text;
}

function stringifyWithBigInt(value, key) {
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON(key);
  }
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'string':
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => stringifyWithBigInt(v, String(i)) ?? 'null').join(',')}]`;
      }
      const members = [];
      for (const k of Object.keys(value)) {
        const v = stringifyWithBigInt(value[k], k);
        if (v !== undefined) members.push(`${JSON.stringify(k)}:${v}`);
      }
      return `{${members.join(',')}}`;
    }
    default:
      return undefined;
  }
}

// Sixteen digits in a row, spelled out: engines without a JIT (StarlingMonkey in a component)
// match `\d{16}` several times slower than this, and every event and document is tested.
const SIXTEEN_DIGITS = new RegExp('\\d'.repeat(16));

/** Parse JSON; integers outside the safe range come back as BigInt, exactly. */
export function parse(text) {
  if (!SIXTEEN_DIGITS.test(text)) return JSON.parse(text);
  return new ExactParser(text).document();
}

/**
 * The JSON text of member `key` of the object `text` holds, or undefined: how a number was
 * written, which parsing loses (`10` and `10.0` both parse to 10). Throws on invalid JSON.
 */
export function rawMember(text, key) {
  const literal = scalarMember(text, key);
  if (literal !== undefined) return literal;
  const p = new ExactParser(text);
  let found;
  p.members((k, start, end) => {
    if (k === key) found = text.slice(start, end);
  });
  return found;
}

// After a member name: the colon and a number, literal or string without escapes.
const SCALAR_VALUE = /[ \t\n\r]*:[ \t\n\r]*(-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|"[^"\\]*")/y;
const WORD = /^\w+$/;

/**
 * `rawMember` without walking the document, for the common case: a key of word characters
 * whose value is a scalar, in a text with no backslash. There every `"` delimits a string,
 * and a `"` followed by a word character opens one, so the text's only `"key"` followed by a
 * colon names a member; the document's top-level member `key`, if it has one, is written
 * there. Undefined when that cannot be told this way (the caller walks the document then).
 */
function scalarMember(text, key) {
  if (!WORD.test(key) || text.includes('\\')) return undefined;
  const quoted = `"${key}"`;
  const at = text.indexOf(quoted);
  if (at < 0 || text.indexOf(quoted, at + 1) >= 0) return undefined;
  SCALAR_VALUE.lastIndex = at + quoted.length;
  const m = SCALAR_VALUE.exec(text);
  if (m === null) return undefined;
  const doc = JSON.parse(text);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || !Object.hasOwn(doc, key)) return undefined;
  return m[1];
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

class ExactParser {
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  document() {
    const value = this.value();
    this.space();
    if (this.at !== this.text.length) this.fail('unexpected text after the document');
    return value;
  }

  fail(why) {
    throw new SyntaxError(`JSON: ${why} at offset ${this.at}`);
  }

  space() {
    while (' \t\n\r'.includes(this.text[this.at] ?? 'x')) this.at++;
  }

  token(re) {
    re.lastIndex = this.at;
    const m = re.exec(this.text);
    if (!m) return null;
    this.at = re.lastIndex;
    return m;
  }

  /** Walk the top-level object, calling `visit(key, start, end)` with each value's span. */
  members(visit) {
    this.space();
    if (this.text[this.at] !== '{') {
      this.document();
      return;
    }
    this.at++;
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
    } else {
      for (;;) {
        this.space();
        const k = this.token(STRING) ?? this.fail('expected a key');
        this.space();
        if (this.text[this.at++] !== ':') this.fail('expected :');
        this.space();
        const start = this.at;
        this.value();
        visit(JSON.parse(k[0]), start, this.at);
        this.space();
        const next = this.text[this.at++];
        if (next === '}') break;
        if (next !== ',') this.fail('expected , or }');
      }
    }
    this.space();
    if (this.at !== this.text.length) this.fail('unexpected text after the document');
  }

  value() {
    this.space();
    const c = this.text[this.at];
    if (c === '{') {
      this.at++;
      const obj = {};
      this.space();
      if (this.text[this.at] === '}') {
        this.at++;
        return obj;
      }
      for (;;) {
        this.space();
        const k = this.token(STRING) ?? this.fail('expected a key');
        this.space();
        if (this.text[this.at++] !== ':') this.fail('expected :');
        const key = JSON.parse(k[0]);
        const v = this.value();
        if (key === '__proto__') {
          Object.defineProperty(obj, key, { value: v, writable: true, enumerable: true, configurable: true });
        } else {
          obj[key] = v;
        }
        this.space();
        const next = this.text[this.at++];
        if (next === '}') return obj;
        if (next !== ',') this.fail('expected , or }');
      }
    }
    if (c === '[') {
      this.at++;
      const arr = [];
      this.space();
      if (this.text[this.at] === ']') {
        this.at++;
        return arr;
      }
      for (;;) {
        arr.push(this.value());
        this.space();
        const next = this.text[this.at++];
        if (next === ']') return arr;
        if (next !== ',') this.fail('expected , or ]');
      }
    }
    if (c === '"') return JSON.parse((this.token(STRING) ?? this.fail('bad string'))[0]);
    for (const [word, v] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return v;
      }
    }
    const m = this.token(NUMBER) ?? this.fail('expected a value');
    const n = Number(m[0]);
    return m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(n) ? BigInt(m[0]) : n;
  }
}

/** Raise from a query to answer `failed(message)`. */
export class QueryError extends Error {
  constructor(message) {
    super(message);
    this.name = 'QueryError';
    this.kind = 'failed';
  }
}

/** Raise from a query when its parameters are missing or malformed. */
export class InvalidParams extends QueryError {
  constructor(message) {
    super(message);
    this.name = 'InvalidParams';
    this.kind = 'invalid-params';
  }
}

/** No query of that name. */
export class UnknownQuery extends QueryError {
  constructor(name) {
    super(name);
    this.name = 'UnknownQuery';
    this.kind = 'unknown-query';
  }
}

/** The host refused a write: `kind` is `invalid-json`, `invalid-key` or `read-only`. */
export class ViewError extends Error {
  constructor(kind, detail = '') {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = 'ViewError';
    this.kind = kind;
    this.detail = detail;
  }
}

/** Where `log.*` goes: set by the component glue or the test host. */
let logSink = null;

/** Replace the log sink; returns the previous one. */
export function setLogSink(sink) {
  const previous = logSink;
  logSink = sink;
  return previous;
}

function emit(level, message) {
  if (logSink) logSink(level, String(message));
}

/** Structured logging into the plugin's log (`GET /plugins/{name}/logs`). */
export const log = {
  trace: (m) => emit('trace', m),
  debug: (m) => emit('debug', m),
  info: (m) => emit('info', m),
  warn: (m) => emit('warn', m),
  error: (m) => emit('error', m),
};

/** One recorded event; `data` and `metadata` are parsed from JSON on first use. */
export class Event {
  #data;
  #metadata;

  constructor(event) {
    // Member reads rather than a destructuring pattern: one event per call of this, so the
    // interpreter's cost of the pattern shows.
    this.position = Number(event.position);
    this.streamId = event.streamId;
    this.streamVersion = Number(event.streamVersion);
    this.eventType = event.eventType;
    this.rawData = event.data;
    this.rawMetadata = event.metadata ?? '{}';
    this.recordedAt = Number(event.recordedAt ?? 0);
    this.id = event.id ?? '';
  }

  /** The payload as JavaScript values. */
  get data() {
    if (this.#data === undefined) this.#data = parse(this.rawData);
    return this.#data;
  }

  /** The metadata as JavaScript values (`{}` when the writer gave none). */
  get metadata() {
    if (this.#metadata === undefined) this.#metadata = parse(this.rawMetadata);
    return this.#metadata;
  }
}

/**
 * The events of a batch as `handle` receives it from `prism:projection@0.5.0`: packed in one
 * byte buffer, little-endian and unaligned. The number of events (u32), then each event's
 * `position`, `stream-version` and `recorded-at` (u64 each), then its `stream-id`,
 * `event-type`, `data`, `metadata` and `id`, each a byte length (u32) and that many bytes of
 * UTF-8. One buffer crosses into the component instead of five strings per event, and the
 * engine's own `TextDecoder` decodes them. Throws on a buffer that is not such a batch.
 */
export function unpackBatch(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  // Written out, no inner loop or closure: this runs once per event in the component's
  // interpreter, where each costs more than the decoding. A read past the end of `view`
  // throws a RangeError; the string lengths are checked here.
  const count = view.getUint32(0, true);
  // The smallest event: three u64s and five empty strings.
  if (count > (end - 4) / 44) throw new RangeError(`the batch cannot hold ${count} events`);
  const events = new Array(count);
  let at = 4;
  let n = 0;
  for (let i = 0; i < count; i++) {
    const position = view.getUint32(at, true) + view.getUint32(at + 4, true) * 4294967296;
    const streamVersion = view.getUint32(at + 8, true) + view.getUint32(at + 12, true) * 4294967296;
    const recordedAt = view.getUint32(at + 16, true) + view.getUint32(at + 20, true) * 4294967296;
    n = view.getUint32(at + 24, true);
    at += 28;
    if (n > end - at) throw new RangeError(`event ${i} is cut short`);
    const streamId = utf8.decode(bytes.subarray(at, (at += n)));
    n = view.getUint32(at, true);
    at += 4;
    if (n > end - at) throw new RangeError(`event ${i} is cut short`);
    const eventType = utf8.decode(bytes.subarray(at, (at += n)));
    n = view.getUint32(at, true);
    at += 4;
    if (n > end - at) throw new RangeError(`event ${i} is cut short`);
    const data = utf8.decode(bytes.subarray(at, (at += n)));
    n = view.getUint32(at, true);
    at += 4;
    if (n > end - at) throw new RangeError(`event ${i} is cut short`);
    const metadata = utf8.decode(bytes.subarray(at, (at += n)));
    n = view.getUint32(at, true);
    at += 4;
    if (n > end - at) throw new RangeError(`event ${i} is cut short`);
    const id = utf8.decode(bytes.subarray(at, (at += n)));
    events[i] = new Event({ position, streamId, streamVersion, eventType, data, metadata, recordedAt, id });
  }
  if (at !== end) throw new RangeError(`${end - at} bytes follow the last event`);
  return events;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export const MAX_KEY_LEN = 1024;

function utf8Length(text) {
  let n = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/** Refuse a key the host would refuse, so the failing event is the one named. */
export function checkKey(key) {
  if (typeof key !== 'string') throw new TypeError(`view keys are strings, not ${typeof key}`);
  if (key === '') throw new ViewError('invalid-key', 'the key is empty');
  // No UTF-16 code unit takes more than 3 bytes in UTF-8.
  if (key.length <= MAX_KEY_LEN / 3) return;
  const size = utf8Length(key);
  if (size > MAX_KEY_LEN) {
    throw new ViewError('invalid-key', `the key is ${size} bytes long; at most ${MAX_KEY_LEN} are allowed`);
  }
}

/** The smallest string above every string that starts with `prefix`, or undefined. */
function prefixEnd(prefix) {
  const chars = Array.from(prefix);
  while (chars.length > 0) {
    const last = chars[chars.length - 1].codePointAt(0);
    if (last < 0x10ffff) {
      chars[chars.length - 1] = String.fromCodePoint(last + 1);
      return chars.join('');
    }
    chars.pop();
  }
  return undefined;
}

// Host keys are compared as UTF-8 bytes; JavaScript compares UTF-16 code units. The two
// orders agree except around surrogate pairs, so compare code points.
function compareKeys(a, b) {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done === y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0) - y.value.codePointAt(0);
    if (d !== 0) return d;
  }
}

/**
 * The projection's keyspace as JSON values, with this batch's reads cached and writes
 * buffered. Reads see the batch's own earlier writes; nothing reaches the host until the
 * batch has been applied in full.
 */
export class View {
  #host;
  #readOnly;
  /** key -> JSON text, or null when known absent. */
  #cache = new Map();
  /** key -> JSON text, or null for a delete, in first-write order. */
  #pending = new Map();

  constructor(host, { readOnly = false } = {}) {
    this.#host = host;
    this.#readOnly = readOnly;
  }

  /** Fetch every not-yet-cached key in one `get-many` crossing. */
  prefetch(keys) {
    // Plain loops: in a component's interpreter a callback or an iterator step per key
    // costs more than the key's own work.
    const cache = this.#cache;
    const seen = new Set();
    const missing = [];
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (!cache.has(k) && !seen.has(k)) {
        seen.add(k);
        missing.push(k);
      }
    }
    if (missing.length === 0) return;
    const values = this.#host.getMany(missing);
    for (let i = 0; i < missing.length; i++) cache.set(missing[i], values[i] ?? null);
  }

  /** The JSON text at `key`, or null. */
  getRaw(key) {
    const raw = this.#cache.get(key);
    if (raw !== undefined) return raw;
    this.prefetch([key]);
    return this.#cache.get(key);
  }

  /** The document at `key`, or `fallback` when absent. Each call parses afresh. */
  get(key, fallback = null) {
    const raw = this.getRaw(key);
    return raw === null ? fallback : parse(raw);
  }

  has(key) {
    return this.getRaw(key) !== null;
  }

  /**
   * `[key, value]` pairs with `start <= key < end` in key order, at most `limit`,
   * including this batch's unflushed writes. `{prefix}` selects keys starting with it.
   */
  scan({ start = '', end, limit = 100, prefix } = {}) {
    if (prefix !== undefined) {
      if (compareKeys(prefix, start) > 0) start = prefix;
      end = prefixEnd(prefix);
    }
    if (limit <= 0) return [];
    const inRange = (k) => compareKeys(k, start) >= 0 && (end === undefined || compareKeys(k, end) < 0);
    let pending = [...this.#pending].filter(([k]) => inRange(k));
    const deletes = pending.filter(([, v]) => v === null).length;
    const ask = limit + deletes;
    const entries = this.#host.scan(start, end, ask);
    const merged = new Map(entries);
    if (entries.length >= ask) {
      // The host range was cut: only keys up to its last one are fully known.
      const last = entries[entries.length - 1][0];
      pending = pending.filter(([k]) => compareKeys(k, last) <= 0);
    }
    for (const [k, v] of pending) merged.set(k, v);
    return [...merged]
      .filter(([, v]) => v !== null)
      .sort(([a], [b]) => compareKeys(a, b))
      .slice(0, limit)
      .map(([k, v]) => [k, parse(v)]);
  }

  /** Store `value` (anything JSON can hold) at `key`. */
  put(key, value) {
    this.#checkWritable();
    checkKey(key);
    const raw = dumps(value);
    this.#cache.set(key, raw);
    this.#pending.set(key, raw);
  }

  /** Remove `key` (removing an absent key is not an error). */
  delete(key) {
    this.#checkWritable();
    checkKey(key);
    this.#cache.set(key, null);
    this.#pending.set(key, null);
  }

  /**
   * `put(key, fn(current ?? copy of fallback))` and return the new value; a `fn` that
   * returns null or undefined deletes the key.
   */
  update(key, fn, fallback = null) {
    let current = this.get(key);
    if (current === null) current = fallback === null ? null : parse(dumps(fallback));
    const next = fn(current);
    if (next === null || next === undefined) {
      this.delete(key);
      return null;
    }
    this.put(key, next);
    return next;
  }

  /** This batch's writes in order: `[key, jsonText]` puts and `[key, null]` deletes. */
  pendingWrites() {
    return [...this.#pending];
  }

  #checkWritable() {
    if (this.#readOnly) throw new ViewError('read-only', 'the view is read-only inside a query');
  }
}

function describeError(e) {
  if (e instanceof Error) return e.message ? `${e.name}: ${e.message}` : e.name;
  return `thrown: ${String(e)}`;
}

/**
 * Describe a projection. Fields: `name`, `version`, `eventTypes` (default `[]`: all),
 * `handle(view, event)`, optional `keys(event)` (keys `handle` will read, prefetched for the
 * whole batch in one crossing) and optional `queries: {name(view, params) {...}}`: the
 * description lists exactly these names, so a query is declared exactly when it is answered.
 */
export function defineProjection(definition) {
  const { name, version, handle } = definition;
  if (typeof name !== 'string' || name === '') throw new TypeError('defineProjection: `name` is required');
  if (typeof version !== 'string') throw new TypeError('defineProjection: `version` is required');
  if (typeof handle !== 'function') throw new TypeError('defineProjection: `handle(view, event)` is required');
  for (const [query, answer] of Object.entries(definition.queries ?? {})) {
    if (typeof answer !== 'function') {
      throw new TypeError(`defineProjection: query \`${query}\` must be a function (view, params) => answer`);
    }
  }
  return Object.freeze({
    name,
    version,
    eventTypes: Object.freeze([...(definition.eventTypes ?? [])]),
    keys: definition.keys ?? null,
    handle,
    queries: Object.freeze({ ...(definition.queries ?? {}) }),
    indexes: Object.freeze((definition.indexes ?? []).map(checkIndex)),
  });
}

const FIELD_KINDS = ['number', 'string', 'boolean', 'timestamp', 'any'];

/**
 * A secondary index the host keeps in step with the documents: `{name, fields: [{path, kind}],
 * unique?, prefix?}`, `kind` one of number, string, boolean, timestamp, any. Query it over HTTP
 * with `GET /views/{plugin}/_find?index=NAME&...`.
 */
function checkIndex(index) {
  if (typeof index?.name !== 'string' || !Array.isArray(index.fields) || index.fields.length === 0) {
    throw new TypeError('defineProjection: an index needs a `name` and `fields: [{path, kind}]`');
  }
  for (const f of index.fields) {
    if (typeof f?.path !== 'string' || !FIELD_KINDS.includes(f.kind)) {
      throw new TypeError(`defineProjection: index ${index.name}: a field needs a \`path\` and a \`kind\` (${FIELD_KINDS.join(', ')})`);
    }
  }
  return Object.freeze({
    name: index.name,
    fields: index.fields.map((f) => ({ path: f.path, kind: f.kind })),
    unique: Boolean(index.unique),
    prefix: index.prefix ?? undefined,
  });
}

/** Drives one projection against one host (`getMany`, `writeMany`, `scan`). */
export class Runtime {
  constructor(projection, host) {
    this.projection = defineProjection(projection);
    this.host = host;
  }

  describe() {
    const p = this.projection;
    return {
      name: p.name,
      version: p.version,
      eventTypes: [...p.eventTypes],
      queries: Object.keys(p.queries).sort(),
      indexes: p.indexes.map((i) => ({ ...i, fields: i.fields.map((f) => ({ ...f })) })),
    };
  }

  /** Apply `events` (`Event`s); returns undefined, or `{index, message}` and writes nothing. */
  handle(events) {
    const p = this.projection;
    const view = new View(this.host);
    if (p.keys) {
      const keys = [];
      for (let i = 0; i < events.length; i++) {
        try {
          const named = p.keys(events[i]) ?? [];
          if (Array.isArray(named)) {
            for (let j = 0; j < named.length; j++) keys.push(named[j]);
          } else {
            for (const key of named) keys.push(key);
          }
        } catch (e) {
          return { index: i, message: `keys(): ${describeError(e)}` };
        }
      }
      if (keys.length > 0) view.prefetch(keys);
    }
    for (let i = 0; i < events.length; i++) {
      try {
        p.handle(view, events[i]);
      } catch (e) {
        return { index: i, message: describeError(e) };
      }
    }
    const writes = view.pendingWrites();
    if (writes.length > 0) {
      try {
        this.host.writeMany(writes);
      } catch (e) {
        if (e instanceof ViewError) return { index: undefined, message: `write refused: ${e.message}` };
        throw e;
      }
    }
    return undefined;
  }

  /** Answer a named query: returns JSON text or throws a `QueryError`. */
  query(name, paramsJson) {
    const fn = Object.hasOwn(this.projection.queries, name) ? this.projection.queries[name] : undefined;
    if (typeof fn !== 'function') throw new UnknownQuery(name);
    let params;
    try {
      params = paramsJson ? JSON.parse(paramsJson) : {};
    } catch (e) {
      throw new InvalidParams(`params are not JSON: ${e.message}`);
    }
    try {
      return dumps(fn(new View(this.host, { readOnly: true }), params));
    } catch (e) {
      if (e instanceof QueryError) throw e;
      throw new QueryError(describeError(e));
    }
  }
}
