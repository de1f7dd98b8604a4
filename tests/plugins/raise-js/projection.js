// Counts events per stream and throws on `Poison`: the host's containment tests use it to
// check that an exception in a JavaScript plugin refuses the batch and changes nothing. Its
// query `count?stream=S` answers a stream's count and throws for the stream `Poison`.
import { defineProjection } from '../../../guest-sdk/js/src/index.js';

export default defineProjection({
  name: 'raise-js',
  version: '0.1.0',
  eventTypes: [], // all
  keys: (event) => [event.streamId],
  handle(view, event) {
    if (event.eventType === 'Poison') {
      throw new Error(`poisoned event at position ${event.position}`);
    }
    view.update(event.streamId, (doc) => ({ count: doc.count + 1 }), { count: 0 });
  },
  queries: {
    count(view, params) {
      if (params.stream === 'Poison') throw new Error('poisoned query');
      return view.get(params.stream ?? '')?.count ?? 0;
    },
  },
});
