"""Transcription metrics with mir_eval (pure functions of note lists)."""
from __future__ import annotations

import warnings

import numpy as np

from .midi import notes_in_range, notes_to_rolls


def _midi_to_hz(p: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((p - 69.0) / 12.0)


def transcription_metrics(ref: np.ndarray, est: np.ndarray, onset_tolerance: float = 0.05, frame_rate: float = 100.0) -> dict[str, float]:
    """Note, note-with-offset, note-with-offset-and-velocity and frame P/R/F1.

    ref, est: note lists (n, 4). Notes use mir_eval's definitions (50 ms onset
    tolerance, offsets within 20% of the note or 50 ms, velocity within 0.1
    after mir_eval's rescaling); frames compare 88-key rolls at `frame_rate`.
    """
    import mir_eval

    ref = ref[notes_in_range(ref)] if len(ref) else ref
    est = est[notes_in_range(est)] if len(est) else est
    out: dict[str, float] = {}
    if len(ref) == 0 or len(est) == 0:
        for k in ("note", "note_offset", "note_offset_velocity"):
            out.update({f"{k}_precision": 0.0, f"{k}_recall": 0.0, f"{k}_f1": 0.0})
    else:
        ri, rp = ref[:, :2], _midi_to_hz(ref[:, 2])
        ei, ep = est[:, :2], _midi_to_hz(est[:, 2])
        # mir_eval requires strictly positive durations
        ri = np.column_stack([ri[:, 0], np.maximum(ri[:, 1], ri[:, 0] + 1e-3)])
        ei = np.column_stack([ei[:, 0], np.maximum(ei[:, 1], ei[:, 0] + 1e-3)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None)
            out.update(note_precision=p, note_recall=r, note_f1=f)
            p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance)
            out.update(note_offset_precision=p, note_offset_recall=r, note_offset_f1=f)
            p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(ri, rp, ref[:, 3], ei, ep, est[:, 3], onset_tolerance=onset_tolerance)
            out.update(note_offset_velocity_precision=p, note_offset_velocity_recall=r, note_offset_velocity_f1=f)
    end = max(ref[:, 1].max() if len(ref) else 0.0, est[:, 1].max() if len(est) else 0.0)
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

