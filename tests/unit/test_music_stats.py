"""w2m2w.evaluate.music_stats on hand-made note lists whose histograms are known."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.evaluate.music_stats import (
    BINS,
    FEATURES,
    feature_values,
    inter_onset_intervals,
    long_note_share,
    notes_per_second,
    overlap_area,
    polyphony,
    pooled_overlaps,
)


def notes(rows: list[tuple[float, float, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


SCALE = notes([(i * 0.5, i * 0.5 + 0.4, 60 + i, 64) for i in range(8)])


def test_identical_lists_overlap_fully() -> None:
    for f in FEATURES:
        assert overlap_area(feature_values(SCALE, f), feature_values(SCALE.copy(), f), BINS[f]) == pytest.approx(1.0)


def test_disjoint_lists_do_not_overlap() -> None:
    low = notes([(i * 0.1, i * 0.1 + 0.05, 30, 10) for i in range(10)])  # short, fast, low, soft
    high = notes([(i * 3.0, i * 3.0 + 2.5, 100, 120) for i in range(10)])  # long, slow, high, loud
    for f in ("duration", "ioi", "pitch", "velocity"):
        assert overlap_area(feature_values(low, f), feature_values(high, f), BINS[f]) == 0.0


def test_overlap_by_hand() -> None:
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    # a: bins (0.5, 0.5, 0); b: (0.25, 0.25, 0.5) -> min sums to 0.5
    assert overlap_area(np.array([0.5, 1.5]), np.array([0.2, 1.2, 2.2, 2.7]), edges) == pytest.approx(0.5)
    assert overlap_area(np.array([]), np.array([1.0]), edges) is None


def test_values_past_the_edges_fall_in_the_end_bins() -> None:
    edges = BINS["duration"]
    assert overlap_area(np.array([100.0]), np.array([30.0]), edges) == pytest.approx(1.0)


def test_inter_onset_intervals_skip_chords() -> None:
    chordy = notes([(0.0, 1, 60, 64), (0.0, 1, 64, 64), (0.5, 1, 67, 64), (1.5, 2, 72, 64)])
    np.testing.assert_allclose(inter_onset_intervals(chordy), [0.5, 1.0])


def test_polyphony_counts_sounding_notes() -> None:
    # 0-1 s: one note; 0.5-1 s: two; 1-2 s: one (rate 2 frames/s -> frames at 0, .5, 1, 1.5)
    two = notes([(0.0, 1.0, 60, 64), (0.5, 2.0, 64, 64)])
    np.testing.assert_array_equal(polyphony(two, rate=2.0), [1, 2, 1, 1])


def test_long_notes_and_rate() -> None:
    mix = notes([(0, 5, 60, 64), (0, 1, 62, 64), (1, 9, 64, 64), (2, 2.5, 65, 64)])
    assert long_note_share(mix) == pytest.approx(0.5)
    assert long_note_share(notes([])) is None
    assert notes_per_second(mix, 2.0) == 2.0


def test_pooled_overlaps_weigh_every_note_once() -> None:
    # pooled: generated pitches {60, 60, 62, 62}, real {60, 62, 62, 62}: overlap 0.5 + 0.5 -> min(.5,.25)+min(.5,.75)=0.75
    gen = [notes([(0, 1, 60, 64), (1, 2, 62, 64)]), notes([(0, 1, 60, 64), (1, 2, 62, 64)])]
    real = [notes([(0, 1, 62, 64), (1, 2, 62, 64)]), notes([(0, 1, 60, 64), (1, 2, 62, 64)])]
    out = pooled_overlaps(list(zip(gen, real)))
    assert out["pitch"] == pytest.approx(0.75)
    assert out["velocity"] == pytest.approx(1.0)
    assert out["mean"] == pytest.approx(np.mean([out[f] for f in FEATURES]))
