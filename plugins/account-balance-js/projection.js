// `account-balance` in JavaScript: the canonical Prism demo, document for document the
// same as the Rust plugin (`plugins/account-balance`).
//
// One document per account stream (`account-<id>`), keyed by the stream id:
//
//   {"owner": "ann", "balance": 75, "transactions": 2}
//
// Amounts are JSON integers in the currency's minor unit; a fractional amount (or one that
// is not a number, or one written as a float such as `10.0`, as Rust's serde refuses it)
// refuses the batch rather than being rounded, and so does a balance that would leave the
// 64-bit range the Rust plugin keeps it in (the SDK reads and writes integers beyond 2^53
// as BigInt, so none is rounded). Money moved on a stream before its
// `AccountOpened` still counts: the owner is `null` until the account is opened. A
// withdrawal may overdraw: the read model reports what happened.
//
// One query, as in the Rust plugin: `richest?limit=N`, the `N` (default 10, at most 100)
// accounts with the highest balance, highest first (ties by key), as
// `[{"account", "balance"}]`, from the first 10,000 documents.
import { InvalidParams, defineProjection, rawMember } from '../../guest-sdk/js/src/index.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const RICHEST_SCAN = 10_000;
const RICHEST_MAX_LIMIT = 100;

function object(event) {
  const data = event.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new TypeError(`${event.eventType} data must be a JSON object`);
  }
  return data;
}

function owner(event) {
  const { owner } = object(event);
  if (typeof owner !== 'string') throw new TypeError(`AccountOpened owner must be a string, not ${owner}`);
  return owner;
}

// A digit followed by `.`, `e` or `E`: where a number with a fraction or an exponent is
// written. A text without one writes every number as a plain integer.
const FRACTION_OR_EXPONENT = /\d[.eE]/;

/** The amount: a number while that is exact (a safe integer), a BigInt beyond. */
function amount(event) {
  const { amount: parsed } = object(event);
  if (Number.isSafeInteger(parsed) && !FRACTION_OR_EXPONENT.test(event.rawData)) return parsed;
  // The literal as written: parsing would read `10.0` as the integer 10.
  const literal = rawMember(event.rawData, 'amount');
  if (literal !== undefined && /^-?\d{1,15}$/.test(literal)) return Number(literal);
  if (literal === undefined || !/^-?\d+$/.test(literal) || BigInt(literal) < I64_MIN || BigInt(literal) > I64_MAX) {
    throw new TypeError(`${event.eventType} amount must be a 64-bit integer, not ${literal}`);
  }
  return BigInt(literal);
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A BigInt as a plain number when that is exact, so documents hold ordinary numbers. */
function integer(n) {
  return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n;
}

/**
 * `balance` moved by `moved`, exactly: in plain numbers while both and the result are safe
 * integers (the sum of two safe integers is exact when it is one), else in BigInt.
 */
function move(eventType, balance, moved) {
  if (typeof balance === 'number' && typeof moved === 'number') {
    const after = eventType === 'Deposited' ? balance + moved : balance - moved;
    if (Number.isSafeInteger(after)) return after;
  }
  const before = BigInt(balance);
  return eventType === 'Deposited' ? before + BigInt(moved) : before - BigInt(moved);
}

export default defineProjection({
  name: 'account-balance',
  version: '0.1.0',
  eventTypes: ['AccountOpened', 'Deposited', 'Withdrawn'],

  keys: (event) => [event.streamId],

  handle(view, event) {
    const key = event.streamId;
    const account = view.get(key) ?? { owner: null, balance: 0, transactions: 0 };
    switch (event.eventType) {
      case 'AccountOpened':
        account.owner = owner(event);
        break;
      case 'Deposited':
      case 'Withdrawn': {
        const moved = amount(event);
        const after = move(event.eventType, account.balance, moved);
        if (typeof after === 'bigint' && (after < I64_MIN || after > I64_MAX)) {
          throw new RangeError(
            `${event.eventType} of ${moved} at position ${event.position} overflows the balance ${account.balance} of ${key}`,
          );
        }
        account.balance = typeof after === 'bigint' ? integer(after) : after;
        account.transactions += 1;
        break;
      }
      default:
        return; // not declared, so the host never sends it
    }
    // Field order as the Rust plugin writes it, so the documents match byte for byte.
    view.put(key, { owner: account.owner, balance: account.balance, transactions: account.transactions });
  },

  queries: {
    richest(view, params) {
      const limit = params.limit ?? '10';
      if (!/^\d+$/.test(limit)) throw new InvalidParams(`\`limit\` must be a number, not ${limit}`);
      if (Number(limit) > RICHEST_MAX_LIMIT) throw new InvalidParams(`\`limit\` is at most ${RICHEST_MAX_LIMIT}`);
      return view
        .scan({ limit: RICHEST_SCAN })
        .map(([account, doc]) => ({ account, balance: doc.balance }))
        .sort((a, b) => (a.balance === b.balance ? byKey(a.account, b.account) : a.balance > b.balance ? -1 : 1))
        .slice(0, Number(limit));
    },
  },
});

/** Keys in the host's order: by code point, which is UTF-8 byte order. */
function byKey(a, b) {
  const x = [...a].map((c) => c.codePointAt(0));
  const y = [...b].map((c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
