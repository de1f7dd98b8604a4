"""`{{name}}`: a Prism projection. Under each stream's id, how many events the stream
holds and the type of the last one:

    {"events": 2, "last_type": "OrderShipped"}

componentize-py builds the module `app`; `@prism.export` marks its projection.
"""

import prism_projection as prism


@prism.export
class {{type_name}}(prism.Projection):
    name = "{{name}}"
    version = "0.1.0"
    event_types = []  # every event; list some to receive only those

    def keys(self, event):
        # The keys `handle` reads, fetched for a whole batch at once.
        return [event.stream_id]

    def handle(self, view, event):
        stats = view.get(event.stream_id, {"events": 0, "last_type": None})
        stats["events"] += 1
        stats["last_type"] = event.event_type
        view.put(event.stream_id, stats)

    @prism.query("events")  # GET /views/{{name}}/_query/events?stream=order-1
    def events(self, view, params):
        if "stream" not in params:
            raise prism.InvalidParams("`stream` is required")
        return view.get(params["stream"], {"events": 0})["events"]
