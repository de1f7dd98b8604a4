// The raising plugin counts per stream and refuses the batch at a `Poison` event.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { QueryError } from '../../../guest-sdk/js/src/index.js';
import { Harness, event } from '../../../guest-sdk/js/src/testing.js';
import raise from './projection.js';

test('counts every event type per stream', () => {
  const h = new Harness(raise).given([event('a', 'X'), event('b', 'Y'), event('a', 'Z')]);
  assert.deepEqual(h.views(), { a: { count: 2 }, b: { count: 1 } });
  assert.deepEqual(h.describe().eventTypes, []);
});

test('poison refuses the batch at its index', () => {
  const h = new Harness(raise).given([event('a', 'X')]);
  const error = h.when([event('a', 'X'), event('a', 'Poison'), event('a', 'X')]);
  assert.equal(error.index, 1);
  assert.equal(error.message, 'Error: poisoned event at position 3');
  assert.deepEqual(h.view('a'), { count: 2 }); // the event before the poison, on its own
});

test('the count query throws for poison', () => {
  const h = new Harness(raise).given([event('a', 'X')]);
  assert.equal(h.query('count', { stream: 'a' }), 1);
  assert.throws(() => h.query('count', { stream: 'Poison' }), (e) => e instanceof QueryError && /poisoned query/.test(e.message));
});
