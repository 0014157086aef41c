"""Control characters in logged text shown as visible escapes (the Hydra edge's log format uses it).

A file name may hold any byte but '/' and NUL: an ESC sequence in one would recolour or rewrite the
terminal, a newline would forge a log line in run.log. Every message the log writes goes through here.
"""

from __future__ import annotations

import logging
import re
import traceback

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators (line breaks to some readers)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """`text` with every control character written as a visible escape (\\x1b, \\n, \\u2028)."""
    return _CONTROL.sub(_escape, text)


class SafeFormatter(logging.Formatter):
    """A logging.Formatter whose record line holds no control character.

    A traceback keeps the line breaks of its frames; an exception's message (a path in it, say) is escaped whole.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:  # noqa: ANN001 - logging's own signature
        te = traceback.TracebackException(*ei)
        messages = set(_exception_lines(te))
        parts = [escape_controls(p.removesuffix("\n")) + "\n" if p in messages else _keep_lines(p) for p in te.format()]
        return "".join(parts).removesuffix("\n")

    def formatStack(self, stack_info: str) -> str:
        return _keep_lines(super().formatStack(stack_info))


def _exception_lines(te: traceback.TracebackException, seen: set[int] | None = None) -> list[str]:
    """The 'Type: message' parts of every exception in the chain (the text a traceback takes from the program's data)."""
    seen = seen if seen is not None else set()
    if id(te) in seen:
        return []
    seen.add(id(te))
    out = list(te.format_exception_only())
    for other in (te.__cause__, te.__context__):
        if other is not None:
            out += _exception_lines(other, seen)
    return out


def _keep_lines(text: str) -> str:
    return "\n".join(escape_controls(line) for line in text.split("\n"))
