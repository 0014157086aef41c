"""The run report, RUN_DIR/report.html: one page that opens offline, with no network and nothing external.

An index of every piece with its status and run-wide counts; per piece, the input and synthesized audio
players, piano rolls of the transcription and of primer + continuation, each stage's numbers and settings, errors.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from w2m2w.constants import __version__
from w2m2w.finding import input_kind
from w2m2w.run.piece_ids import UnsafePieceIdError, check_piece_id
from w2m2w.run.rundir import STAGES, RunDir, read_sidecar

MAX_NOTES = 20_000  # an SVG rect per note: cap it so a long piece keeps the page small
ROLL_WIDTH = 900
PRIMER_COLOUR = "#2b6cb0"
CONTINUATION_COLOUR = "#dd6b20"
_TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600)
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:960px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-top:1px solid #ccc;padding-top:.8em}h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #eee}
.done,.current{color:#276749}.failed{color:#c53030;font-weight:bold}.skipped,.not-run{color:#777}.interrupted,.locked,.stale{color:#b7791f}
.err{color:#c53030}.muted{color:#777}code{font-size:.95em;word-break:break-all}svg.roll{background:#fafafa;display:block}
.kv td:first-child{color:#555}.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;vertical-align:middle}
"""

# Collects script errors and <audio> errors (error events do not bubble, hence the capture listener),
# then publishes ready/errors/pieces on <body> so a headless browser's --dump-dom can check the page.
_SCRIPT = """
(function () {
  var errors = [];
  function publish() {
    var b = document.body; if (!b) return;
    b.dataset.errors = String(errors.length);
    b.dataset.pieces = String(document.querySelectorAll("section.piece").length);
    var box = document.getElementById("js-errors");
    if (box && errors.length) { box.textContent = "Page errors: " + errors.join("; "); }
  }
  window.onerror = function (msg) { errors.push(String(msg)); publish(); };
  document.addEventListener("error", function (e) {
    var t = e.target;
    if (t && (t.tagName === "AUDIO" || t.tagName === "SOURCE")) { errors.push("audio: " + (t.currentSrc || t.src)); publish(); }
  }, true);
  window.addEventListener("load", function () { publish(); document.body.dataset.ready = "1"; });
})();
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _cls(status: str) -> str:
    """A status as a CSS class name ('not run' -> 'not-run')."""
    return _esc(status.replace(" ", "-"))


def _tick_step(duration: float, max_ticks: int = 10) -> float:
    """The smallest round step that puts at most `max_ticks` ticks on the time axis."""
    return next((s for s in _TICK_STEPS if duration / s <= max_ticks), _TICK_STEPS[-1])


def piano_roll_svg(
    notes: np.ndarray,
    split_s: float | None = None,
    width: int = ROLL_WIDTH,
    max_notes: int = MAX_NOTES,
    bars: np.ndarray | None = None,
) -> str:
    """Inline SVG of a note list (n, 4): x = time, y = pitch; one <rect> per note, opacity by velocity.

    Notes starting at or after `split_s` get the continuation colour, and a dashed line marks `split_s`.
    bars (b,): bar-line times in seconds (the MIDI's tempo map), drawn as lines class="bar" within the roll.
    Beyond `max_notes` only the first notes are drawn and the SVG says so.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    total = len(notes)
    notes = notes[:max_notes]
    left, right, top, bottom = 36, 8, 14, 22
    if total:
        lo, hi = int(notes[:, 2].min()) - 2, int(notes[:, 2].max()) + 2
        t_end = float(notes[:, 1].max())
    else:
        lo, hi, t_end = 58, 70, 1.0
    if split_s is not None:
        t_end = max(t_end, float(split_s))
    t_end = max(t_end, 1e-3) * 1.01
    rows = hi - lo + 1
    plot_h = float(min(max(rows * 5, 120), 400))
    height = int(top + plot_h + bottom)
    sx, row_h = (width - left - right) / t_end, plot_h / rows
    out = [
        f'<svg class="roll" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-size="10" font-family="sans-serif">'
    ]
    # octave lines labelled at each C, so the pitch range reads at a glance
    for p in range(lo, hi + 1):
        if p % 12 == 0:
            y = top + (hi - p + 1) * row_h
            out.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/><text x="2" y="{y:.1f}">C{p // 12 - 1}</text>'
            )
    step = _tick_step(t_end)
    for k in range(int(t_end / step) + 1):
        x = left + k * step * sx
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h:.1f}" stroke="#eee"/><text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{k * step:g}s</text>'
        )
    for t in () if bars is None else np.asarray(bars, dtype=np.float64):
        if 0.0 <= t <= t_end:
            x = left + t * sx
            out.append(
                f'<line class="bar" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h:.1f}" stroke="#9bb"/>'
            )
    for on, off, pitch, vel in notes:
        colour = CONTINUATION_COLOUR if split_s is not None and on >= split_s else PRIMER_COLOUR
        opacity = 0.25 + 0.75 * min(max(vel, 0.0), 127.0) / 127.0
        out.append(
            f'<rect x="{left + on * sx:.1f}" y="{top + (hi - pitch) * row_h:.1f}" width="{max((off - on) * sx, 0.8):.1f}" '
            f'height="{max(row_h - 0.5, 0.8):.1f}" fill="{colour}" fill-opacity="{opacity:.2f}"/>'
        )
    if split_s is not None:
        x = left + float(split_s) * sx
        out.append(
            f'<line class="split" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{top + plot_h:.1f}" stroke="#c53030" stroke-dasharray="4 3"/>'
        )
    if not total:
        out.append(
            f'<text x="{width / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" fill="#777">no notes</text>'
        )
    elif total > len(notes):
        out.append(
            f'<text x="{width - right}" y="10" text-anchor="end" fill="#c53030">first {len(notes)} of {total} notes shown</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def relative_url(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """`path` relative to the folder `start`, as a URL path with each component quoted."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(start))
    except ValueError:  # another drive on Windows: no relative path exists
        return Path(os.path.abspath(path)).as_uri()
    return "/".join(quote(part) for part in Path(rel).parts)


def file_link(path: str | os.PathLike, report_dir: str | os.PathLike, text: str | None = None) -> str:
    """A link to a file by its path relative to the report, so that a click opens or downloads it (MIDI, WAV, input)."""
    return f'<a class="file" href="{_esc(relative_url(path, report_dir))}"><code>{_esc(text if text is not None else path)}</code></a>'


def audio_player(path: str | os.PathLike | None, report_dir: str | os.PathLike, text: str | None = None) -> str:
    """An <audio> player for an existing file and a link to it; a 'missing file' note otherwise.

    With preload="none" a browser never fetches a missing file, so its error would go unseen: check here.
    """
    if path is None or not Path(path).is_file():
        return f'<p class="err">missing file: <code>{_esc(path)}</code></p>'
    return f'<audio controls preload="none" src="{_esc(relative_url(path, report_dir))}"></audio> {file_link(path, report_dir, text)}'


def _kv_table(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, sort_keys=True, default=str))}</td></tr>"
        for k, v in d.items()
    )
    return f'<table class="kv">{rows}</table>'


def _wav_seconds(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def _midi_block(path: Path, split_s: float | None = None) -> str:
    """Key numbers and the piano roll of one MIDI output; a message instead if it does not read."""
    from w2m2w.midi import bar_lines, load_midi_notes  # pretty_midi is slow to import: only when a report is written

    try:
        notes = load_midi_notes(path)
    except Exception as exc:  # one unreadable file must not stop the report
        return f'<p class="err">cannot read {_esc(path.name)}: {_esc(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}</p>'
    end = float(notes[:, 1].max()) if len(notes) else 0.0
    facts = f"{len(notes)} notes, {end:.2f} s"
    legend = ""
    if split_s is not None:
        n_cont = int((notes[:, 0] >= split_s).sum())
        facts += f"; primer {len(notes) - n_cont} notes, continuation {n_cont} notes from {split_s:.2f} s"
        legend = (
            f'<span class="legend"><span style="background:{PRIMER_COLOUR}"></span>primer'
            f'<span style="background:{CONTINUATION_COLOUR}"></span>continuation</span>'
        )
    if len(notes) > MAX_NOTES:
        facts += f" (piano roll capped at the first {MAX_NOTES} notes)"
    bars = bar_lines(path)
    if bars is not None:
        facts += f"; {len(bars)} bars (the MIDI's tempo map)"
    return f"<p>{_esc(facts)} {legend}</p>\n{piano_roll_svg(notes, split_s, bars=bars)}"


def _stage_block(
    rd: RunDir, stage: str, piece: str, info: dict[str, Any], kind: str | None = None, stale: str | None = None
) -> str:
    """One stage of one piece: status, output (roll or player), timings, settings and stats.

    A stale output (freshness: kept after a failure, or made from what is no longer upstream of it)
    is named as such with the reason; stale audio gets a link, not a player, so it is never heard
    as the rendering of the continuation shown above it.
    """
    out, run_dir = rd.output(stage, piece), rd.path
    status = info.get("status")
    head = f"<h3>{STAGES.index(stage) + 1}. {stage}</h3>"
    parts = [head]
    if status == "failed":
        parts.append(f'<p class="failed">failed: {_esc(info.get("error") or "unknown error")}</p>')
    if not out.is_file():
        why = " (not needed: the input is MIDI)" if stage == "transcribe" and kind == "midi" else ""
        return "\n".join(parts) if status == "failed" else f'{head}<p class="not-run">not run{why}</p>'
    side = read_sidecar(out)
    if stale:
        parts.append(f'<p class="stale">stale: {_esc(stale)}</p>')
    elif status and status != "failed":
        parts.append(f'<p class="{_cls(status)}">{_esc(status)}</p>')
    link = f"<p>file: {file_link(out, run_dir, out.relative_to(run_dir).as_posix())}</p>"
    score = out.with_suffix(".musicxml")  # a side output (transcribe.score, generate.score)
    if score.is_file():
        link += f"<p>score: {file_link(score, run_dir, score.relative_to(run_dir).as_posix())}</p>"
    try:
        if stage == "synthesize" and stale:
            parts.append(f"<p>{_wav_seconds(out):.2f} s of audio (stale: not played here)</p>{link}")
        elif stage == "synthesize":
            parts.append(
                f"<p>{_wav_seconds(out):.2f} s of audio</p><p>{audio_player(out, run_dir, out.relative_to(run_dir).as_posix())}</p>"
            )
        else:
            split = None
            if stage == "generate":
                split = float(((side or {}).get("stats") or {}).get("primer_end_s") or 0.0)
            parts.append(_midi_block(out, split) + link)
    except Exception as exc:
        parts.append(
            f'<p class="err">cannot read {_esc(out.name)}: {_esc(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}</p>'
        )
    if side is None:
        parts.append('<p class="err">no readable sidecar (.json) next to this output</p>')
    else:
        seconds = (side.get("timings") or {}).get("seconds")
        parts.append(
            f"<p>took {_esc(seconds)} s (written {_esc(side.get('created', '?'))})</p>" if seconds is not None else ""
        )
        for title in ("settings", "stats"):
            if side.get(title):
                parts.append(f"<details><summary>{title}</summary>{_kv_table(side[title])}</details>")
    return "\n".join(parts)


def _piece_section(rd: RunDir, idx: int, piece: str, entry: dict[str, Any]) -> str:
    """The section of one piece; any error reading its files shows up inside it."""
    source, status = entry.get("source"), entry["status"]
    kind = entry.get("kind") or (input_kind(source) if source else None)
    parts = [
        f'<section class="piece" id="piece-{idx}"><h2>{_esc(piece)} <span class="{_cls(status)}">[{_esc(status)}]</span></h2>',
        f"<p>source: <code>{_esc(source or 'unknown')}</code></p>",
    ]
    if entry.get("error"):
        parts.append(f'<p class="err">{_esc(entry["error"])}</p>')
    try:
        check_piece_id(piece)
    except (
        UnsafePieceIdError
    ) as exc:  # an edited or damaged run.json or summary: no path is made of this id, not even to read
        parts.append(
            f'<p class="err">{_esc(exc)}; its files are not shown</p><p><a href="#index">back to index</a></p></section>'
        )
        return "\n".join(parts)
    parts.append("<h3>input</h3>")
    try:
        if kind == "midi":
            parts.append("<p>Input is MIDI: no input audio (it enters at generate).</p>")
            parts.append(
                _midi_block(Path(source))
                + (f"<p>file: {file_link(source, rd.path)}</p>" if Path(source).is_file() else "")
            )
        else:
            seconds = (entry["stages"].get("transcribe") or {}).get("audio_seconds") or (
                (read_sidecar(rd.output("transcribe", piece)) or {}).get("stats") or {}
            ).get("audio_seconds")
            parts.append((f"<p>{float(seconds):.2f} s of audio</p>" if seconds else "") + audio_player(source, rd.path))
        stale = entry.get("stale") or {}
        for stage in STAGES:
            parts.append(_stage_block(rd, stage, piece, entry["stages"].get(stage) or {}, kind, stale.get(stage)))
    except Exception as exc:  # anything unforeseen stays inside this piece's section
        parts.append(f'<p class="err">cannot show this piece: {_esc(type(exc).__name__)}: {_esc(exc)}</p>')
    parts.append('<p><a href="#index">back to index</a></p></section>')
    return "\n".join(parts)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def collect_pieces(run_json: dict[str, Any], summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Piece id -> {source, kind, status, error, stages}: every input of run.json and every piece of the summary.

    Pieces in run.json that this call did not process get the status 'not run'.
    """
    inputs = run_json.get("inputs") or {}
    done = summary.get("pieces") or {}
    pieces = {}
    for pid in sorted(set(inputs) | set(done)):
        inp, res = inputs.get(pid) or {}, done.get(pid) or {}
        pieces[pid] = {
            "source": inp.get("source") or res.get("source"),
            "kind": inp.get("kind"),
            "status": res.get("status") or "not run",
            "error": res.get("error"),
            "stages": res.get("stages") or {},
            "stale": (summary.get("stale") or {}).get(pid) or {},
        }
    return pieces


def _stale_note(stale: dict[str, str]) -> str:
    """' (stale: generate, synthesize)' after a piece's status in the index, or ''."""
    return f' <span class="stale">(stale: {_esc(", ".join(stale))})</span>' if stale else ""


def write_report(run_dir: str | os.PathLike | RunDir, summary: dict | None = None) -> Path:
    """Write RUN_DIR/report.html (atomically) from the run's files and `summary` (else summary.json); return its path."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    run_dir = rd.path
    if summary is None:
        summary = _load_json(rd.summary_json)
    run_json = _load_json(rd.run_json)
    pieces = collect_pieces(run_json, summary)
    counts: dict[str, int] = {}
    for p in pieces.values():
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    count_text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no pieces"
    index = "".join(
        f'<tr><td><a href="#piece-{i}">{_esc(pid)}</a></td><td class="{_cls(p["status"])}">{_esc(p["status"])}'
        f"{_stale_note(p['stale'])}</td>"
        f'<td class="err">{_esc(p["error"] or "")}</td></tr>'
        for i, (pid, p) in enumerate(pieces.items())
    )
    sections = [_piece_section(rd, i, pid, p) for i, (pid, p) in enumerate(pieces.items())]
    config = summary.get("config")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>w2m2w run report: {_esc(run_dir.name)}</title>
<style>{_CSS}</style><script>{_SCRIPT}</script></head>
<body><h1>w2m2w run report</h1>
<p>run directory <code>{_esc(run_dir.resolve())}</code>; written {_esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by w2m2w {_esc(__version__)};
stages of the last call: {_esc(", ".join(summary.get("stages") or []) or "unknown")}</p>
<p id="js-errors" class="err"></p>
<h2 id="index">{len(pieces)} pieces: {_esc(count_text)}</h2>
{f"<table><tr><th>piece</th><th>status</th><th>error</th></tr>{index}</table>" if pieces else '<p class="muted">This run has no pieces.</p>'}
{f"<details><summary>configuration</summary><pre>{_esc(json.dumps(config, indent=2, sort_keys=True, default=str))}</pre></details>" if config else ""}
{chr(10).join(sections)}
</body></html>
"""
    path = rd.report_html
    with rd.atomic(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
