"""Sustain pedal as intervals: read from MIDI (CC64) or a .pedal.tsv, cropped, as training rolls,
and decoded from a pedal head's probabilities.

A pedal list is a float array of shape (n, 2): the seconds the pedal goes down and comes up,
sorted and not overlapping. A note list's pedal lives beside it: a MIDI file's CC64, or for a
NAME.tsv note file an optional NAME.pedal.tsv (one header line, then down and up seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from w2m2w.midi import SUSTAIN_CC, MidiError, merge_intervals, pedal_intervals


def empty_pedal() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float64)


def pedal_tsv_path(notes_path: str | os.PathLike) -> Path:
    """NAME.tsv -> NAME.pedal.tsv, where a TSV note file's pedal is kept."""
    p = Path(notes_path)
    return (
        p.with_name(p.name[: -len(".tsv")] + ".pedal.tsv")
        if p.name.lower().endswith(".tsv")
        else p.with_suffix(".pedal.tsv")
    )


def pedal_from_pretty_midi(pm, threshold: int = 64) -> np.ndarray:
    """Pedal intervals of the non-drum instruments' CC64 (several pedal tracks: their union)."""
    end = max((n.end for inst in pm.instruments for n in inst.notes), default=0.0)
    spans: list[tuple[float, float]] = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        spans += pedal_intervals(
            [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC], end, threshold
        )
    return merge_intervals(np.array(spans, dtype=np.float64).reshape(-1, 2))


def load_pedal(notes_path: str | os.PathLike) -> np.ndarray | None:
    """The pedal that goes with a note file: CC64 of a MIDI file, or NAME.pedal.tsv beside NAME.tsv.

    None when the source says nothing about the pedal (a TSV without a .pedal.tsv), so callers can
    tell "no pedal information" from "the pedal was never pressed" (an empty array).
    """
    p = Path(notes_path)
    if p.name.lower().endswith(".tsv"):
        side = pedal_tsv_path(p)
        if not side.is_file():
            return None
        rows = [line.split("\t")[:2] for line in side.read_text().splitlines()[1:] if line.strip()]
        return merge_intervals(np.array(rows, dtype=np.float64).reshape(-1, 2))  # no rows: never pressed
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(p))
    except Exception as exc:
        raise MidiError(
            f"{p}: not a readable MIDI file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    return pedal_from_pretty_midi(pm)


def save_pedal_tsv(path: str | os.PathLike, pedal: np.ndarray) -> None:
    np.savetxt(
        str(path), np.asarray(pedal, dtype=np.float64).reshape(-1, 2), fmt="%.6f", delimiter="\t", header="down,up"
    )


def crop_pedal(pedal: np.ndarray, start: float, duration: float) -> np.ndarray:
    """The parts of the intervals inside [start, start + duration), shifted to 0 and clipped to it
    (a pedal already down at `start` reads as pressed at 0, as crop_notes treats notes)."""
    pedal = np.asarray(pedal, dtype=np.float64).reshape(-1, 2)
    keep = (pedal[:, 1] > start) & (pedal[:, 0] < start + duration)
    out = pedal[keep] - start
    out[:, 0] = np.maximum(out[:, 0], 0.0)
    out[:, 1] = np.minimum(out[:, 1], duration)
    return out


def pedal_rolls(pedal: np.ndarray, n_frames: int, frame_rate: float) -> dict[str, np.ndarray]:
    """Training targets for a pedal head, each (n_frames,) float32.

    frame: 1 while the pedal is down; onset/offset: 1 on the frame where it goes down/up.
    An interval that starts before frame 0 or ends after the last frame has no onset/offset
    inside the window, since the segment does not contain that event.
    """
    rolls = {k: np.zeros(n_frames, dtype=np.float32) for k in ("onset", "offset", "frame")}
    for down, up in np.asarray(pedal, dtype=np.float64).reshape(-1, 2):
        a = int(round(down * frame_rate))
        b = max(int(round(up * frame_rate)), a + 1)
        if a >= n_frames or b <= 0:
            continue
        rolls["frame"][max(a, 0) : min(b, n_frames)] = 1
        if down >= 0 and a >= 0:
            rolls["onset"][a] = 1
        if b < n_frames:
            rolls["offset"][b] = 1
    return rolls


# Shortest pedal press decode_pedal keeps by default: a one-frame blip of the transcriber (32 ms at
# 31.25 frames/s) is noise, and only 0.6 % of the presses in the team's MAESTRO-derived ASAP MIDI
# (every 5th of its 994 files, 47,350 presses) are shorter than 50 ms; a quarter are under 0.34 s.
PEDAL_MIN_DURATION = 0.05


def _run_starts(x: np.ndarray) -> np.ndarray:
    """(T,) bool -> (T,) bool: True on the first frame of each run of True."""
    return x & ~np.concatenate([[False], x[:-1]])


def decode_pedal(
    onset: np.ndarray,
    offset: np.ndarray,
    frame: np.ndarray,
    frame_rate: float,
    onset_threshold: float = 0.5,
    offset_threshold: float = 0.5,
    frame_threshold: float = 0.5,
    min_duration: float = PEDAL_MIN_DURATION,
    change_gap: float = 0.0,
) -> np.ndarray:
    """Pedal intervals (n, 2) in seconds from a pedal head's (frames,) probabilities.

    After Kong et al. 2021 (frame and offset decide), with the onset head as a second way in:
    - the pedal goes down on the first frame of a run of frame probability above
      `frame_threshold`, or of a run of onset probability above `onset_threshold`
      (a recording that starts with the pedal down starts a pedal at frame 0);
    - it comes up at the first later frame where an offset run starts (probability above
      `offset_threshold`), where neither frame nor onset probability is above its threshold
      (the onset run counts as down, as a note's onset run does in decode_notes), or where a new
      onset run starts (a pedal change the offset head missed);
    - after an up it only goes down again where a new run starts, so a frame probability that
      lags behind an offset does not restart it at once; a run that starts on the very frame the
      pedal came up starts the next pedal one frame later, so intervals never touch (CC64 written
      up and down at one instant is ambiguous, and merge_intervals would join them);
    - with `change_gap` > 0 an up at an offset run is read as a pedal change: the pedal goes down
      again `change_gap` seconds later if frame or onset probability still says down there (and
      has not dropped since), without waiting for a new run. A change is a lift of a tenth of a
      second or two under a frame head that stays high, so the frame head alone never shows it;
    - one still down on the last frame comes up at the end (frames / frame_rate);
    - presses shorter than `min_duration` seconds are dropped. Gaps are never merged: a pedal
      change lifts the pedal for a median 0.14 s in MAESTRO, 12 % of them under 64 ms (2 frames).
    "Above" is strict, as in decode_notes. Times are frame index / frame_rate.
    """
    onset, offset, frame = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (onset, offset, frame))
    if not len(onset) == len(offset) == len(frame):
        raise ValueError(f"pedal onset, offset and frame lengths differ: {len(onset)}, {len(offset)}, {len(frame)}")
    on, fr = onset > onset_threshold, frame > frame_threshold
    on_start, fr_start, off_start = _run_starts(on), _run_starts(fr), _run_starts(offset > offset_threshold)
    down = on | fr
    out: list[tuple[int, int]] = []
    start: int | None = None
    deferred = False  # a run started on the frame the pedal came up: go down on the next frame if still down
    gap = int(round(change_gap * frame_rate))
    resume: int | None = None  # after a pedal change: down again from this frame while still down
    for t in range(len(frame)):
        if start is not None:
            if t > start and (off_start[t] or not down[t] or on_start[t]):
                out.append((start, t))
                start = None
                deferred = bool(on_start[t] or fr_start[t])
                resume = t + max(gap, 1) if gap > 0 and off_start[t] and down[t] else None
            continue
        if not down[t]:
            resume = None  # it really came up: only a new run takes it down again
        if on_start[t] or fr_start[t] or (deferred and down[t]) or (resume is not None and t >= resume):
            start = t
            resume = None
        deferred = False
    if start is not None:
        out.append((start, len(frame)))
    pedal = np.array(out, dtype=np.float64).reshape(-1, 2) / frame_rate
    return pedal[pedal[:, 1] - pedal[:, 0] >= min_duration]
