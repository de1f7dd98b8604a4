"""The glue between `Runtime` and the `projector` world, used only inside the component.

componentize-py generates `wit_world` at build time and calls the class named `Projection`
in the app module for each export of the `projection` interface; `export()` builds that
class around one long-lived `Runtime` whose host is the `view` and `logging` imports.
"""

from componentize_py_types import Err
from wit_world.imports import logging as wit_logging
from wit_world.imports import types as wit_types
from wit_world.imports import view as wit_view

from . import _log
from ._runtime import Event, QueryError, Runtime, ViewError

_LEVELS = {
    "trace": wit_logging.Level.TRACE,
    "debug": wit_logging.Level.DEBUG,
    "info": wit_logging.Level.INFO,
    "warn": wit_logging.Level.WARN,
    "error": wit_logging.Level.ERROR,
}

_VIEW_ERRORS = {
    wit_view.ViewError_InvalidJson: "invalid-json",
    wit_view.ViewError_InvalidKey: "invalid-key",
    wit_view.ViewError_ReadOnly: "read-only",
}

_QUERY_ERRORS = {
    "unknown-query": wit_types.QueryError_UnknownQuery,
    "invalid-params": wit_types.QueryError_InvalidParams,
    "failed": wit_types.QueryError_Failed,
}


class WitHost:
    """`Runtime`'s host over the `view` import: every method is one boundary crossing."""

    def get_many(self, keys):
        return wit_view.get_many(list(keys))

    def write_many(self, writes):
        put, entry, delete = wit_view.Write_Put, wit_view.Entry, wit_view.Write_Delete
        batch = [delete(key) if raw is None else put(entry(key, raw)) for key, raw in writes]
        try:
            wit_view.write_many(batch)
        except Err as err:
            e = err.value
            raise ViewError(_VIEW_ERRORS.get(type(e), "view-error"), getattr(e, "value", "") or "") from None

    def scan(self, start, end, limit):
        return [(e.key, e.value) for e in wit_view.scan(start, end, min(limit, 0xFFFFFFFF))]

    def log(self, level, message):
        wit_logging.log(_LEVELS.get(level, wit_logging.Level.INFO), message)


_KINDS = {
    "number": wit_types.FieldKind.NUMBER,
    "string": wit_types.FieldKind.STRING,
    "boolean": wit_types.FieldKind.BOOLEAN,
    "timestamp": wit_types.FieldKind.TIMESTAMP,
    "any": wit_types.FieldKind.ANY,
}


def make_export(projection):
    """The class componentize-py instantiates for the `projection` export."""
    runtime = Runtime(projection, WitHost())
    _log.sink = runtime.host.log

    class Projection:
        def describe(self):
            d = runtime.describe()
            indexes = [
                wit_types.Index(
                    i["name"],
                    [wit_types.IndexField(path, _KINDS[kind]) for path, kind in i["fields"]],
                    i["unique"],
                    i["prefix"],
                )
                for i in d["indexes"]
            ]
            return wit_types.Description(d["name"], d["version"], d["event_types"], d["queries"], indexes)

        def handle(self, batch):
            event = Event
            events = [
                event(
                    e.position,
                    e.stream_id,
                    e.stream_version,
                    e.event_type,
                    e.data,
                    e.metadata,
                    e.recorded_at,
                    e.id,
                )
                for e in batch
            ]
            failure = runtime.handle(events)
            if failure is not None:
                raise Err(wit_types.HandleError(failure.index, failure.message))

        def query(self, name, params):
            try:
                return runtime.query(name, params)
            except QueryError as exc:
                raise Err(_QUERY_ERRORS[exc.kind](str(exc))) from None

    return Projection
