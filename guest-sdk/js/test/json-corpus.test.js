// The JavaScript SDK decodes every document the log accepts to the value the Rust SDK
// decodes. The corpus (tests/data/json-corpus.jsonl at the repository root) is generated
// and checked by the host's tests (`host/src/log/json_corpus.rs`), which explain the
// canonical form compared here: each accepted document carries the canonical form of what
// the Rust SDK decoded. `npm test` (or `node --test test/`) from guest-sdk/js.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Event } from '../src/index.js';

const CORPUS = new URL('../../../tests/data/json-corpus.jsonl', import.meta.url);

const TWO_63 = 2n ** 63n;
const TWO_64 = 2n ** 64n;

function canonical(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return String(value);
    case 'bigint':
      return value >= -TWO_63 && value < TWO_64 ? value.toString() : canonicalDouble(Number(value));
    case 'number':
      return canonicalDouble(value);
    case 'string':
      return canonicalString(value);
    default:
      if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
      return `{${Object.keys(value)
        .map((k) => [canonicalString(k), canonical(value[k])])
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}:${v}`)
        .join(',')}}`;
  }
}

function canonicalString(text) {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0x22) out += '\\"';
    else if (unit === 0x5c) out += '\\\\';
    else if (unit >= 0x20 && unit <= 0x7e) out += text[i];
    else out += `\\u${unit.toString(16).padStart(4, '0')}`;
  }
  return `${out}"`;
}

function canonicalDouble(d) {
  if (Number.isInteger(d) && Math.abs(d) < 2 ** 64) return BigInt(d).toString();
  // Number::toString gives the shortest digits that round-trip, in any notation.
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(d));
  const [, sign, whole, fraction = '', exponent = '0'] = m;
  let digits = (whole + fraction).replace(/^0+/, '');
  let e = Number(exponent) - fraction.length;
  while (digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    e += 1;
  }
  return `${sign}${digits}e${e}`;
}

const corpus = readFileSync(CORPUS, 'utf8')
  .split('\n')
  .filter((line) => line !== '')
  .map((line) => JSON.parse(line));

test('accepted documents decode as in Rust', () => {
  const accepted = corpus.filter((entry) => entry.accepted);
  assert.ok(accepted.length > 100);
  for (const entry of accepted) {
    const event = new Event({ position: 1, streamId: 'corpus', streamVersion: 0, eventType: 'Corpus', data: entry.text });
    assert.equal(canonical(event.data), entry.canonical, entry.text.slice(0, 200));
  }
});

test('canonical numbers', () => {
  assert.equal(
    canonical([-0, 1.0, 1e19, 1e20, 1.5, 18446744073709551616n]),
    '[0,1,10000000000000000000,1e20,15e-1,18446744073709552e3]',
  );
});
