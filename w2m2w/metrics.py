"""Transcription metrics with mir_eval (pure functions of note lists)."""

from __future__ import annotations

import warnings

import numpy as np

from .midi import notes_in_range, notes_to_rolls


def _midi_to_hz(p: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((p - 69.0) / 12.0)


def _piano_notes(notes: np.ndarray) -> np.ndarray:
    return notes[notes_in_range(notes)]


def _intervals(notes: np.ndarray) -> np.ndarray:
    """(n, 2) onsets and offsets; mir_eval requires strictly positive durations, so a zero-length note lasts 1 ms."""
    return np.column_stack([notes[:, 0], np.maximum(notes[:, 1], notes[:, 0] + 1e-3)])


def transcription_metrics(ref: np.ndarray, est: np.ndarray, onset_tolerance: float = 0.05, frame_rate: float = 100.0) -> dict[str, float]:
    """Note, note-with-offset, note-with-offset-and-velocity and frame P/R/F1.

    ref, est: note lists (n, 4). Notes use mir_eval's definitions (50 ms onset
    tolerance, offsets within 20% of the note or 50 ms, velocity within 0.1
    after mir_eval's rescaling); frames compare 88-key rolls at `frame_rate`.
    Notes outside the 88 keys are left out. When either side has no notes,
    every note metric is 0 (mir_eval's convention).
    """
    import mir_eval

    ref, est = _piano_notes(ref), _piano_notes(est)
    ri, rp = _intervals(ref), _midi_to_hz(ref[:, 2])
    ei, ep = _intervals(est), _midi_to_hz(est[:, 2])
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about empty note lists, then scores them 0
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None)
        out.update(note_precision=p, note_recall=r, note_f1=f)
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance)
        out.update(note_offset_precision=p, note_offset_recall=r, note_offset_f1=f)
        p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(ri, rp, ref[:, 3], ei, ep, est[:, 3], onset_tolerance=onset_tolerance)
        out.update(note_offset_velocity_precision=p, note_offset_velocity_recall=r, note_offset_velocity_f1=f)
    end = max([0.0, *ref[:, 1], *est[:, 1]])
    n = int(np.ceil(end * frame_rate)) + 1
    fr = notes_to_rolls(ref, n, frame_rate)["frame"] > 0
    fe = notes_to_rolls(est, n, frame_rate)["frame"] > 0
    tp = float(np.sum(fr & fe))
    p = tp / max(float(fe.sum()), 1.0)
    r = tp / max(float(fr.sum()), 1.0)
    out.update(frame_precision=p, frame_recall=r, frame_f1=0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {k: float(v) for k, v in out.items()}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average of per-file metric dicts (keys of the first row)."""
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
