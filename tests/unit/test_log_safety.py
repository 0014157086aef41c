"""Control characters in logged text become visible escapes: no terminal escape codes, no forged log lines."""

from __future__ import annotations

import io
import logging

import pytest

from w2m2w.run.log_safety import SafeFormatter, escape_controls

CASES = [  # text, what the log must show (written by hand)
    ("plain/path.wav", "plain/path.wav"),
    ("a\x1b[31mred", "a\\x1b[31mred"),
    ("x\nFAKE ERROR line", "x\\nFAKE ERROR line"),
    ("cr\rtab\tnul\x00", "cr\\rtab\\tnul\\x00"),
    ("bell\x07del\x7f", "bell\\x07del\\x7f"),
    ("c1\x9bcsi\x85nel", "c1\\x9bcsi\\x85nel"),
    ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
    ("é ü 日本 \xa0", "é ü 日本 \xa0"),  # printable non-ASCII (and no-break space, not a control) stay as they are
]


@pytest.mark.parametrize("text, shown", CASES)
def test_escape_controls(text, shown):
    assert escape_controls(text) == shown


def _log_through(formatter: logging.Formatter, *args, exc: bool = False) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log = logging.getLogger("test_log_safety")
    log.handlers, log.propagate = [handler], False
    if exc:
        try:
            raise ValueError("bad\x1b[2J name\nFAKE")
        except ValueError:
            log.exception(*args)
    else:
        log.error(*args)
    return out.getvalue()


def test_formatter_escapes_the_message_and_its_arguments():
    line = _log_through(
        SafeFormatter("%(levelname)s %(message)s"), "[synthesize] %s: failed", "in/a\x1b[31mb\nFAKE ERROR line.mid"
    )
    assert line == "ERROR [synthesize] in/a\\x1b[31mb\\nFAKE ERROR line.mid: failed\n"


def test_formatter_keeps_a_tracebacks_lines_but_escapes_the_rest():
    text = _log_through(SafeFormatter("%(message)s"), "boom\x1b", exc=True)
    assert "\x1b" not in text and text.startswith("boom\\x1b\nTraceback")
    assert text.endswith(
        "\nValueError: bad\\x1b[2J name\\nFAKE\n"
    )  # the message's line break is escaped, not a new line
