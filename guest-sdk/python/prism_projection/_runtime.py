"""The batch engine behind every Python projection, free of any WebAssembly binding.

`Runtime` turns one `handle(batch)` call into a handful of host crossings: an optional
`get-many` to prefetch the keys the projection names, the user's `handle` for each event
against a `View` that caches reads and buffers writes in the guest, and one `write-many`
at the end. The host side is anything with `get_many`, `write_many`, `scan` and `log`:
the component glue (`_component.py`) in WebAssembly, `testing.InMemoryHost` in unit tests,
so a test exercises exactly the code the plugin runs.
"""

import json
import json.encoder
import json.scanner

__all__ = [
    "Event",
    "View",
    "Projection",
    "query",
    "QueryError",
    "InvalidParams",
    "HandleError",
    "ViewError",
    "Runtime",
    "dumps",
]

_ABSENT = object()


def _not_serializable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Every event costs a decode of its data and of the document it changes, and an encode of
# that document: `json.loads` and `json.dumps` build a decoder or an encoder each call and
# check their arguments, which costs more than the work itself on documents this small.
# So the C scanner and encoder are made once. The encoder keeps no circular-reference
# markers (they would outlive a failed call): a cyclic value fails with RecursionError.
_scan_once = json.scanner.make_scanner(json.JSONDecoder())
_encode = (
    json.encoder.c_make_encoder(
        None, _not_serializable, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if json.encoder.c_make_encoder is not None
    else None
)


def dumps(value):
    """Compact JSON, as serde_json writes it: no spaces, non-ASCII kept as UTF-8."""
    if _encode is None:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "".join(_encode(value, 0))


def loads(text):
    """`json.loads(text)`, without its per-call set-up when `text` is one bare JSON value."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text)  # leading whitespace, or the error json.loads reports
    if end != len(text):
        return json.loads(text)  # trailing whitespace, or "Extra data"
    return value


class Event:
    """One recorded event; `data` and `metadata` are decoded from JSON on first use."""

    __slots__ = (
        "position",
        "stream_id",
        "stream_version",
        "event_type",
        "raw_data",
        "raw_metadata",
        "recorded_at",
        "id",
        "_data",
        "_metadata",
    )

    def __init__(
        self,
        position,
        stream_id,
        stream_version,
        event_type,
        data,
        metadata="{}",
        recorded_at=0,
        id="",
    ):
        self.position = position
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.event_type = event_type
        self.raw_data = data
        self.raw_metadata = metadata
        self.recorded_at = recorded_at
        self.id = id
        self._data = _ABSENT
        self._metadata = _ABSENT

    @property
    def data(self):
        """The payload as Python values (dict, list, str, int, float, bool, None)."""
        if self._data is _ABSENT:
            self._data = loads(self.raw_data)
        return self._data

    @property
    def metadata(self):
        """The metadata as Python values (`{}` when the writer gave none)."""
        if self._metadata is _ABSENT:
            self._metadata = loads(self.raw_metadata)
        return self._metadata

    def __repr__(self):
        return (
            f"Event(position={self.position}, stream_id={self.stream_id!r}, "
            f"stream_version={self.stream_version}, event_type={self.event_type!r}, "
            f"data={self.raw_data!r})"
        )


class HandleError:
    """Why a batch was refused: `index` is the failing event's place in the batch, if known."""

    __slots__ = ("index", "message")

    def __init__(self, index, message):
        self.index = index
        self.message = message

    def __eq__(self, other):
        return (
            isinstance(other, HandleError)
            and other.index == self.index
            and other.message == self.message
        )

    def __repr__(self):
        return f"HandleError(index={self.index!r}, message={self.message!r})"


class ViewError(Exception):
    """The host (or the test host) refused a write: `kind` is invalid-json, invalid-key or read-only."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class QueryError(Exception):
    """Raise from a query to answer `failed(message)`; subclasses pick other cases."""

    kind = "failed"


class InvalidParams(QueryError):
    """Raise from a query when its parameters are missing or malformed."""

    kind = "invalid-params"


class UnknownQuery(QueryError):
    kind = "unknown-query"


def query(name=None):
    """Mark a method `(self, view, params)` as the named query `name`.

    The default name is the method's, with `_` as `-`. `view` is read-only; `params` is a
    dict of strings (the HTTP query string); the return value is sent as JSON. The
    projection's description lists exactly the methods so marked.
    """

    def mark(fn):
        fn.__prism_query__ = name or fn.__name__.replace("_", "-")
        return fn

    if callable(name):
        fn, name = name, None
        return mark(fn)
    return mark


FIELD_KINDS = ("number", "string", "boolean", "timestamp", "any")


class Index:
    """A secondary index the host keeps in step with the documents (in the same write batch).

    `fields` is a list of `(path, kind)`: a dotted path into the document and one of
    `FIELD_KINDS`. Query it over HTTP with `GET /views/{plugin}/_find?index=NAME&...`.
    """

    def __init__(self, name, fields, unique=False, prefix=None):
        for _, kind in fields:
            if kind not in FIELD_KINDS:
                raise ValueError(f"index {name!r}: field kind {kind!r} is not one of {FIELD_KINDS}")
        self.name = name
        self.fields = [(path, kind) for path, kind in fields]
        self.unique = unique
        self.prefix = prefix

    def as_dict(self):
        return {"name": self.name, "fields": list(self.fields), "unique": self.unique, "prefix": self.prefix}


class Projection:
    """Base class for a projection; subclass it and set the class attributes.

    Override `handle(view, event)`; optionally `keys(event)` to name the keys `handle`
    will read, so the whole batch's reads are fetched in one crossing before any event is
    applied. Keep the read model in the view, not on `self`: the host may start a fresh
    instance or replay part of a batch at any time.
    """

    name = "unnamed"
    version = "0.0.0"
    #: Event types to receive; the host filters before WebAssembly. Empty: all.
    event_types = ()
    #: Secondary indexes the host maintains over the documents (see `Index`).
    indexes = ()

    def keys(self, event):
        return ()

    def handle(self, view, event):
        raise NotImplementedError("a projection must override handle(view, event)")


class View:
    """The projection's keyspace as JSON values, with this batch's reads cached and writes buffered.

    Reads see the batch's own earlier writes. Nothing reaches the host until the batch
    has been applied in full; then all writes go in one `write-many`.
    """

    def __init__(self, host, read_only=False):
        self._host = host
        self._read_only = read_only
        #: key -> JSON text or None (known absent), from the host or from this batch.
        self._cache = {}
        #: key -> JSON text or None (delete), in first-write order.
        self._pending = {}

    # reads

    def prefetch(self, keys):
        """Fetch every not-yet-cached key in one `get-many` crossing."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if missing:
            for key, raw in zip(missing, self._host.get_many(missing)):
                self._cache[key] = raw

    def get_raw(self, key):
        """The JSON text at `key`, or None."""
        raw = self._cache.get(key, _ABSENT)
        if raw is _ABSENT:
            self.prefetch([key])
            raw = self._cache[key]
        return raw

    def get(self, key, default=None):
        """The document at `key` as Python values, or `default` when absent.

        Every call decodes afresh, so mutating the result changes nothing until `put`.
        """
        raw = self._cache.get(key, _ABSENT)
        if raw is _ABSENT:
            raw = self.get_raw(key)
        return default if raw is None else loads(raw)

    def __contains__(self, key):
        return self.get_raw(key) is not None

    def scan(self, start="", end=None, limit=100, prefix=None):
        """`(key, value)` pairs with `start <= key < end` in key order, at most `limit`.

        `prefix="order-"` is shorthand for the range of keys starting with it.
        Includes this batch's unflushed writes.
        """
        if prefix is not None:
            start, end = max(start, prefix), _prefix_end(prefix)
        if limit <= 0:
            return []

        def in_range(k):
            return k >= start and (end is None or k < end)

        pending = {k: v for k, v in self._pending.items() if in_range(k)}
        deletes = sum(1 for v in pending.values() if v is None)
        ask = limit + deletes
        entries = self._host.scan(start, end, ask)
        merged = dict(entries)
        if len(entries) >= ask:
            # The host range was cut: only keys up to its last one are fully known.
            last = entries[-1][0]
            pending = {k: v for k, v in pending.items() if k <= last}
        merged.update(pending)
        keys = sorted(k for k, v in merged.items() if v is not None)[:limit]
        return [(k, loads(merged[k])) for k in keys]

    # writes

    def put(self, key, value):
        """Store `value` (anything JSON can hold) at `key`."""
        if self._read_only:
            self._check_writable()
        if type(key) is not str or not key or len(key) > MAX_KEY_LEN // 4:
            check_key(key)
        raw = dumps(value)
        self._cache[key] = raw
        self._pending[key] = raw

    def delete(self, key):
        """Remove `key` (removing an absent key is not an error)."""
        self._check_writable()
        check_key(key)
        self._cache[key] = None
        self._pending[key] = None

    def update(self, key, fn, default=None):
        """`put(key, fn(current or default))` and return the new value.

        `default` is copied, so a shared literal is never mutated. If `fn` returns None the
        key is deleted.
        """
        current = self.get(key)
        if current is None:
            current = loads(dumps(default))
        new = fn(current)
        if new is None:
            self.delete(key)
        else:
            self.put(key, new)
        return new

    # batch plumbing

    def _check_writable(self):
        if self._read_only:
            raise ViewError("read-only", "the view is read-only inside a query")

    def pending_writes(self):
        """This batch's writes in order: `(key, json_text)` puts and `(key, None)` deletes."""
        return list(self._pending.items())


MAX_KEY_LEN = 1024


def check_key(key):
    """Refuse a key the host would refuse, so the failing event is the one named."""
    if not isinstance(key, str):
        raise TypeError(f"view keys are strings, not {type(key).__name__}")
    if not key:
        raise ViewError("invalid-key", "the key is empty")
    if len(key) <= MAX_KEY_LEN // 4:
        return  # no character takes more than 4 bytes in UTF-8
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_LEN:
        raise ViewError("invalid-key", f"the key is {size} bytes long; at most {MAX_KEY_LEN} are allowed")


def _prefix_end(prefix):
    """The smallest string greater than every string starting with `prefix`, or None."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        if last < 0x10FFFF:
            chars[-1] = chr(last + 1)
            return "".join(chars)
        chars.pop()
    return None


def _describe_error(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Runtime:
    """Drives one projection instance against one host: describe, handle, query."""

    def __init__(self, projection, host):
        self.projection = projection
        self.host = host
        self.queries = _collect_queries(projection)

    def describe(self):
        p = self.projection
        return {
            "name": p.name,
            "version": p.version,
            "event_types": list(p.event_types),
            "queries": sorted(self.queries),
            "indexes": [index.as_dict() for index in p.indexes],
        }

    def handle(self, events):
        """Apply `events`; return None on success or a `HandleError` (then nothing was written)."""
        view = View(self.host)
        # Bound once: thousands of events per batch.
        keys_of = self.projection.keys
        handle = self.projection.handle
        keys = []
        for index, event in enumerate(events):
            try:
                keys.extend(keys_of(event) or ())
            except BaseException as exc:  # noqa: BLE001 - user code (even sys.exit): report, never trap
                return HandleError(index, f"keys(): {_describe_error(exc)}")
        if keys:
            view.prefetch(keys)
        for index, event in enumerate(events):
            try:
                handle(view, event)
            except BaseException as exc:  # noqa: BLE001 - user code (even sys.exit): report, never trap
                return HandleError(index, _describe_error(exc))
        writes = view.pending_writes()
        if writes:
            try:
                self.host.write_many(writes)
            except ViewError as exc:
                return HandleError(None, f"write refused: {exc}")
        return None

    def query(self, name, params_json):
        """Answer a named query: returns JSON text, raises `QueryError` (or a subclass)."""
        method = self.queries.get(name)
        if method is None:
            raise UnknownQuery(name)
        try:
            params = json.loads(params_json) if params_json else {}
        except ValueError as exc:
            raise InvalidParams(f"params are not JSON: {exc}") from None
        try:
            return dumps(method(View(self.host, read_only=True), params))
        except QueryError:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code (even sys.exit): report, never trap
            raise QueryError(_describe_error(exc)) from None


def _collect_queries(projection):
    found = {}
    for attr in dir(type(projection)):
        fn = getattr(type(projection), attr, None)
        name = getattr(fn, "__prism_query__", None)
        if name is None:
            continue
        if name in found:
            raise TypeError(f"{type(projection).__name__}: query {name!r} is declared twice")
        found[name] = getattr(projection, attr)
    return found
