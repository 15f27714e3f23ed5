"""Log lines that a client cannot forge.

Values that reach a log record come from the network (a request path, a header, a
WebSocket frame in an error message): a ``%0a`` in a path would start a line of its own that
reads like one the server wrote, a ``%00`` puts a NUL into the file. The formatter escapes
every control character of the message (``\\n`` becomes the four characters ``\\x0a``), so one
record is always one line; a traceback's lines are indented so that no line of it can pass
for a record either.
"""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` on one line: each control character as ``\\xNN`` (``\\uNNNN`` above 0xff)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                        text)


class EscapingFormatter(logging.Formatter):
    """``logging.Formatter`` with the message escaped and tracebacks indented."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        saved = record.message
        record.message = escape(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(block: str) -> str:
    return "\n".join("    " + escape(line) for line in block.splitlines())


def setup(level: str | int, stream) -> logging.Handler:  # type: ignore[no-untyped-def]
    """The root handler every server process logs through (``serve``, cluster nodes)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
