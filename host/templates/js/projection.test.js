import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Harness, event } from '@prism/projection/testing';
import projection from './projection.js';

test('counts the events of each stream', () => {
  const h = new Harness(projection).given([
    event('order-1', 'OrderPlaced', { total: 30 }),
    event('order-1', 'OrderShipped', {}),
    event('order-2', 'OrderPlaced', { total: 5 }),
  ]);
  assert.deepEqual(h.view('order-1'), { events: 2, last_type: 'OrderShipped' });
  assert.equal(h.query('events', { stream: 'order-2' }), 1);
});
