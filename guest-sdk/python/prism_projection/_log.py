"""Where `prism_projection.log` sends messages: the `logging` import in a component, a list in tests."""

#: A callable `(level, message)`, set by the component glue or the test host; None drops messages.
sink = None


def _emit(level, message):
    if sink is not None:
        sink(level, str(message))


def trace(message):
    _emit("trace", message)


def debug(message):
    _emit("debug", message)


def info(message):
    _emit("info", message)


def warn(message):
    _emit("warn", message)


def error(message):
    _emit("error", message)
