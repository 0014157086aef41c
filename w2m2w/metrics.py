"""Transcription metrics with mir_eval (pure functions of note lists)."""

from __future__ import annotations

import warnings

import numpy as np

from w2m2w.midi import notes_in_range, notes_to_rolls


def _midi_to_hz(p: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((p - 69.0) / 12.0)


def _piano_notes(notes: np.ndarray) -> np.ndarray:
    return notes[notes_in_range(notes)]


def _intervals(notes: np.ndarray) -> np.ndarray:
    """(n, 2) onsets and offsets; mir_eval requires strictly positive durations, so a zero-length note lasts 1 ms."""
    return np.column_stack([notes[:, 0], np.maximum(notes[:, 1], notes[:, 0] + 1e-3)])


def transcription_metrics(
    ref: np.ndarray, est: np.ndarray, onset_tolerance: float = 0.05, frame_rate: float = 100.0
) -> dict[str, float]:
    """Note, note-with-velocity, note-with-offset, note-with-offset-and-velocity and frame P/R/F1.

    ref, est: note lists (n, 4). Notes use mir_eval's definitions (50 ms onset
    tolerance, offsets within 20% of the note or 50 ms, velocity within 0.1
    after mir_eval's rescaling); note-with-velocity ignores offsets, so it
    scores the velocity head apart from the durations (Kong et al. 2021 report
    it); frames compare 88-key rolls at `frame_rate`.
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
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None
        )
        out.update(note_precision=p, note_recall=r, note_f1=f)
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=onset_tolerance)
        out.update(note_offset_precision=p, note_offset_recall=r, note_offset_f1=f)
        p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
            ri, rp, ref[:, 3], ei, ep, est[:, 3], onset_tolerance=onset_tolerance, offset_ratio=None
        )
        out.update(note_velocity_precision=p, note_velocity_recall=r, note_velocity_f1=f)
        p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
            ri, rp, ref[:, 3], ei, ep, est[:, 3], onset_tolerance=onset_tolerance
        )
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


# Pedal scoring as Kong et al. 2021 ("High-resolution piano transcription with pedals by regressing
# onset and offset times") scored it: their released scoring script (bytedance/piano_transcription,
# pytorch/calculate_score_for_paper.py, ScoreCalculator.calculate_score_per_song) calls mir_eval's
# precision_recall_f1_overlap on pedal intervals, each a note of one fixed pitch, with
# onset_tolerance=0.2 s (not the 50 ms of notes: a pedal press has no sharp acoustic onset),
# offset_ratio=0.2 and offset_min_tolerance=0.05 s, and frame F1 on 0/1 pedal rolls.
PEDAL_ONSET_TOLERANCE = 0.2
PEDAL_OFFSET_RATIO = 0.2
PEDAL_OFFSET_MIN_TOLERANCE = 0.05


def _pedal_roll(pedal: np.ndarray, n: int, frame_rate: float) -> np.ndarray:
    """(n,) bool: frames where the pedal is down (pedal_rolls' rounding, so notes and pedal use one rule)."""
    from w2m2w.pedal import pedal_rolls

    return pedal_rolls(pedal, n, frame_rate)["frame"] > 0


def pedal_metrics(
    ref: np.ndarray,
    est: np.ndarray,
    onset_tolerance: float = PEDAL_ONSET_TOLERANCE,
    offset_ratio: float = PEDAL_OFFSET_RATIO,
    offset_min_tolerance: float = PEDAL_OFFSET_MIN_TOLERANCE,
    frame_rate: float = 100.0,
) -> dict[str, float]:
    """Sustain-pedal P/R/F1: onsets, onsets and offsets, and frames.

    ref, est: pedal intervals (n, 2), down and up seconds. Each interval is scored as a note of
    one fixed pitch by mir_eval (an estimate matches at most one reference); an offset matches
    within max(offset_ratio x the reference's length, offset_min_tolerance). Frames compare
    pedal-down rolls at `frame_rate`. When either side is empty every interval metric is 0.
    """
    import mir_eval

    ri = _intervals(np.asarray(ref, dtype=np.float64).reshape(-1, 2))
    ei = _intervals(np.asarray(est, dtype=np.float64).reshape(-1, 2))
    rp, ep = np.full(len(ri), 100.0), np.full(len(ei), 100.0)  # any one pitch in Hz: the pedal is one "key"
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns about empty lists, then scores them 0
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=None
        )
        out.update(pedal_onset_precision=p, pedal_onset_recall=r, pedal_onset_f1=f)
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ri,
            rp,
            ei,
            ep,
            onset_tolerance=onset_tolerance,
            offset_ratio=offset_ratio,
            offset_min_tolerance=offset_min_tolerance,
        )
        out.update(pedal_onset_offset_precision=p, pedal_onset_offset_recall=r, pedal_onset_offset_f1=f)
    end = max([0.0, *ri[:, 1], *ei[:, 1]])
    n = int(np.ceil(end * frame_rate)) + 1
    fr, fe = _pedal_roll(ri, n, frame_rate), _pedal_roll(ei, n, frame_rate)
    tp = float(np.sum(fr & fe))
    p = tp / max(float(fe.sum()), 1.0)
    r = tp / max(float(fr.sum()), 1.0)
    out.update(pedal_frame_precision=p, pedal_frame_recall=r, pedal_frame_f1=0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {k: float(v) for k, v in out.items()}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average of per-file metric dicts (keys of the first row)."""
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
