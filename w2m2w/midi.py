"""Notes as arrays, MIDI files, sustain pedal and piano rolls.

A note list is a float array of shape (n, 4): onset seconds, offset seconds,
MIDI pitch, velocity (1..127), sorted by onset then pitch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MIN_MIDI = 21  # A0
MAX_MIDI = 108  # C8
N_KEYS = MAX_MIDI - MIN_MIDI + 1
SUSTAIN_CC = 64


class MidiError(ValueError):
    """A MIDI input that cannot be used; the message names the file and the reason."""


def empty_notes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float64)


def sort_notes(notes: np.ndarray) -> np.ndarray:
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    order = np.lexsort((notes[:, 2], notes[:, 0]))
    return notes[order]


def pedal_intervals(pedal: list[tuple[float, float]], end: float, threshold: int = 64) -> list[tuple[float, float]]:
    """Pedal-down (start, end) intervals from (time, value) control changes; one still down at the end
    lasts until `end` (the last note's offset), or an instant if it went down after that."""
    intervals: list[tuple[float, float]] = []
    down_at: float | None = None
    for t, v in sorted(pedal):
        if v >= threshold and down_at is None:
            down_at = t
        elif v < threshold and down_at is not None:
            intervals.append((down_at, t))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, max(end, down_at)))
    return intervals


def merge_intervals(pedal: np.ndarray) -> np.ndarray:
    """Sorted union of (n, 2) intervals; ones that touch or overlap become one."""
    pedal = np.asarray(pedal, dtype=np.float64).reshape(-1, 2)
    if len(pedal) == 0:
        return np.zeros((0, 2), dtype=np.float64)  # pedal.empty_pedal()
    pedal = pedal[np.argsort(pedal[:, 0], kind="stable")]
    out = [list(pedal[0])]
    for a, b in pedal[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=np.float64)


def apply_sustain(notes: np.ndarray, pedal: list[tuple[float, float]], threshold: int = 64) -> np.ndarray:
    """Lengthen notes held by the sustain pedal.

    `pedal` is a list of (time, value) control changes. A note released while
    the pedal is down lasts until the pedal is lifted, or until the same key is
    struck again, whichever comes first (the damper cannot hold a restruck string).
    """
    notes = sort_notes(notes).copy()
    if len(notes) == 0 or not pedal:
        return notes
    intervals = pedal_intervals(pedal, float(notes[:, 1].max()), threshold)
    if not intervals:
        return notes
    starts = np.array([a for a, _ in intervals])
    ends = np.array([b for _, b in intervals])
    for i in range(len(notes)):
        off = notes[i, 1]
        k = np.searchsorted(starts, off, side="right") - 1
        if k >= 0 and starts[k] <= off < ends[k]:
            notes[i, 1] = ends[k]
    # a restruck key cuts the sustained note short
    for pitch in np.unique(notes[:, 2]):
        idx = np.flatnonzero(notes[:, 2] == pitch)
        for a, b in zip(idx[:-1], idx[1:]):
            if notes[a, 1] > notes[b, 0]:
                notes[a, 1] = max(notes[b, 0], notes[a, 0] + 1e-3)
    return notes


def notes_from_pretty_midi(pm, apply_pedal: bool = True, drop_drums: bool = True) -> np.ndarray:
    """All non-drum notes of a PrettyMIDI object as a note list, pedal applied per instrument."""
    out = []
    for inst in pm.instruments:
        if drop_drums and inst.is_drum:
            continue
        arr = np.array([[n.start, n.end, n.pitch, n.velocity] for n in inst.notes], dtype=np.float64).reshape(-1, 4)
        if apply_pedal:
            pedal = [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC]
            arr = apply_sustain(arr, pedal)
        out.append(arr)
    if not out:
        return empty_notes()
    notes = sort_notes(np.concatenate(out))
    return notes[notes[:, 1] > notes[:, 0]]


def load_midi_notes(path: str | os.PathLike, apply_pedal: bool = True) -> np.ndarray:
    """Read a MIDI file into a note list; MidiError with a one-line reason if it does not parse."""
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise MidiError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MidiError(f"{path}: file is empty (0 bytes)")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MidiError(f"{path}: not a readable MIDI file ({reason})") from None
    return notes_from_pretty_midi(pm, apply_pedal=apply_pedal)


def save_tsv_notes(path: str | os.PathLike, notes: np.ndarray) -> None:
    """A note list (n, 4) as the TSV load_tsv_notes reads: one header line, then onset, offset, note, velocity."""
    np.savetxt(
        str(path),
        np.asarray(notes, dtype=np.float64).reshape(-1, 4),
        fmt="%.6f",
        delimiter="\t",
        header="onset,offset,note,velocity",
    )


def load_tsv_notes(path: str | os.PathLike) -> np.ndarray:
    """MAPS-style TSV (onset, offset, note, velocity; one header line) as a note list."""
    data = np.loadtxt(str(path), delimiter="\t", skiprows=1, ndmin=2)
    return sort_notes(data[:, :4])


def load_notes(path: str | os.PathLike, apply_pedal: bool = True) -> np.ndarray:
    """Note list from a .mid/.midi or .tsv file."""
    p = str(path).lower()
    if p.endswith(".tsv"):
        return load_tsv_notes(path)
    return load_midi_notes(path, apply_pedal=apply_pedal)


def notes_to_pretty_midi(notes: np.ndarray, program: int = 0, name: str = "piano", pedal: np.ndarray | None = None):
    """A one-instrument PrettyMIDI object holding `notes` and, if given, the sustain pedal.

    pedal: (n, 2) down/up seconds, written as CC64 127 at each down and 0 at each up on the
    same track (overlapping or touching intervals are joined first, as pedal.load_pedal reads
    them). A press that would span no MIDI tick (under 1/440 s at the file's 120 bpm and 220
    ticks per beat) is left out: its 127 and 0 would share a tick, and a reader that sorts
    simultaneous events by value reads an up then a down that never comes up.
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=program, name=name)
    for on, off, pitch, vel in sort_notes(notes):
        inst.notes.append(
            pretty_midi.Note(
                velocity=int(np.clip(round(vel), 1, 127)),
                pitch=int(pitch),
                start=float(on),
                end=float(max(off, on + 1e-3)),
            )
        )
    if pedal is not None:
        for down, up in merge_intervals(pedal):
            if pm.time_to_tick(float(up)) <= pm.time_to_tick(float(down)):
                continue
            inst.control_changes.append(pretty_midi.ControlChange(SUSTAIN_CC, 127, float(down)))
            inst.control_changes.append(pretty_midi.ControlChange(SUSTAIN_CC, 0, float(up)))
    pm.instruments.append(inst)
    return pm


def write_midi(path: str | os.PathLike, notes: np.ndarray, pedal: np.ndarray | None = None) -> None:
    """Write `notes` (n, 4) as a one-track piano MIDI file, with the sustain pedal (m, 2) as CC64 if given."""
    notes_to_pretty_midi(notes, pedal=pedal).write(str(path))


def has_tempo_map(pm) -> bool:
    """Whether PrettyMIDI `pm` carries a tempo map of its own: more than one tempo, one other than 120 bpm,
    or a time signature other than one 4/4. A file with none of these (what most transcribers write, and
    this project did before issue #32) says nothing about where the music's beats are."""
    _, tempi = pm.get_tempo_changes()
    signatures = {(ts.numerator, ts.denominator) for ts in pm.time_signature_changes}
    return len(tempi) > 1 or (len(tempi) == 1 and abs(float(tempi[0]) - 120.0) > 1e-3) or bool(signatures - {(4, 4)})


def bar_lines(path: str | os.PathLike) -> np.ndarray | None:
    """Bar-line times (b,) seconds of a MIDI file by its tempo map and time signatures, up to its last note;
    None where it has no tempo map of its own (has_tempo_map) or does not read."""
    import pretty_midi

    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception:  # the caller shows the notes' own error
        return None
    return np.asarray(pm.get_downbeats(), dtype=np.float64) if has_tempo_map(pm) else None


def notes_to_rolls(notes: np.ndarray, n_frames: int, frame_rate: float, onset_frames: int = 1) -> dict[str, np.ndarray]:
    """Training targets for the transcriber, each (n_frames, 88) float32.

    onset/offset: 1 on the frame(s) where a note starts/ends; frame: 1 while it
    sounds; velocity: velocity/127 on the onset frames.
    """
    rolls = {k: np.zeros((n_frames, N_KEYS), dtype=np.float32) for k in ("onset", "offset", "frame", "velocity")}
    for on, off, pitch, vel in notes:
        k = int(pitch) - MIN_MIDI
        if not 0 <= k < N_KEYS:
            continue
        a = int(round(on * frame_rate))
        b = int(round(off * frame_rate))
        if a >= n_frames or b < 0:
            continue
        b = max(b, a + 1)
        a0 = max(a, 0)
        rolls["frame"][a0 : min(b, n_frames), k] = 1
        if a >= 0:
            rolls["onset"][a : min(a + onset_frames, n_frames), k] = 1
            rolls["velocity"][a : min(a + onset_frames, n_frames), k] = vel / 127.0
        if b < n_frames:
            rolls["offset"][b, k] = 1
    return rolls


def notes_in_range(notes: np.ndarray) -> np.ndarray:
    """Mask of notes inside the 88 piano keys."""
    return (notes[:, 2] >= MIN_MIDI) & (notes[:, 2] <= MAX_MIDI)
