"""mir_eval-based transcription metrics on note lists."""
from __future__ import annotations

import numpy as np
import pytest

from w2m2w.metrics import mean_metrics, transcription_metrics

F1_KEYS = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1")


@pytest.fixture()
def ref() -> np.ndarray:
    rng = np.random.default_rng(3)
    on = np.sort(rng.uniform(0, 10, 40))
    return np.column_stack([on, on + rng.uniform(0.2, 1.0, 40), rng.integers(30, 100, 40), rng.integers(20, 120, 40)]).astype(float)


def test_perfect_transcription(ref):
    m = transcription_metrics(ref, ref.copy())
    for k in F1_KEYS:
        assert m[k] == pytest.approx(1.0), k


def test_onsets_shifted_beyond_tolerance(ref):
    est = ref.copy()
    est[:, :2] += 0.06  # 60 ms > 50 ms
    m = transcription_metrics(ref, est)
    assert m["note_f1"] == 0.0 and m["note_offset_f1"] == 0.0
    assert m["frame_f1"] > 0.7  # the notes still overlap in time
    within = ref.copy()
    within[:, :2] += 0.04
    assert transcription_metrics(ref, within)["note_f1"] == pytest.approx(1.0)


def test_empty_estimate(ref):
    m = transcription_metrics(ref, np.zeros((0, 4)))
    for k in F1_KEYS:
        assert m[k] == 0.0, k


def test_wrong_velocities_only_hurt_velocity_f1(ref):
    est = ref.copy()
    est[:, 3] = est[::-1, 3]
    m = transcription_metrics(ref, est)
    assert m["note_f1"] == pytest.approx(1.0) and m["note_offset_f1"] == pytest.approx(1.0)
    assert m["note_offset_velocity_f1"] < 0.6


def test_half_the_notes(ref):
    m = transcription_metrics(ref, ref[::2])
    assert m["note_precision"] == pytest.approx(1.0)
    assert m["note_recall"] == pytest.approx(0.5)
    assert m["note_f1"] == pytest.approx(2 / 3)


def test_notes_outside_the_piano_are_ignored(ref):
    est = np.vstack([ref, [[1.0, 2.0, 10, 80], [3.0, 4.0, 115, 80]]])
    assert transcription_metrics(ref, est)["note_precision"] == pytest.approx(1.0)


def test_mean_metrics():
    assert mean_metrics([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]) == {"a": 0.5, "b": 0.5}
    assert mean_metrics([]) == {}
