// The glue between `Runtime` and the `projector` world of `prism:projection@0.5.0`, used only
// inside the component. `handle` receives its batch packed in one buffer (`unpackBatch`).
//
// componentize-js binds the WIT imports as ES modules named after their interfaces and
// exports the object this module's `exportProjection` returns as the `projection`
// interface. WIT results are exceptions on this side of the boundary: an import's error
// arrives as a thrown value whose `payload` is the WIT error, and an export answers an
// error by throwing `{ payload }`.

import { getMany, writeMany, scan } from 'prism:projection/view@0.5.0';
import { log as witLog } from 'prism:projection/logging@0.5.0';

import { QueryError, Runtime, ViewError, setLogSink, unpackBatch } from './index.js';

/** `Runtime`'s host over the `view` import: every method is one boundary crossing. */
const witHost = {
  getMany(keys) {
    const values = getMany(keys);
    for (let i = 0; i < values.length; i++) values[i] ??= null;
    return values;
  },
  writeMany(writes) {
    // Plain loops and indexes: the component's interpreter pays for each callback and each
    // destructuring pattern, and a batch has thousands of writes.
    const batch = new Array(writes.length);
    for (let i = 0; i < writes.length; i++) {
      const key = writes[i][0];
      const value = writes[i][1];
      batch[i] = value === null ? { tag: 'delete', val: key } : { tag: 'put', val: { key, value } };
    }
    try {
      writeMany(batch);
    } catch (e) {
      const err = e?.payload ?? e;
      throw new ViewError(err?.tag ?? 'view-error', typeof err?.val === 'string' ? err.val : String(e?.message ?? ''));
    }
  },
  scan(start, end, limit) {
    return scan(start, end, Math.min(limit, 0xffffffff)).map((e) => [e.key, e.value]);
  },
};

function format(args) {
  return args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ');
}

function safeJson(value) {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Send `console.*` to the plugin's log: the host grants the component no stdio. */
function installConsole() {
  const to = (level) => (...args) => witLog(level, format(args));
  globalThis.console = {
    log: to('info'),
    info: to('info'),
    debug: to('debug'),
    trace: to('trace'),
    warn: to('warn'),
    error: to('error'),
  };
}

/**
 * The component is built with every WASI feature of the engine off. What would need one
 * then either traps the whole instance (timers, `performance.now()`) or quietly answers
 * with the build machine's state (`Date.now()` is frozen at build time). A projection must
 * be replayable anyway, so make each of them throw a plain error that names the
 * alternative: the batch is refused with that message instead of a trap or a wrong answer.
 */
function installSandbox() {
  const unavailable = (what, instead) =>
    function () {
      throw new Error(`${what} is not available in a Prism projection${instead ? `: ${instead}` : ''}`);
    };
  for (const timer of ['setTimeout', 'setInterval', 'setImmediate']) {
    globalThis[timer] = unavailable(`${timer}()`, 'a projection handles each batch synchronously');
  }
  globalThis.fetch = unavailable('fetch()', 'a projection sees only its events and its view');
  globalThis.performance = { now: unavailable('performance.now()') };
  const clock = unavailable('the clock', 'use event.recordedAt');
  const BuildDate = Date;
  class ProjectionDate extends BuildDate {
    constructor(...args) {
      if (args.length === 0) clock();
      super(...args);
    }
  }
  ProjectionDate.now = clock;
  globalThis.Date = new Proxy(ProjectionDate, {
    // `Date()` called as a function returns the current time as a string.
    apply: clock,
  });
}

/** The object componentize-js exports as the `projection` interface. */
export function exportProjection(definition) {
  const runtime = new Runtime(definition, witHost);
  setLogSink((level, message) => witLog(level, message));
  installConsole();
  installSandbox();
  return {
    describe() {
      // The JavaScript SDK neither emits events nor enqueues requests (yet).
      return { ...runtime.describe(), emits: [], targets: [] };
    },
    handle(batch) {
      let events;
      try {
        events = unpackBatch(batch);
      } catch (e) {
        throw { payload: { index: undefined, message: `the host sent a malformed batch: ${e.message}` } };
      }
      const failure = runtime.handle(events);
      if (failure !== undefined) {
        throw { payload: { index: failure.index, message: failure.message } };
      }
    },
    query(name, params) {
      try {
        return runtime.query(name, params);
      } catch (e) {
        const kind = e instanceof QueryError ? e.kind : 'failed';
        throw { payload: { tag: kind, val: e instanceof Error ? e.message : String(e) } };
      }
    },
  };
}
