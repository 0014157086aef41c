"""Progress of a batch: a bar per stage and one overall (pieces, audio seconds, time left), and the summary table.

Bars are for a terminal: where stderr is a pipe or a file (a log, CI, `2> log.txt`), tqdm's cursor codes
would fill it with redrawn lines, so there a run logs one plain line per finished piece instead.

Stages that draw a bar of their own (synthesize: seconds rendered) make it with
progress_bar(), which honours `progress=false` and stays silent in worker processes:
the switch is an environment variable read when the bar is made (tqdm reads
TQDM_DISABLE once, when it is imported, which in a worker is before the worker can set it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import unicodedata
from typing import Any, TextIO

from w2m2w.run.log_safety import escape_controls
from w2m2w.run.piece import PieceResult

_SWITCH = "W2M2W_PROGRESS"
log = logging.getLogger("w2m2w")


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether `stream` (stderr, where the bars go) is a terminal, not a pipe or a file."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def set_bars(enabled: bool) -> None:
    """Turn every stage's own progress bar on or off for this process (and processes it starts)."""
    os.environ[_SWITCH] = "1" if enabled else "0"
    if not enabled:  # also for code that reads tqdm's own switch when it makes a bar
        os.environ["TQDM_DISABLE"] = "1"


def bars_enabled() -> bool:
    """Whether a stage may draw a progress bar: `progress=true`, not in a worker process (nor TQDM_DISABLE set), and
    stderr a terminal."""
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        return False
    return os.environ.get(_SWITCH, "1") != "0" and on_terminal()


def progress_bar(**kwargs: Any):
    """A tqdm bar for one piece's stage, drawn only when bars_enabled(); it clears itself when closed.

    Takes tqdm's arguments (total, desc, unit, bar_format, ...). Log lines pass above it:
    the runner routes logging through tqdm.
    """
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    return tqdm(disable=not bars_enabled(), **kwargs)


class BatchProgress:
    """tqdm bars fed by stage and piece events; safe to call from a thread that drains worker events.

    enabled: progress wanted at all (`progress=`). On a terminal that is bars; elsewhere (`stream` not a terminal)
    one plain log line per finished piece."""

    def __init__(
        self, pieces: list[str], stages: list[str], enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        from tqdm import tqdm

        n = len(pieces)
        self.total = n
        self.lines = enabled and not on_terminal(stream)  # a pipe or a log: plain lines, no cursor codes
        enabled = enabled and not self.lines
        self.enabled = enabled
        self.stages = stages
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.audio_s = 0.0
        self.failed = 0
        self.counts = {s: 0 for s in stages}  # what the bars show; kept here too because a disabled bar counts nothing
        self.pieces_done = 0
        bar = dict(unit="piece", disable=not enabled, dynamic_ncols=True, leave=True, file=stream)
        self.overall = tqdm(total=n, desc="all stages", position=0, **bar)
        self.bars = {s: tqdm(total=n, desc=f"  {s}", position=i + 1, **bar) for i, s in enumerate(stages)}

    def stage_done(self, piece: str, stage: str, info: dict[str, Any]) -> None:
        with self._lock:
            if (piece, stage) in self._seen or stage not in self.bars:
                return
            self._seen.add((piece, stage))
            self.counts[stage] += 1
            self.bars[stage].update(1)

    def piece_done(self, result: PieceResult) -> None:
        with self._lock:
            # stages a failed or skipped piece never reached are finished for it as well
            for s in self.stages:
                if (result.piece, s) not in self._seen:
                    self._seen.add((result.piece, s))
                    self.counts[s] += 1
                    self.bars[s].update(1)
            self.failed += result.status in ("failed", "locked")
            first = next((result.stages[s] for s in self.stages if s in result.stages), {})
            self.audio_s += float(first.get("audio_seconds") or 0)  # the recording's length, from the transcription
            self.overall.set_postfix_str(f"{self.audio_s:.0f} s audio in, {self.failed} failed", refresh=False)
            self.pieces_done += 1
            self.overall.update(1)
            if self.lines:
                log.info(
                    "%d/%d pieces: %s %s (%.0f s audio in, %d failed)",
                    self.pieces_done,
                    self.total,
                    result.piece,
                    result.status,
                    self.audio_s,
                    self.failed,
                )

    def close(self) -> None:
        for b in [*self.bars.values(), self.overall]:
            b.close()


def piece_row(pid: str, p: dict[str, Any], stages: list[str]) -> dict[str, Any]:
    """One summary row: status, input/output durations, seconds per stage, detail (the error or warning)."""
    st = p.get("stages", {})
    row = {
        "piece": pid,
        "status": p["status"],
        "in_s": st.get("transcribe", {}).get("audio_seconds"),
        "music_s": st.get("generate", {}).get("continuation_seconds"),
        "out_s": st.get("synthesize", {}).get("audio_seconds"),
    }
    for s in stages:
        row[f"{s}_s"] = (
            st.get(s, {}).get("seconds") if st.get(s, {}).get("status") == "done" else st.get(s, {}).get("status")
        )
    row["detail"] = p.get("error") or ""
    return row


def _width(text: str) -> int:
    """Columns `text` takes on a console: East Asian wide characters (練習曲) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def print_summary(summary: dict[str, Any], stages: list[str], stream: TextIO | None = None) -> None:
    """The table at the end of a run: one line per piece, failures with their reasons, then the counts (to
    `stream`, else the sys.stdout of the moment: a default bound at import would miss a later redirect)."""
    stream = stream if stream is not None else sys.stdout
    rows = [piece_row(pid, p, stages) for pid, p in summary["pieces"].items()]

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    cols = ["piece", "status", "in_s", "music_s", "out_s", *[f"{s}_s" for s in stages]]
    heads = {
        "in_s": "input s",
        "music_s": "continued s",
        "out_s": "audio out s",
        **{f"{s}_s": f"{s} time" for s in stages},
    }
    table = [[heads.get(c, c) for c in cols]] + [[escape_controls(fmt(r[c])) for c in cols] for r in rows]
    widths = [max(_width(t[i]) for t in table) for i in range(len(cols))]
    print("", file=stream)
    for t in table:
        print(
            "  ".join(
                v + " " * (w - _width(v)) if i < 2 else " " * (w - _width(v)) + v
                for i, (v, w) in enumerate(zip(t, widths))
            ),
            file=stream,
        )
    problems = [r for r in rows if r["detail"]]
    if problems:
        print("", file=stream)
        for r in problems:
            print(escape_controls(f"{r['piece']}: {r['status']}: {r['detail']}"), file=stream)
    stale = summary.get("stale") or {}
    if stale:  # outputs kept from earlier runs, or made from what is no longer upstream of them
        print("", file=stream)
        for pid, stages_ in sorted(stale.items()):
            for stage, why in stages_.items():
                print(escape_controls(f"{pid}: stale {stage} output: {why}"), file=stream)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items()))
    print(
        f"{len(rows)} pieces: {counts}" + (f"; {summary.get('seconds', 0):.1f} s" if summary.get("seconds") else ""),
        file=stream,
    )
