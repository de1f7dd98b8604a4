// Tests of the JavaScript SDK itself: the batch engine, the cached view and the harness.
// `npm test` (or `node --test test/`) from guest-sdk/js.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import {
  unpackBatch,
  InvalidParams,
  QueryError,
  Runtime,
  UnknownQuery,
  ViewError,
  checkKey,
  defineProjection,
  dumps,
  log,
  parse,
  rawMember,
} from '../src/index.js';
import { HandleFailed, Harness, InMemoryHost, event } from '../src/testing.js';

/** Counts events per stream; refuses `Bad`; answers `count`, `streams` and `broken`. */
const counts = defineProjection({
  name: 'counts',
  version: '1.2.3',
  keys: (e) => [e.streamId],
  handle(view, e) {
    if (e.eventType === 'Bad') throw new Error('bad event');
    if (e.eventType === 'Forget') return view.delete(e.streamId);
    log.info(`counting ${e.streamId}`);
    view.update(e.streamId, (d) => ({ ...d, count: d.count + 1 }), { count: 0 });
  },
  queries: {
    count(view, params) {
      if (params.stream === undefined) throw new InvalidParams('stream is required');
      return view.get(params.stream)?.count ?? 0;
    },
    streams(view, params) {
      return view.scan({ prefix: params.prefix ?? '', limit: Number(params.limit ?? 100) }).map(([k]) => k);
    },
    broken(view, params) {
      view.put('x', 1);
    },
  },
});

/** Writes in a batch, then records what `scan` sees in the same batch. */
let seen;
const scanProbe = defineProjection({
  name: 'scan-probe',
  version: '0',
  handle(view, e) {
    for (const [op, ...args] of e.data.ops) {
      if (op === 'put') view.put(args[0], args[1]);
      else if (op === 'delete') view.delete(args[0]);
      else seen = view.scan({ start: args[0], end: args[1] ?? undefined, limit: args[2] });
    }
  },
});

describe('runtime', () => {
  test('the description lists event types and queries', () => {
    assert.deepEqual(new Harness(counts).describe(), {
      name: 'counts',
      version: '1.2.3',
      eventTypes: [],
      queries: ['broken', 'count', 'streams'],
      indexes: [],
    });
  });

  test('indexes are declared with their fields', () => {
    const products = defineProjection({
      name: 'products',
      version: '1',
      indexes: [{ name: 'by-stock', fields: [{ path: 'stock', kind: 'number' }], prefix: 'product-' }],
      handle() {},
    });
    assert.deepEqual(new Harness(products).describe().indexes, [
      { name: 'by-stock', fields: [{ path: 'stock', kind: 'number' }], unique: false, prefix: 'product-' },
    ]);
    assert.throws(() => defineProjection({ name: 'x', version: '1', handle() {}, indexes: [{ name: 'i', fields: [{ path: 'a', kind: 'colour' }] }] }));
  });

  test('a batch is one getMany and one writeMany', () => {
    const h = new Harness(counts).given(Array.from({ length: 200 }, (_, n) => event(`s-${n % 5}`, 'Seen')));
    assert.equal(h.host.crossings, 2);
    assert.deepEqual(h.view('s-0'), { count: 40 });
  });

  test('a failing event is reported by index and its batch writes nothing', () => {
    const host = new InMemoryHost();
    const runtime = new Runtime(counts, host);
    const log = new Harness(counts);
    const error = runtime.handle(['Seen', 'Seen', 'Bad'].map((t) => log.append('s', t)));
    assert.deepEqual(error, { index: 2, message: 'Error: bad event' });
    assert.equal(host.data.size, 0);
  });

  test('thrown non-errors are reported too', () => {
    const h = new Harness(defineProjection({ name: 'x', version: '0', handle() { throw 'nope'; } }));
    assert.deepEqual(h.when([event('s', 'A')]), { index: 0, message: 'thrown: nope' });
  });

  test('given throws when the history does not apply', () => {
    assert.throws(() => new Harness(counts).given([event('s', 'Bad')]), HandleFailed);
  });

  test('view keys follow the shared rule', () => {
    // tests/data/view-keys.json: the cases the host and every SDK test alike.
    const cases = JSON.parse(readFileSync(new URL('../../../tests/data/view-keys.json', import.meta.url), 'utf8'));
    const keys = (kind) => cases[kind].map(({ key, times = 1 }) => key.repeat(times));
    for (const key of keys('accepted')) {
      checkKey(key);
      new InMemoryHost().writeMany([[key, '1']]);
    }
    for (const key of keys('refused')) {
      assert.throws(() => checkKey(key), ViewError, key.slice(0, 20));
      assert.throws(() => new InMemoryHost().writeMany([[key, '1']]), ViewError, key.slice(0, 20));
    }
  });

  test('a query that is not a function is refused when defined', () => {
    assert.throws(
      () => defineProjection({ name: 'q', version: '1', handle() {}, queries: { top: 'nope' } }),
      /query `top` must be a function/,
    );
  });

  test('a key the host would refuse fails the event that wrote it', () => {
    const h = new Harness(counts);
    for (const key of ['', 'x'.repeat(1025), 'é'.repeat(513)]) {
      const error = h.when([event('ok', 'Seen'), event(key, 'Seen')]);
      assert.equal(error.index, 1);
      assert.match(error.message, /invalid-key/);
    }
    assert.deepEqual(h.when([event('é'.repeat(512), 'Seen')]), undefined);
    // `_` is reserved in the HTTP API's paths, not in the view.
    assert.deepEqual(h.when([event('_under', 'Seen')]), undefined);
    assert.deepEqual(h.view('_under'), { count: 1 });
  });

  test('a write the host refuses fails the batch without an index', () => {
    const host = new InMemoryHost();
    host.writeMany = () => {
      throw new ViewError('invalid-json', 'no');
    };
    const runtime = new Runtime(counts, host);
    const error = runtime.handle([new Harness(counts).append('s', 'Seen')]);
    assert.deepEqual(error, { index: undefined, message: 'write refused: invalid-json: no' });
  });

  test("reads see the batch's own writes and deletes", () => {
    const h = new Harness(counts).given([event('s', 'Seen'), event('s', 'Forget'), event('s', 'Seen')]);
    assert.deepEqual(h.view('s'), { count: 1 });
  });

  test('undeclared event types never reach the projection', () => {
    const h = new Harness({ ...counts, eventTypes: ['Seen'] }).given([
      event('s', 'Seen'),
      event('s', 'Bad'),
      event('s', 'Seen'),
    ]);
    assert.deepEqual(h.view('s'), { count: 2 });
    assert.deepEqual(h.events.map((e) => e.position), [1, 2, 3]);
  });

  test('events parse their data and metadata', () => {
    const e = new Harness(counts).append('s', 'Seen', { a: [1, 2] }, { user: 'ann' });
    assert.deepEqual([e.data, e.metadata, e.streamVersion, e.position], [{ a: [1, 2] }, { user: 'ann' }, 0, 1]);
  });

  test('logs reach the host', () => {
    assert.deepEqual(new Harness(counts).given([event('s', 'Seen')]).logs, [['info', 'counting s']]);
  });
});

describe('json', () => {
  test('integers beyond 2^53 round-trip exactly', () => {
    const text = '{"a":9223372036854775807,"b":[-9223372036854775808,1.5,"12345678901234567890"]}';
    const value = parse(text);
    assert.equal(value.a, 9223372036854775807n);
    assert.equal(value.b[2], '12345678901234567890');
    assert.equal(dumps(value), text);
  });

  test('rawMember tells how a member was written', () => {
    const text = '{ "a" : 10.0, "b": {"a": 1}, "c": "x\\"y", "d": 1e2 }';
    assert.equal(rawMember(text, 'a'), '10.0');
    assert.equal(rawMember(text, 'b'), '{"a": 1}');
    assert.equal(rawMember(text, 'c'), '"x\\"y"');
    assert.equal(rawMember(text, 'd'), '1e2');
    assert.equal(rawMember(text, 'e'), undefined);
    assert.equal(rawMember('[1]', 'a'), undefined);
    assert.throws(() => rawMember('{"a": 1', 'a'), SyntaxError);
  });

  test('the exact parser rejects what JSON.parse rejects', () => {
    assert.throws(() => parse('{"a":12345678901234567,}'), SyntaxError);
    assert.throws(() => parse('[12345678901234567'), SyntaxError);
  });
});

describe('scan', () => {
  const scanAfter = (stored, ops) => {
    const h = new Harness(scanProbe);
    for (const [k, v] of Object.entries(stored)) h.host.data.set(k, dumps(v));
    h.given([event('s', 'Ops', { ops })]);
    return seen;
  };

  test('merges unflushed puts and deletes in key order', () => {
    const out = scanAfter({ a: 1, b: 2, c: 3, d: 4 }, [['put', 'bb', 22], ['delete', 'b'], ['delete', 'c'], ['scan', 'a', null, 3]]);
    assert.deepEqual(out, [['a', 1], ['bb', 22], ['d', 4]]);
  });

  test('respects end and limit with pending writes past the host page', () => {
    const stored = Object.fromEntries(Array.from({ length: 10 }, (_, n) => [`k${n}`, n]));
    assert.deepEqual(scanAfter(stored, [['put', 'k95', 95], ['delete', 'k0'], ['scan', 'k', 'k9', 3]]), [
      ['k1', 1],
      ['k2', 2],
      ['k3', 3],
    ]);
    assert.deepEqual(scanAfter(stored, [['put', 'k10', 10], ['scan', 'k1', 'k2', 5]]), [
      ['k1', 1],
      ['k10', 10],
    ]);
  });
});

describe('queries', () => {
  const h = new Harness(counts).given([event('order-1', 'Seen'), event('order-2', 'Seen'), event('user-1', 'Seen')]);

  test('read the view', () => {
    assert.equal(h.query('count', { stream: 'order-1' }), 1);
    assert.deepEqual(h.query('streams', { prefix: 'order-' }), ['order-1', 'order-2']);
    assert.deepEqual(h.query('streams', { limit: 1 }), ['order-1']);
  });

  test('errors say which kind', () => {
    assert.throws(() => h.query('count'), InvalidParams);
    assert.throws(() => h.query('nope'), UnknownQuery);
    assert.throws(() => h.query('toString'), UnknownQuery);
    assert.throws(
      () => h.query('broken'),
      (e) => e instanceof QueryError && e.kind === 'failed' && /read-only/.test(e.message),
    );
  });
});

/** A batch packed as the host packs it for `prism:projection@0.5.0`. */
function pack(events) {
  const encoder = new TextEncoder();
  const parts = [];
  const u32 = (n) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    parts.push(b);
  };
  const u64 = (n) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    parts.push(b);
  };
  u32(events.length);
  for (const e of events) {
    u64(e.position);
    u64(e.streamVersion);
    u64(e.recordedAt);
    for (const text of [e.streamId, e.eventType, e.data, e.metadata, e.id]) {
      const bytes = encoder.encode(text);
      u32(bytes.length);
      parts.push(bytes);
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe('packed batch', () => {
  const events = [
    {
      position: 2 ** 40 + 7,
      streamId: 'account-é',
      streamVersion: 3,
      eventType: 'Deposited',
      data: '{"amount":10,"note":"naïve 😀"}',
      metadata: '{}',
      recordedAt: 1_700_000_000_000,
      id: '00000000-0000-4000-8000-000000000001',
    },
    { position: 8, streamId: '', streamVersion: 0, eventType: 'E', data: '', metadata: '', recordedAt: 0, id: '' },
  ];

  test('reads the events the host packed, in order', () => {
    const read = unpackBatch(pack(events));
    assert.equal(read.length, 2);
    assert.deepEqual(
      read.map((e) => [e.position, e.streamId, e.streamVersion, e.eventType, e.rawData, e.recordedAt, e.id]),
      events.map((e) => [e.position, e.streamId, e.streamVersion, e.eventType, e.data, e.recordedAt, e.id]),
    );
    assert.deepEqual(read[0].data, { amount: 10, note: 'naïve 😀' });
    assert.deepEqual(unpackBatch(pack([])), []);
    // A view of a larger buffer, as the component may be handed.
    const packed = pack(events);
    const inside = new Uint8Array(packed.length + 10);
    inside.set(packed, 5);
    assert.equal(unpackBatch(inside.subarray(5, 5 + packed.length))[0].streamId, 'account-é');
  });

  test('refuses a buffer that is not a batch', () => {
    const packed = pack(events);
    const withCount = (n) => {
      const b = packed.slice();
      new DataView(b.buffer).setUint32(0, n, true);
      return b;
    };
    const badUtf8 = pack([{ ...events[1], streamId: 'ab' }]);
    badUtf8[4 + 24 + 4] = 0xff;
    for (const [why, bytes] of [
      ['cut short in the count', packed.subarray(0, 3)],
      ['cut short in an event', packed.subarray(0, packed.length - 1)],
      ['trailing bytes', Uint8Array.of(...packed, 0)],
      ['a count the buffer cannot hold', withCount(1_000_000)],
      ['a count larger than the events', withCount(3)],
      ['bad UTF-8', badUtf8],
    ]) {
      assert.throws(() => unpackBatch(bytes), undefined, why);
    }
  });
});
