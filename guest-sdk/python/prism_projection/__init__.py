"""Write Prism projections in Python.

Subclass `Projection`, override `handle(view, event)` (and optionally `keys(event)` and
`@query` methods), and decorate the class with `@export`. The same class runs unchanged in
`prism_projection.testing.Harness` for unit tests and, built with componentize-py, as a
WebAssembly component of the `prism:projection/projector` world.
"""

import importlib.util
import sys

from . import _log as log
from ._runtime import (
    MAX_KEY_LEN,
    Event,
    HandleError,
    Index,
    InvalidParams,
    Projection,
    QueryError,
    UnknownQuery,
    View,
    ViewError,
    check_key,
    dumps,
    query,
)

__all__ = [
    "MAX_KEY_LEN",
    "Event",
    "HandleError",
    "Index",
    "InvalidParams",
    "Projection",
    "QueryError",
    "UnknownQuery",
    "View",
    "ViewError",
    "check_key",
    "dumps",
    "export",
    "log",
    "query",
]


def export(cls):
    """Make `cls` the component's `projection` export and return `cls` unchanged.

    componentize-py looks for a class named `Projection` in the app module, so inside a
    component this sets `<app module>.Projection` to a generated adapter. Outside a
    component (plain Python, unit tests) `wit_world` does not exist and this does nothing.
    """
    if importlib.util.find_spec("wit_world") is None:
        return cls
    from ._component import make_export

    setattr(sys.modules[cls.__module__], "Projection", make_export(cls()))
    return cls
