// Unit-test projections in plain Node: an in-memory host that behaves like Prism's.
//
//   import { Harness, event } from '.../guest-sdk/js/src/testing.js';
//   const h = new Harness(accountBalance).given([event('account-1', 'AccountOpened', { owner: 'ann' })]);
//   assert.deepEqual(h.view('account-1'), { owner: 'ann', balance: 0, transactions: 0 });
//   assert.equal(h.when([event('account-1', 'Deposited', { amount: 2.5 })]).index, 0);
//
// The harness numbers events as the log does (global positions from 1, stream versions
// from 0), filters them by the declared event types as the host does, and runs them
// through the same batch engine the component runs, against `InMemoryHost`, which enforces
// the host's rules: keys non-empty and at most 1024 bytes; all-or-nothing `writeMany`;
// read-only views inside queries.

import { Event, Runtime, ViewError, checkKey, dumps, parse, setLogSink } from './index.js';

const encoder = new TextEncoder();

function utf8Compare(a, b) {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** The `view` and `logging` imports over a Map; counts crossings like the real boundary. */
export class InMemoryHost {
  constructor() {
    this.data = new Map();
    this.readOnly = false;
    this.crossings = 0;
    this.logs = [];
  }

  #check(key, raw) {
    if (this.readOnly) throw new ViewError('read-only');
    checkKey(key);
    if (raw !== null) {
      try {
        parse(raw);
      } catch (e) {
        throw new ViewError('invalid-json', e.message);
      }
    }
  }

  getMany(keys) {
    this.crossings++;
    return keys.map((k) => this.data.get(k) ?? null);
  }

  writeMany(writes) {
    this.crossings++;
    for (const [key, raw] of writes) this.#check(key, raw);
    for (const [key, raw] of writes) {
      if (raw === null) this.data.delete(key);
      else this.data.set(key, raw);
    }
  }

  scan(start, end, limit) {
    this.crossings++;
    return [...this.data.keys()]
      .filter((k) => utf8Compare(k, start) >= 0 && (end === undefined || end === null || utf8Compare(k, end) < 0))
      .sort(utf8Compare)
      .slice(0, limit)
      .map((k) => [k, this.data.get(k)]);
  }

  log(level, message) {
    this.logs.push([level, message]);
  }
}

/** `Harness.given` saw the projection refuse an event: a test's history should apply. */
export class HandleFailed extends Error {
  constructor(error) {
    super(`the projection refused a given event at index ${error.index}: ${error.message}`);
    this.name = 'HandleFailed';
    this.error = error;
  }
}

/** A new event for `Harness.given`/`when`; `data` and `metadata` are values or JSON text. */
export function event(streamId, eventType, data = {}, metadata = {}) {
  return { streamId, eventType, data, metadata };
}

/**
 * A projection, an in-memory keyspace and a little event log, for given/when/then tests.
 *
 * Events are appended to the log; those whose type the projection does not declare never
 * reach it (their positions still count, as in the host). The rest are applied in batches
 * as the host applies them: all or nothing, and after a failing event the events before it
 * once more, on their own.
 */
export class Harness {
  #versions = new Map();

  constructor(projection, { batchSize } = {}) {
    if (batchSize !== undefined && !(batchSize >= 1)) throw new RangeError('a batch holds at least one event');
    this.host = new InMemoryHost();
    this.runtime = new Runtime(projection, this.host);
    this.batchSize = batchSize;
    /** Every event appended so far, including those the projection never saw. */
    this.events = [];
  }

  /** `[level, message]` pairs the projection logged. */
  get logs() {
    return this.host.logs;
  }

  describe() {
    return this.runtime.describe();
  }

  /** Record an event in the harness's log as the host would, and return it. */
  append(streamId, eventType, data = {}, metadata = {}) {
    const position = this.events.length + 1;
    const version = (this.#versions.get(streamId) ?? -1) + 1;
    this.#versions.set(streamId, version);
    const e = new Event({
      position,
      streamId,
      streamVersion: version,
      eventType,
      data: typeof data === 'string' ? data : dumps(data),
      metadata: typeof metadata === 'string' ? metadata : dumps(metadata),
      recordedAt: 1_700_000_000_000 + position,
      id: `00000000-0000-4000-8000-${position.toString(16).padStart(12, '0')}`,
    });
    this.events.push(e);
    return e;
  }

  /** Given these events happened; throws `HandleFailed` if the projection refuses one. */
  given(events) {
    const error = this.when(events);
    if (error !== undefined) throw new HandleFailed(error);
    return this;
  }

  /**
   * When these events happen: applies `event(...)`s (or `[stream, type, data]` arrays);
   * returns undefined if all applied, else the `{index, message}` of the refused batch.
   */
  when(events) {
    const declared = new Set(this.runtime.projection.eventTypes);
    const wanted = [];
    for (const e of events) {
      const appended = Array.isArray(e)
        ? this.append(...e)
        : this.append(e.streamId ?? e.stream, e.eventType ?? e.type, e.data, e.metadata);
      if (declared.size === 0 || declared.has(appended.eventType)) wanted.push(appended);
    }
    const size = this.batchSize ?? Math.max(wanted.length, 1);
    for (let i = 0; i < wanted.length; i += size) {
      const error = this.#applyLikeTheHost(wanted.slice(i, i + size));
      if (error !== undefined) return error;
    }
    return undefined;
  }

  #applyLikeTheHost(batch) {
    const error = this.#run(() => this.runtime.handle(batch));
    if (error !== undefined && error.index) {
      const again = this.#run(() => this.runtime.handle(batch.slice(0, error.index)));
      if (again !== undefined) throw new Error(`the events before a failing one failed on their own: ${again.message}`);
    }
    return error;
  }

  #run(fn) {
    const previous = setLogSink((level, message) => this.host.log(level, message));
    try {
      return fn();
    } finally {
      setLogSink(previous);
    }
  }

  /** The document at `key`, or null. */
  view(key) {
    const raw = this.host.data.get(key);
    return raw === undefined ? null : parse(raw);
  }

  /** The JSON text at `key` exactly as the projection stored it, or null. */
  raw(key) {
    return this.host.data.get(key) ?? null;
  }

  /** Every key of the view (that starts with `prefix`), in order. */
  keys(prefix = '') {
    return [...this.host.data.keys()].filter((k) => k.startsWith(prefix)).sort(utf8Compare);
  }

  /** The whole keyspace as `{key: value}`, in key order. */
  views() {
    return Object.fromEntries(this.keys().map((k) => [k, parse(this.host.data.get(k))]));
  }

  /** Run a named query with string parameters; returns its parsed answer or throws a `QueryError`. */
  query(name, params = {}) {
    const strings = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
    this.host.readOnly = true;
    try {
      return parse(this.#run(() => this.runtime.query(name, JSON.stringify(strings))));
    } finally {
      this.host.readOnly = false;
    }
  }
}
