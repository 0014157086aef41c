"""Where a transcriber misses notes: recall by velocity, register and chord membership (pure functions).

Real recordings lose notes in three places (soft notes, the bass, notes inside chords), so a
mean note F1 hides what a training change did. Each reference note is matched as mir_eval's
note metric matches it (onset within the tolerance, same pitch, offsets ignored) and counted
in its groups; recall per group is matched / total.
"""

from __future__ import annotations

import warnings

import numpy as np

# MIDI velocity bands: the held-out misses sit below 30 and at 30-45 (a third of all notes)
VELOCITY_BANDS = ((0, 30), (30, 45), (45, 64), (64, 128))
# registers by MIDI note: A0-B1, C2-B2, C3-B3, C4-B4, C5-C8
REGISTERS = (("A0-B1", 21, 36), ("C2-B2", 36, 48), ("C3-B3", 48, 60), ("C4-B4", 60, 72), ("C5-C8", 72, 109))
CHORD_WINDOW_S = 0.05  # another onset within this of a note's onset makes the note part of a chord


def matched_reference(ref: np.ndarray, est: np.ndarray, onset_tolerance: float = 0.05) -> np.ndarray:
    """(n_ref,) bool: which reference notes (n, 4: onset, offset, pitch, velocity) a note of `est` matches."""
    import mir_eval

    hit = np.zeros(len(ref), dtype=bool)
    if len(ref) == 0 or len(est) == 0:
        return hit

    def iv(n: np.ndarray) -> np.ndarray:
        return np.column_stack([n[:, 0], np.maximum(n[:, 1], n[:, 0] + 1e-3)])

    def hz(n: np.ndarray) -> np.ndarray:
        return 440.0 * 2.0 ** ((n[:, 2] - 69.0) / 12.0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = mir_eval.transcription.match_notes(
            iv(ref), hz(ref), iv(est), hz(est), onset_tolerance=onset_tolerance, offset_ratio=None
        )
    hit[[i for i, _ in pairs]] = True
    return hit


def in_chord(ref: np.ndarray, window: float = CHORD_WINDOW_S) -> np.ndarray:
    """(n,) bool: notes with another note's onset within `window` seconds of their own (|dt| <= window)."""
    on = np.sort(ref[:, 0])
    order = np.argsort(ref[:, 0], kind="stable")
    # per note, how many onsets lie in [onset - window, onset + window], itself included
    count = np.searchsorted(on, on + window, side="right") - np.searchsorted(on, on - window, side="left")
    out = np.zeros(len(ref), dtype=bool)
    out[order] = count > 1
    return out


def groups(ref: np.ndarray) -> dict[str, np.ndarray]:
    """Group name -> (n,) bool mask over the reference notes."""
    vel, pitch = ref[:, 3], ref[:, 2]
    masks = {f"velocity {lo}-{hi - 1}": (vel >= lo) & (vel < hi) for lo, hi in VELOCITY_BANDS}
    masks.update({f"register {name}": (pitch >= lo) & (pitch < hi) for name, lo, hi in REGISTERS})
    chord = in_chord(ref)
    masks["in a chord"] = chord
    masks["single notes"] = ~chord
    return masks


def recall_breakdown(ref: np.ndarray, est: np.ndarray, onset_tolerance: float = 0.05) -> dict[str, tuple[int, int]]:
    """Group name -> (matched, total) reference notes; add several pieces' counts before dividing."""
    hit = matched_reference(ref, est, onset_tolerance)
    return {name: (int(hit[m].sum()), int(m.sum())) for name, m in groups(ref).items()}


def add_counts(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Two breakdowns' counts summed group by group (pieces pooled note by note, not averaged)."""
    return {
        k: (a.get(k, (0, 0))[0] + b.get(k, (0, 0))[0], a.get(k, (0, 0))[1] + b.get(k, (0, 0))[1]) for k in {**a, **b}
    }
