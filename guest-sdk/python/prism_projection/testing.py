"""Unit-test projections in plain Python: an in-memory host that behaves like Prism's.

    from prism_projection.testing import Harness, event

    h = Harness(AccountBalance).given([event("account-1", "AccountOpened", {"owner": "ann"})])
    assert h.view("account-1") == {"owner": "ann", "balance": 0, "transactions": 0}
    assert h.when([event("account-1", "Deposited", {"amount": 2.5})]).index == 0

The harness numbers events as the log does (global positions from 1, stream versions from
0), filters them by the projection's declared event types as the host does, and runs them
through the same batch engine the component runs, against `InMemoryHost`, which enforces the
host's rules: keys non-empty and at most 1024 bytes; all-or-nothing
`write-many`; read-only views inside queries.
"""

import bisect
import json

from . import _log
from ._runtime import Event, HandleError, Runtime, ViewError, check_key

__all__ = ["Harness", "HandleError", "HandleFailed", "InMemoryHost", "event"]


class InMemoryHost:
    """The `view` and `logging` imports over a dict; counts crossings like the real boundary."""

    def __init__(self):
        self.data = {}
        self.read_only = False
        self.crossings = 0
        self.logs = []

    def _check(self, key, raw):
        if self.read_only:
            raise ViewError("read-only")
        check_key(key)
        if raw is not None:
            try:
                json.loads(raw)
            except ValueError as exc:
                raise ViewError("invalid-json", str(exc)) from None

    def get_many(self, keys):
        self.crossings += 1
        return [self.data.get(k) for k in keys]

    def write_many(self, writes):
        self.crossings += 1
        for key, raw in writes:
            self._check(key, raw)
        for key, raw in writes:
            if raw is None:
                self.data.pop(key, None)
            else:
                self.data[key] = raw

    def scan(self, start, end, limit):
        self.crossings += 1
        keys = sorted(self.data)
        i = bisect.bisect_left(keys, start)
        out = []
        for key in keys[i:]:
            if (end is not None and key >= end) or len(out) >= limit:
                break
            out.append((key, self.data[key]))
        return out

    def log(self, level, message):
        self.logs.append((level, message))


class HandleFailed(AssertionError):
    """`Harness.given` saw the projection refuse an event: a test's history should apply."""

    def __init__(self, error):
        super().__init__(f"the projection refused a given event at index {error.index}: {error.message}")
        self.error = error


def event(stream_id, event_type, data=None, metadata=None):
    """A new event for `Harness.given`/`when`; `data` and `metadata` are Python values or JSON text."""
    return (stream_id, event_type, data, metadata)


class Harness:
    """A projection, an in-memory keyspace and a little event log, for given/when/then tests.

    Events are appended to the log; those whose type the projection does not declare never
    reach it (their positions still count, as in the host). The rest are applied in batches
    as the host applies them: all or nothing, and after a failing event the events before
    it once more, on their own.
    """

    def __init__(self, projection, batch_size=None):
        if isinstance(projection, type):
            projection = projection()
        if batch_size is not None and batch_size < 1:
            raise ValueError("a batch holds at least one event")
        self.host = InMemoryHost()
        self.runtime = Runtime(projection, self.host)
        self.batch_size = batch_size
        #: Every event appended so far, including those the projection never saw.
        self.events = []
        self._versions = {}

    @property
    def projection(self):
        return self.runtime.projection

    @property
    def logs(self):
        """`(level, message)` pairs the projection logged."""
        return self.host.logs

    def describe(self):
        return self.runtime.describe()

    def append(self, stream_id, event_type, data=None, metadata=None):
        """Record an event in the harness's log as the host would, and return it."""
        position = len(self.events) + 1
        version = self._versions.get(stream_id, -1) + 1
        self._versions[stream_id] = version
        e = Event(
            position=position,
            stream_id=stream_id,
            stream_version=version,
            event_type=event_type,
            data=data if isinstance(data, str) else json.dumps({} if data is None else data),
            metadata=metadata if isinstance(metadata, str) else json.dumps(metadata or {}),
            recorded_at=1_700_000_000_000 + position,
            id=f"00000000-0000-4000-8000-{position:012x}",
        )
        self.events.append(e)
        return e

    def given(self, events):
        """Given these events happened; raises `HandleFailed` if the projection refuses one."""
        error = self.when(events)
        if error is not None:
            raise HandleFailed(error)
        return self

    def when(self, events):
        """When these events happen: apply them; None if all applied, else the `HandleError`.

        `events` are `event(...)` tuples `(stream, type, data[, metadata])` or dicts with
        `stream`, `type`, `data` and optionally `metadata`.
        """
        declared = set(self.runtime.projection.event_types)
        wanted = []
        for e in events:
            if isinstance(e, dict):
                e = self.append(e["stream"], e["type"], e.get("data"), e.get("metadata"))
            else:
                e = self.append(*e)
            if not declared or e.event_type in declared:
                wanted.append(e)
        size = self.batch_size or max(len(wanted), 1)
        for i in range(0, len(wanted), size):
            error = self._apply_like_the_host(wanted[i : i + size])
            if error is not None:
                return error
        return None

    def _apply_like_the_host(self, batch):
        error = self._run(batch)
        if error is not None and error.index:
            again = self._run(batch[: error.index])
            if again is not None:
                raise AssertionError(f"the events before a failing one failed on their own: {again}")
        return error

    def _run(self, events):
        previous = _log.sink
        _log.sink = self.host.log
        try:
            return self.runtime.handle(events)
        finally:
            _log.sink = previous

    def view(self, key):
        """The document at `key` as Python values, or None."""
        raw = self.host.data.get(key)
        return None if raw is None else json.loads(raw)

    def raw(self, key):
        """The JSON text at `key` exactly as the projection stored it, or None."""
        return self.host.data.get(key)

    def keys(self, prefix=""):
        """Every key of the view (that starts with `prefix`), in order."""
        return sorted(k for k in self.host.data if k.startswith(prefix))

    def views(self):
        """The whole keyspace as `{key: value}`, in key order."""
        return {k: json.loads(self.host.data[k]) for k in sorted(self.host.data)}

    def query(self, name, **params):
        """Run a named query with string parameters; return its decoded answer.

        Raises the projection's `QueryError` (or `InvalidParams`, `UnknownQuery`).
        """
        self.host.read_only = True
        previous = _log.sink
        _log.sink = self.host.log
        try:
            raw = self.runtime.query(name, json.dumps({k: str(v) for k, v in params.items()}))
        finally:
            self.host.read_only = False
            _log.sink = previous
        return json.loads(raw)
