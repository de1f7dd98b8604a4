"""Counts events per stream and raises on `Poison`: the host's containment tests use it to
check that an exception in a Python plugin refuses the batch and changes nothing. Its
query `count?stream=S` answers a stream's count and raises for the stream `Poison`."""

import prism_projection as prism


@prism.export
class Raise(prism.Projection):
    name = "raise-py"
    version = "0.1.0"
    event_types = []  # all

    def keys(self, event):
        return [event.stream_id]

    def handle(self, view, event):
        if event.event_type == "Poison":
            raise RuntimeError(f"poisoned event at position {event.position}")
        view.update(event.stream_id, lambda doc: {"count": doc["count"] + 1}, default={"count": 0})

    @prism.query
    def count(self, view, params):
        if params.get("stream") == "Poison":
            raise RuntimeError("poisoned query")
        return (view.get(params.get("stream", "")) or {"count": 0})["count"]
