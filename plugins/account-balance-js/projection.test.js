// Unit tests of the JavaScript `account-balance`, with the SDK's in-memory harness:
// `node --test` from this folder.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { InvalidParams } from '../../guest-sdk/js/src/index.js';
import { Harness, event } from '../../guest-sdk/js/src/testing.js';
import accountBalance from './projection.js';

const I64_MAX = 2n ** 63n - 1n;
const opened = (stream, owner) => event(stream, 'AccountOpened', { owner });
const deposited = (stream, amount) => event(stream, 'Deposited', { amount });
const withdrawn = (stream, amount) => event(stream, 'Withdrawn', { amount });

describe('account-balance (JavaScript)', () => {
  test('describes itself like the Rust plugin', () => {
    assert.deepEqual(new Harness(accountBalance).describe(), {
      name: 'account-balance',
      version: '0.1.0',
      eventTypes: ['AccountOpened', 'Deposited', 'Withdrawn'],
      queries: ['richest'],
      indexes: [],
    });
  });

  test('an opened account starts empty', () => {
    const h = new Harness(accountBalance).given([opened('account-1', 'ann')]);
    assert.deepEqual(h.view('account-1'), { owner: 'ann', balance: 0, transactions: 0 });
  });

  test('deposits and withdrawals move the balance and count as transactions', () => {
    const h = new Harness(accountBalance).given([
      opened('account-42', 'ann'),
      deposited('account-42', 100),
      withdrawn('account-42', 25),
    ]);
    assert.deepEqual(h.view('account-42'), { owner: 'ann', balance: 75, transactions: 2 });
  });

  test('documents are byte for byte what the Rust plugin stores', () => {
    const h = new Harness(accountBalance).given([
      opened('account-1', 'Zoë'),
      deposited('account-1', 100),
      deposited('account-2', 5),
    ]);
    assert.equal(h.raw('account-1'), '{"owner":"Zoë","balance":100,"transactions":1}');
    assert.equal(h.raw('account-2'), '{"owner":null,"balance":5,"transactions":1}');
  });

  test('accounts are kept apart by stream', () => {
    const h = new Harness(accountBalance).given([
      opened('account-1', 'ann'),
      opened('account-2', 'bob'),
      deposited('account-1', 10),
      deposited('account-2', 20),
      deposited('account-1', 30),
    ]);
    assert.equal(h.view('account-1').balance, 40);
    assert.equal(h.view('account-2').balance, 20);
    assert.deepEqual(h.keys(), ['account-1', 'account-2']);
  });

  test('a withdrawal may overdraw', () => {
    const h = new Harness(accountBalance).given([opened('account-1', 'ann'), withdrawn('account-1', 5)]);
    assert.equal(h.view('account-1').balance, -5);
  });

  test('money moved before the account was opened still counts', () => {
    const h = new Harness(accountBalance).given([deposited('account-7', 10)]);
    assert.deepEqual(h.view('account-7'), { owner: null, balance: 10, transactions: 1 });
    assert.equal(h.when([opened('account-7', 'cy')]), undefined);
    assert.deepEqual(h.view('account-7'), { owner: 'cy', balance: 10, transactions: 1 });
  });

  test('other event types never reach the view', () => {
    const h = new Harness(accountBalance).given([
      opened('account-1', 'ann'),
      event('account-1', 'AccountFrozen', { amount: 99 }),
    ]);
    assert.equal(h.events.length, 2);
    assert.deepEqual(h.view('account-1'), { owner: 'ann', balance: 0, transactions: 0 });
  });

  test('fractional amounts are refused and leave the balance as it was', () => {
    const h = new Harness(accountBalance).given([opened('account-1', 'ann'), deposited('account-1', 10)]);
    // Written as JSON text, so that `10.0` reaches the projection as Rust would see it.
    for (const amount of ['2.5', '"10"', 'null', 'true', '10.0', '1e2']) {
      const error = h.when([event('account-1', 'Deposited', `{"amount": ${amount}}`)]);
      assert.equal(error.index, 0, `amount ${amount}`);
      assert.match(error.message, /64-bit integer/);
      assert.equal(h.view('account-1').balance, 10);
    }
  });

  test('a failing event keeps the events before it', () => {
    const h = new Harness(accountBalance).given([opened('account-1', 'ann')]);
    const error = h.when([deposited('account-1', 1), deposited('account-1', 2), deposited('account-1', 0.5)]);
    assert.equal(error.index, 2);
    assert.deepEqual(h.view('account-1'), { owner: 'ann', balance: 3, transactions: 2 });
  });

  test('64-bit balances are exact and an overflowing one is refused', () => {
    const h = new Harness(accountBalance).given([deposited('account-1', I64_MAX - 1n), deposited('account-1', 1)]);
    assert.equal(h.raw('account-1'), '{"owner":null,"balance":9223372036854775807,"transactions":2}');
    const error = h.when([deposited('account-1', 1)]);
    assert.match(error.message, /overflows/);
    assert.equal(h.view('account-1').balance, I64_MAX);
  });

  test('a malformed payload is refused', () => {
    const h = new Harness(accountBalance);
    assert.equal(h.when([event('account-1', 'AccountOpened', {})]).index, 0);
    assert.equal(h.when([event('account-1', 'Deposited', [1, 2])]).index, 0);
    assert.deepEqual(h.keys(), []);
  });

  test('batches of any size give the same balances', () => {
    const history = () =>
      Array.from({ length: 50 }, (_, n) => (n % 5 === 0 ? withdrawn : deposited)(`account-${n % 4}`, n));
    const whole = new Harness(accountBalance).given(history());
    for (const batchSize of [1, 7]) {
      const other = new Harness(accountBalance, { batchSize }).given(history());
      assert.deepEqual(other.host.data, whole.host.data);
    }
  });

  test('a batch costs two crossings however many events it holds', () => {
    const h = new Harness(accountBalance).given(Array.from({ length: 100 }, (_, n) => deposited(`account-${n % 3}`, n)));
    assert.equal(h.host.crossings, 2); // one getMany, one writeMany
  });

  test('richest lists the highest balances first', () => {
    const h = new Harness(accountBalance).given([
      deposited('account-1', 10),
      deposited('account-2', 30),
      deposited('account-3', 30),
      withdrawn('account-4', 5),
    ]);
    assert.deepEqual(h.query('richest', { limit: 3 }), [
      { account: 'account-2', balance: 30 },
      { account: 'account-3', balance: 30 },
      { account: 'account-1', balance: 10 },
    ]);
    assert.throws(() => h.query('richest', { limit: 101 }), InvalidParams);
  });
});
