"""Sustain pedal as intervals: read from MIDI (CC64) or a .pedal.tsv, cropped, and as training rolls.

A pedal list is a float array of shape (n, 2): the seconds the pedal goes down and comes up,
sorted and not overlapping. A note list's pedal lives beside it: a MIDI file's CC64, or for a
NAME.tsv note file an optional NAME.pedal.tsv (one header line, then down and up seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .midi import SUSTAIN_CC, MidiError, pedal_intervals


def empty_pedal() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.float64)


def pedal_tsv_path(notes_path: str | os.PathLike) -> Path:
    """NAME.tsv -> NAME.pedal.tsv, where a TSV note file's pedal is kept."""
    p = Path(notes_path)
    return p.with_name(p.name[: -len(".tsv")] + ".pedal.tsv") if p.name.lower().endswith(".tsv") else p.with_suffix(".pedal.tsv")


def pedal_from_pretty_midi(pm, threshold: int = 64) -> np.ndarray:
    """Pedal intervals of the non-drum instruments' CC64 (several pedal tracks: their union)."""
    end = max((n.end for inst in pm.instruments for n in inst.notes), default=0.0)
    spans: list[tuple[float, float]] = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        spans += pedal_intervals([(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC], end, threshold)
    return merge_intervals(np.array(spans, dtype=np.float64).reshape(-1, 2))


def merge_intervals(pedal: np.ndarray) -> np.ndarray:
    """Sorted union of (n, 2) intervals; ones that touch or overlap become one."""
    pedal = np.asarray(pedal, dtype=np.float64).reshape(-1, 2)
    if len(pedal) == 0:
        return empty_pedal()
    pedal = pedal[np.argsort(pedal[:, 0], kind="stable")]
    out = [list(pedal[0])]
    for a, b in pedal[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=np.float64)


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
        return merge_intervals(np.loadtxt(str(side), delimiter="\t", skiprows=1, ndmin=2).reshape(-1, 2))
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(p))
    except Exception as exc:
        raise MidiError(f"{p}: not a readable MIDI file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return pedal_from_pretty_midi(pm)


def save_pedal_tsv(path: str | os.PathLike, pedal: np.ndarray) -> None:
    np.savetxt(str(path), np.asarray(pedal, dtype=np.float64).reshape(-1, 2), fmt="%.6f", delimiter="\t", header="down,up")


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
