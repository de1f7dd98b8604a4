// `{{name}}`: a Prism projection. Under each stream's id, how many events the stream holds
// and the type of the last one:
//
//   {"events": 2, "last_type": "OrderShipped"}
//
// The default export is the projection.
import { InvalidParams, defineProjection } from '@prism/projection';

export default defineProjection({
  name: '{{name}}',
  version: '0.1.0',
  eventTypes: [], // every event; list some to receive only those

  // The keys `handle` reads, fetched for a whole batch at once.
  keys: (event) => [event.streamId],

  handle(view, event) {
    const stats = view.get(event.streamId, { events: 0, last_type: null });
    stats.events += 1;
    stats.last_type = event.eventType;
    view.put(event.streamId, stats);
  },

  queries: {
    // GET /views/{{name}}/_query/events?stream=order-1
    events(view, params) {
      if (params.stream === undefined) throw new InvalidParams('`stream` is required');
      return view.get(params.stream, { events: 0 }).events;
    },
  },
});
