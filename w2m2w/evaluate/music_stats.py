"""Statistics of note lists that say whether a continuation sounds like the music it continues.

After Yang and Lerch (2018), "On the evaluation of generative models in
music": each feature of a piece is a distribution (of note durations,
inter-onset intervals, pitches, velocities, polyphony), and two pieces are
compared by the overlapping area of their normalised histograms: 1 for
identical distributions, 0 for disjoint ones. Pure functions of note arrays
(n, 4): onset s, offset s, MIDI pitch, velocity (sustain pedal already
applied by whoever loaded them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LONG_NOTE_SECONDS = (
    4.0  # a note held longer than this is rare in concert performance (issue: 0.1 % of real continuations)
)
POLYPHONY_RATE = 20.0  # frames per second at which the number of sounding notes is sampled

# Fixed bin edges per feature, so that histograms of any two note lists are comparable.
# Durations and inter-onset intervals span milliseconds to seconds: log-spaced bins.
BINS: dict[str, np.ndarray] = {
    "duration": np.concatenate([[0.0], np.geomspace(0.01, 16.0, 33), [np.inf]]),
    "ioi": np.concatenate([[0.0], np.geomspace(0.005, 8.0, 33), [np.inf]]),
    "pitch": np.arange(20.5, 109.5, 1.0),
    "velocity": np.arange(0.5, 128.5, 4.0),
    "polyphony": np.arange(-0.5, 25.5, 1.0),
}
FEATURES = tuple(BINS)


def durations(notes: np.ndarray) -> np.ndarray:
    """(n,) seconds each note sounds."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    return np.maximum(notes[:, 1] - notes[:, 0], 0.0)


def inter_onset_intervals(notes: np.ndarray, chord_tolerance: float = 0.0) -> np.ndarray:
    """(m,) seconds between successive distinct onsets; onsets closer than chord_tolerance count as one."""
    onsets = np.sort(np.asarray(notes, dtype=np.float64).reshape(-1, 4)[:, 0])
    if len(onsets) < 2:
        return np.zeros(0)
    gaps = np.diff(onsets)
    return gaps[gaps > chord_tolerance]


def polyphony(notes: np.ndarray, rate: float = POLYPHONY_RATE) -> np.ndarray:
    """(frames,) number of notes sounding at each frame from the first onset to the last offset."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if len(notes) == 0:
        return np.zeros(0)
    start, end = notes[:, 0].min(), notes[:, 1].max()
    n = max(1, int(np.ceil((end - start) * rate)))
    change = np.zeros(n + 1)
    on = np.clip(np.floor((notes[:, 0] - start) * rate).astype(int), 0, n)
    off = np.clip(np.ceil((notes[:, 1] - start) * rate).astype(int), 0, n)
    np.add.at(change, on, 1)
    np.add.at(change, off, -1)
    return np.cumsum(change)[:n]


def feature_values(notes: np.ndarray, feature: str) -> np.ndarray:
    """The samples of one feature (a name in FEATURES) of a note list."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if feature == "duration":
        return durations(notes)
    if feature == "ioi":
        return inter_onset_intervals(notes)
    if feature == "pitch":
        return notes[:, 2]
    if feature == "velocity":
        return notes[:, 3]
    if feature == "polyphony":
        return polyphony(notes)
    raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Normalised histogram (sums to 1; all zeros for no values); values past the edges go to the end bins."""
    values = np.clip(np.asarray(values, dtype=np.float64), edges[0], np.nextafter(edges[-1], -np.inf))
    counts, _ = np.histogram(values, bins=edges)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def overlap_area(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float | None:
    """Overlapping area of the normalised histograms of samples a and b: sum of the bin-wise minimum, in [0, 1].

    None when either has no samples (nothing to compare)."""
    if len(a) == 0 or len(b) == 0:
        return None
    return float(np.minimum(histogram(a, edges), histogram(b, edges)).sum())


def long_note_share(notes: np.ndarray, seconds: float = LONG_NOTE_SECONDS) -> float | None:
    """Share of notes that sound longer than `seconds`; None for no notes."""
    d = durations(notes)
    return float((d > seconds).mean()) if len(d) else None


def notes_per_second(notes: np.ndarray, seconds: float) -> float:
    """Notes that start per second of a span of `seconds`."""
    return len(np.asarray(notes).reshape(-1, 4)) / seconds if seconds > 0 else 0.0


def pooled_overlaps(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | None]:
    """Overlap per feature between the pooled samples of the first and of the second note lists of each pair,
    and their mean over features: pooling over files weighs each note (or frame) once, as one corpus."""
    out: dict[str, float | None] = {}
    for f in FEATURES:
        a = np.concatenate([feature_values(x, f) for x, _ in pairs]) if pairs else np.zeros(0)
        b = np.concatenate([feature_values(y, f) for _, y in pairs]) if pairs else np.zeros(0)
        out[f] = overlap_area(a, b, BINS[f])
    known = [v for v in out.values() if v is not None]
    out["mean"] = float(np.mean(known)) if known else None
    return out
