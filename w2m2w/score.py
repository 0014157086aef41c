"""Notation from a performance: quantization to a beat grid, hand split and key (issue #32).

quantize() puts each note of a note list (n, 4: onset, offset, pitch, velocity; seconds) on the beat
grid of a w2m2w.beats.Beats, choosing per beat between sixteenths and triplets; positions are exact
Fractions of a beat counted from the first bar line. split_hands() and estimate_key() are small pure
functions. The MusicXML writer is w2m2w.musicxml; the tempo-mapped MIDI writer is w2m2w.tempo_map.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from w2m2w.beats import Beats, extend_beats

GRIDS = (4, 3)  # subdivisions of a beat tried per beat: sixteenths (and eighths, quarters), triplets
TRIPLET_PENALTY = 0.02  # beats of mean error a triplet reading must save over sixteenths to be chosen


@dataclass(frozen=True)
class Quantized:
    """Notes on a beat grid: onsets and offsets (n,) Fractions of beats from the first bar line, pitch and
    velocity (n,) ints, and the bar lines (b,) as beat indices (bar_lines[0] == 0)."""

    onsets: list[Fraction]
    offsets: list[Fraction]
    pitches: list[int]
    velocities: list[int]
    bar_lines: list[int]
    grid: Beats  # the (extended) grid that beat 0 .. len-1 refer to, shifted so beat 0 is the first bar line

    def positions(self) -> list[tuple[Fraction, int]]:
        """(beats from the bar line, bar index) of each note's onset."""
        out = []
        lines = np.asarray(self.bar_lines)
        for on in self.onsets:
            b = int(np.searchsorted(lines, int(np.floor(on)), side="right")) - 1
            b = max(b, 0)
            out.append((on - int(lines[b]), b))
        return out


def beat_positions(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Continuous beat index (n,) of times (n,) on a beat grid (m,) seconds, m >= 2; linear beyond its ends."""
    pos = np.interp(times, grid, np.arange(len(grid), dtype=np.float64))
    lo, hi = times < grid[0], times > grid[-1]
    pos[lo] = (times[lo] - grid[0]) / (grid[1] - grid[0])
    pos[hi] = len(grid) - 1 + (times[hi] - grid[-1]) / (grid[-1] - grid[-2])
    return pos


def choose_subdivisions(
    pos: np.ndarray, n_beats: int, grids: tuple[int, ...] = GRIDS, penalty: float = TRIPLET_PENALTY
) -> np.ndarray:
    """Subdivision (n_beats,) of each beat, one of `grids`: the one whose grid lies nearest the onsets
    (continuous beat positions (n,)) of that beat; ties and near-ties go to the first (binary) grid."""
    subdiv = np.full(n_beats, grids[0], dtype=int)
    beat = np.floor(pos + 1.0 / 24).astype(int)  # a note a hair early belongs to the next beat
    for k in np.unique(beat):
        if not 0 <= k < n_beats:
            continue
        frac = pos[beat == k] - k
        costs = [
            np.mean(np.abs(frac * d - np.round(frac * d)) / d) + (penalty if i else 0.0) for i, d in enumerate(grids)
        ]
        subdiv[k] = grids[int(np.argmin(costs))]
    return subdiv


def _snap(p: float, subdiv: np.ndarray) -> Fraction:
    k = int(np.floor(p + 1.0 / 24))
    d = int(subdiv[k]) if 0 <= k < len(subdiv) else 4
    return k + Fraction(int(round((p - k) * d)), d)


def quantize(notes: np.ndarray, beats: Beats) -> Quantized:
    """Notes (n, 4) on the grid of `beats`, extended to cover them and to start on a bar line.

    Each offset snaps with its own beat's subdivision; a note never ends before one grid step after
    its onset.
    """
    end = float(notes[:, 1].max()) if len(notes) else 0.0
    t0 = float(notes[:, 0].min()) if len(notes) else 0.0
    ibi = float(np.median(np.diff(beats.times))) if len(beats.times) > 1 else 0.5
    grid = extend_beats(beats, end=end + 1.0, start=t0 - (beats.meter + 1) * ibi)
    # beat 0 is the last bar line at or before the first note (a pickup is a bar with rests before it)
    dbs = np.flatnonzero(grid.is_downbeat & (grid.times <= t0 + ibi / 24))
    first = int(dbs[-1]) if len(dbs) else 0
    grid = Beats(grid.times[first:], grid.is_downbeat[first:], grid.meter)  # beat 0 = the first bar line
    on_pos = beat_positions(notes[:, 0], grid.times)
    off_pos = beat_positions(notes[:, 1], grid.times)
    subdiv = choose_subdivisions(on_pos, len(grid.times))
    onsets, offsets = [], []
    for a, b in zip(on_pos, off_pos):
        on = _snap(a, subdiv)
        k = int(np.floor(on))
        step = Fraction(1, int(subdiv[k]) if 0 <= k < len(subdiv) else 4)
        onsets.append(on)
        offsets.append(max(_snap(b, subdiv), on + step))
    # a key sounds once: a note ends where the next one of its pitch starts (snapping can make them overlap)
    by_pitch: dict[int, list[int]] = {}
    for i in sorted(range(len(onsets)), key=lambda i: onsets[i]):
        by_pitch.setdefault(int(notes[i, 2]), []).append(i)
    for idx in by_pitch.values():
        for i, j in zip(idx, idx[1:]):
            if onsets[i] < onsets[j] < offsets[i]:
                offsets[i] = onsets[j]
    return Quantized(
        onsets,
        offsets,
        [int(p) for p in notes[:, 2]],
        [int(v) for v in notes[:, 3]],
        [int(i) for i in np.flatnonzero(grid.is_downbeat)],
        grid,
    )


def split_hands(pitches: np.ndarray, onsets: np.ndarray, middle: float = 60.0, pull: float = 0.2) -> np.ndarray:
    """Hand (n,) 0 = right (upper staff), 1 = left, for pitches (n,) at onsets (n,) (any sortable unit).

    Chord by chord, notes split at the midpoint between the two hands' running mean pitches (starting
    at middle C, kept within a fifth of it), so a left-hand run that climbs past C stays in the left hand.
    """
    hands = np.zeros(len(pitches), dtype=int)
    right, left = middle + 7.0, middle - 7.0
    order = np.argsort(onsets, kind="stable")
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and onsets[order[j]] == onsets[order[i]]:
            j += 1
        chord = order[i:j]
        split = float(np.clip((right + left) / 2, middle - 7, middle + 7))
        is_left = pitches[chord] < split
        hands[chord] = is_left.astype(int)
        if (~is_left).any():
            right += pull * (float(np.mean(pitches[chord][~is_left])) - right)
        if is_left.any():
            left += pull * (float(np.mean(pitches[chord][is_left])) - left)
        i = j
    return hands


# Krumhansl-Kessler key profiles, major and minor, tonic first
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(notes: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class 0-11, 'major' | 'minor') of a note list (n, 4): Krumhansl-Schmuckler on the
    duration-weighted pitch-class histogram."""
    hist = np.zeros(12)
    if len(notes):
        np.add.at(hist, notes[:, 2].astype(int) % 12, np.maximum(notes[:, 1] - notes[:, 0], 0.05))
    best = (-np.inf, 0, "major")
    for tonic in range(12):
        for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
            r = np.corrcoef(hist, np.roll(prof, tonic))[0, 1] if hist.std() > 0 else 0.0
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


def key_sharps(tonic: int, mode: str) -> int:
    """Sharps (> 0) or flats (< 0) of the key signature of a key, -6..6 (F# major, not Gb, at 6)."""
    major = tonic if mode == "major" else (tonic + 3) % 12
    sharps = (major * 7) % 12  # steps round the circle of fifths from C
    return sharps - 12 if sharps > 6 else sharps


_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")


def spell_pitch(pitch: int, tonic: int, mode: str) -> str:
    """music21's name of a MIDI pitch in a key ("E-4", "C#5"): black keys as flats in flat keys and as
    sharps otherwise, but a minor key's leading tone always sharp (C# in D minor, not Db)."""
    pc = pitch % 12
    flats = key_sharps(tonic, mode) < 0 and not (mode == "minor" and pc == (tonic - 1) % 12)
    return f"{(_FLAT_NAMES if flats else _SHARP_NAMES)[pc]}{pitch // 12 - 1}"
