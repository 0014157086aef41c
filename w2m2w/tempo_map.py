"""A MIDI file whose tempo map follows tracked beats, its notes where they were in seconds (issue #32).

Beat i of the grid sits at tick i * resolution: one set_tempo per beat, time signatures where the bar
length changes, so a DAW's bar lines fall on the downbeats. The file is written with mido, not
PrettyMIDI.write, because the latter truncates each tempo to whole microseconds per beat and the error
would add up over a piece; here each tempo is rounded with the previous rounding error carried into
the next (error diffusion), so the grid's realised beat times stay within 1 us of the tracked ones and
every note lands within half a tick (0.26 ms at 960 ticks and 120 bpm) of its time in seconds.
"""

from __future__ import annotations

import io
import os

import numpy as np

from w2m2w.beats import Beats, extend_beats
from w2m2w.midi import has_tempo_map

RESOLUTION = 960  # ticks per beat (quarter note)
SUSTAIN_CC = 64


def lead_in_grid(beats: Beats, end: float) -> Beats:
    """The grid from time 0: `beats` extended to `end`, with the stretch before its first beat split
    into whole beats at about the first tempo (the first one starting at 0 s, as tick 0 must)."""
    ext = extend_beats(
        beats, end=end, start=float(beats.times[0]) if len(beats.times) else 0.0
    )  # lead-in below, not at the first tempo
    t0 = float(ext.times[0])
    ibi = float(ext.times[1] - ext.times[0])
    if t0 <= 1e-6:
        return ext
    k = max(1, int(round(t0 / ibi)))
    lead = np.arange(k) * (t0 / k)
    first_db = int(np.flatnonzero(ext.is_downbeat)[0]) if ext.is_downbeat.any() else 0
    # lead-in beats continue the bar count backwards from the first downbeat
    lead_db = (np.arange(-k, 0) - first_db) % ext.meter == 0
    return Beats(np.concatenate([lead, ext.times]), np.concatenate([lead_db, ext.is_downbeat]), ext.meter)


def tempos_us(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds per beat (m-1,) ints for a grid (m,) starting at 0 s, and the grid as realised by
    them (m,) seconds: each rounding error is carried into the next beat's tempo."""
    us = np.zeros(len(grid) - 1, dtype=np.int64)
    real = np.zeros(len(grid))
    acc = 0  # realised time, integer microseconds: exact
    for i in range(len(grid) - 1):
        us[i] = max(1, int(round(grid[i + 1] * 1e6)) - acc)
        acc += int(us[i])
        real[i + 1] = acc / 1e6
    return us, real


def seconds_to_ticks(t: np.ndarray, real: np.ndarray, us: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """Nearest tick (n,) of times (n,) on the realised grid (m,) with tempos us (m-1,); the last tempo
    goes on past the grid's end."""
    seg = np.clip(np.searchsorted(real, t, side="right") - 1, 0, len(us) - 1)
    return seg * resolution + np.round((t - real[seg]) / (us[seg] / 1e6) * resolution).astype(np.int64)


def time_signatures(is_downbeat: np.ndarray, meter: int) -> list[tuple[int, int]]:
    """(beat index, numerator) of each time-signature change: bars run from downbeat to downbeat; the
    beats before the first downbeat are a pickup bar of their own length."""
    dbs = list(np.flatnonzero(is_downbeat))
    if not dbs:
        return [(0, meter)]
    out: list[tuple[int, int]] = []
    starts = ([0] if dbs[0] > 0 else []) + dbs
    for a, b in zip(starts, starts[1:] + [None]):
        length = (b - a) if b is not None else meter
        if not out or out[-1][1] != length:
            out.append((int(a), int(length)))
    return out


def tempo_mapped_midi(
    notes: np.ndarray,
    beats: Beats,
    pedal: np.ndarray | None = None,
    resolution: int = RESOLUTION,
    key: str | None = None,
    program: int = 0,
):
    """A mido.MidiFile (type 1: a conductor track, a piano track) of notes (n, 4) and sustain pedal (p, 2)
    seconds, whose tempo map follows `beats`; key: a mido key name ('C', 'Am', ...) or None."""
    import mido

    end = (
        float(max(notes[:, 1].max() if len(notes) else 0.0, pedal.max() if pedal is not None and len(pedal) else 0.0))
        + 1.0
    )
    grid = lead_in_grid(beats, end)
    us, real = tempos_us(grid.times)
    meta = [(int(i * resolution), 0, mido.MetaMessage("set_tempo", tempo=int(u))) for i, u in enumerate(us)]
    meta += [
        (int(i * resolution), 0, mido.MetaMessage("time_signature", numerator=n, denominator=4))
        for i, n in time_signatures(grid.is_downbeat, grid.meter)
    ]
    if key:
        meta.append((0, 0, mido.MetaMessage("key_signature", key=key)))
    events = []  # (tick, order, message): note-offs before note-ons at one tick, so repeated notes re-strike
    if len(notes):
        on = seconds_to_ticks(notes[:, 0], real, us, resolution)
        off = np.maximum(seconds_to_ticks(notes[:, 1], real, us, resolution), on + 1)
        for a, b, p, v in zip(on, off, notes[:, 2].astype(int), notes[:, 3]):
            events.append((int(a), 2, mido.Message("note_on", note=int(p), velocity=int(np.clip(round(v), 1, 127)))))
            events.append((int(b), 0, mido.Message("note_off", note=int(p), velocity=0)))
    if pedal is not None and len(pedal):
        down = seconds_to_ticks(pedal[:, 0], real, us, resolution)
        up = seconds_to_ticks(pedal[:, 1], real, us, resolution)
        for a, b in zip(down, up):
            if b > a:
                events.append((int(a), 1, mido.Message("control_change", control=SUSTAIN_CC, value=127)))
                events.append((int(b), 1, mido.Message("control_change", control=SUSTAIN_CC, value=0)))
    mid = mido.MidiFile(type=1, ticks_per_beat=resolution)
    for evs, head in ((meta, None), (events, mido.Message("program_change", program=program))):
        track = mido.MidiTrack()
        if head is not None:
            track.append(head)
        now = 0
        for tick, _, msg in sorted(evs, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    return mid


def with_tempo_map(
    notes: np.ndarray,
    beats: Beats,
    pedal: np.ndarray | None = None,
    resolution: int = RESOLUTION,
    key: str | None = None,
):
    """The same as tempo_mapped_midi, read back as a pretty_midi.PrettyMIDI (what the stages use)."""
    import pretty_midi

    buf = io.BytesIO()
    tempo_mapped_midi(notes, beats, pedal, resolution, key).save(file=buf)
    buf.seek(0)
    return pretty_midi.PrettyMIDI(buf)


def write_tempo_mapped_midi(
    path: str | os.PathLike,
    notes: np.ndarray,
    beats: Beats,
    pedal: np.ndarray | None = None,
    resolution: int = RESOLUTION,
    key: str | None = None,
) -> None:
    """Write tempo_mapped_midi to `path` (the caller renames it into place)."""
    tempo_mapped_midi(notes, beats, pedal, resolution, key).save(str(path))


def beats_in_midi(pm) -> Beats | None:
    """The beats of PrettyMIDI `pm` by its own tempo map and time signatures (pretty_midi's get_beats and
    get_downbeats, up to its last note), or None where it has no tempo map (has_tempo_map). meter: the
    last time signature's beats per bar."""
    if not has_tempo_map(pm):
        return None
    times = np.asarray(pm.get_beats(), dtype=np.float64)
    downbeats = np.asarray(pm.get_downbeats(), dtype=np.float64)
    is_downbeat = np.isin(np.round(times, 6), np.round(downbeats, 6))
    meter = pm.time_signature_changes[-1].numerator if pm.time_signature_changes else 4
    return Beats(times, is_downbeat, int(meter)) if len(times) >= 2 else None


def shift_beats(beats: Beats, offset: float, end: float) -> Beats:
    """`beats` in a time frame that starts `offset` seconds later (a continuation starts where its primer
    started in the input), carried on to cover [0, end] of that frame at its first and last tempo."""
    full = extend_beats(beats, end=offset + end, start=offset)
    keep = full.times >= offset - 1e-9
    return Beats(full.times[keep] - offset, full.is_downbeat[keep], full.meter)
