"""Log lines that a request cannot forge: control characters in logged values are escaped.

A path, a file name or a parameter may hold a newline, an escape sequence or a right-to-left override.
Logged as is, a request could add a fake line to the server's log ("... 200 GET /admin") or rewrite
what the terminal shows. A filter on the log handlers writes every message as one line, with such
characters spelled out (\\n, \\x1b, \\u202e); a traceback, which has lines of its own, has each of
them marked with "| ", so no line of it can pass for a record.
"""

from __future__ import annotations

import logging
import re

# C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spell(match: re.Match) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape(text: str) -> str:
    return _UNSAFE.sub(_spell, text)


class OneLineFilter(logging.Filter):
    """Rewrites each record's message with its arguments escaped (records are shared by handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "photoseek_escaped", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return True
        record.msg, record.args = escape(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            lines = [escape(line) for line in record.exc_text.split("\n")]
            record.exc_text = "| " + "\n| ".join(lines)
        record.photoseek_escaped = True
        return True


FILTER = OneLineFilter()


def install(logger: logging.Logger | None = None) -> None:
    """Add the filter to the handlers of `logger` (default: the root logger, which every logger of
    searchd, Flask and waitress reaches). Idempotent."""
    for handler in (logger or logging.getLogger()).handlers:
        if FILTER not in handler.filters:
            handler.addFilter(FILTER)
