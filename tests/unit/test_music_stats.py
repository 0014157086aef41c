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


# ---- edges: polyphony against a brute-force count, the boundaries of each statistic ----


def _polyphony_reference(rows: np.ndarray, rate: float) -> np.ndarray:
    """Notes overlapping each frame [start + k/rate, start + (k+1)/rate) from the first onset to the last offset, counted one by one."""
    start, end = rows[:, 0].min(), rows[:, 1].max()
    n = max(1, int(np.ceil((end - start) * rate - 1e-9)))
    out = np.zeros(n)
    for k in range(n):
        a, b = start + k / rate, start + (k + 1) / rate
        out[k] = sum(1 for on, off, *_ in rows if on < b and off > a)
    return out


def test_polyphony_equals_a_brute_force_count() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        on = rng.integers(0, 40, 6) / 8  # on a 1/8 s grid, half a frame at 4 frames/s: both frame edges and middles
        off = on + rng.integers(1, 16, 6) / 8
        rows = np.stack([on, off, np.full(6, 60.0), np.full(6, 64.0)], 1)
        np.testing.assert_array_equal(polyphony(rows, rate=4.0), _polyphony_reference(rows, 4.0))


def test_polyphony_frame_edges_and_default_rate() -> None:
    # a note ending exactly where the next begins: one sounding note per frame, never two
    legato = notes([(0.0, 0.5, 60, 64), (0.5, 1.0, 62, 64)])
    np.testing.assert_array_equal(polyphony(legato, rate=2.0), [1, 1])
    # a note starting half a frame in counts in the frame it starts in
    np.testing.assert_array_equal(polyphony(notes([(0.0, 1.0, 60, 64), (0.25, 0.75, 62, 64)]), rate=2.0), [2, 2])
    # the default is 20 frames per second: a 1 s note is 20 frames
    np.testing.assert_array_equal(polyphony(notes([(3.0, 4.0, 60, 64)])), np.ones(20))
    # a zero-length note sounds nowhere: one frame, holding nothing; no notes, no frames
    np.testing.assert_array_equal(polyphony(notes([(1.0, 1.0, 60, 64)])), [0])
    assert len(polyphony(notes([]))) == 0


def test_chord_tolerance_is_strict() -> None:
    rows = notes([(0.0, 1, 60, 64), (0.02, 1, 64, 64), (0.05, 1, 67, 64)])
    np.testing.assert_allclose(inter_onset_intervals(rows), [0.02, 0.03])
    np.testing.assert_allclose(
        inter_onset_intervals(rows, chord_tolerance=0.025), [0.03]
    )  # 0.02 is a chord, 0.03 is not
    np.testing.assert_allclose(
        inter_onset_intervals(notes([(0.0, 1, 60, 64), (0.5, 1, 64, 64)]), chord_tolerance=0.5), []
    )
    assert len(inter_onset_intervals(notes([(0.0, 1, 60, 64)]))) == 0


def test_long_note_threshold_and_rate_edges() -> None:
    # exactly 4 s is not longer than 4 s; 4.001 s is
    assert long_note_share(notes([(0, 4.0, 60, 64), (0, 4.001, 62, 64)])) == 0.5
    assert long_note_share(notes([(0, 2.5, 60, 64)]), seconds=2.0) == 1.0
    assert notes_per_second(notes([(0, 1, 60, 64)] * 3), 0.0) == 0.0 and notes_per_second(notes([]), 2.0) == 0.0
    assert notes_per_second(notes([(0, 1, 60, 64)] * 3), 1.5) == 2.0


def test_histogram_edges() -> None:
    from w2m2w.evaluate.music_stats import histogram

    edges = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(
        histogram(np.array([0.0, 1.0, 2.0, 5.0, -3.0]), edges), [0.4, 0.6]
    )  # 0 and -3 first, 1, 2, 5 last
    np.testing.assert_array_equal(histogram(np.array([]), edges), [0.0, 0.0])
    # pitches fall one to a bin: 21 (A0) in the first, 108 (C8) in the last of 88
    assert len(BINS["pitch"]) - 1 == 88
    h = __import__("w2m2w.evaluate.music_stats", fromlist=["histogram"]).histogram(
        np.array([21.0, 108.0]), BINS["pitch"]
    )
    assert h[0] == 0.5 and h[-1] == 0.5
    # polyphony bins count 0..24 notes one to a bin, more in the last
    hp = histogram(np.array([0.0, 24.0, 40.0]), BINS["polyphony"])
    assert hp[0] == pytest.approx(1 / 3) and hp[24] == pytest.approx(2 / 3)


def test_feature_values_by_name() -> None:
    rows = notes([(0.0, 0.5, 60, 30), (1.0, 3.0, 72, 90)])
    np.testing.assert_allclose(feature_values(rows, "duration"), [0.5, 2.0])
    np.testing.assert_allclose(feature_values(rows, "ioi"), [1.0])
    np.testing.assert_allclose(feature_values(rows, "pitch"), [60, 72])
    np.testing.assert_allclose(feature_values(rows, "velocity"), [30, 90])
    assert len(feature_values(rows, "polyphony")) == 60  # 3 s at 20 frames per second
    with pytest.raises(ValueError, match="unknown feature 'tempo'; known: duration, ioi, pitch, velocity, polyphony$"):
        feature_values(rows, "tempo")


def test_pooled_overlaps_without_pairs_or_with_empty_sides() -> None:
    assert pooled_overlaps([]) == {**{f: None for f in FEATURES}, "mean": None}
    one = notes([(0, 1, 60, 64)])
    out = pooled_overlaps([(one, one)])
    assert out["ioi"] is None and out["pitch"] == 1.0  # one note has no inter-onset interval
    assert out["mean"] == pytest.approx(1.0)  # the mean leaves the None out


def test_notes_per_second_of_spans_under_a_second() -> None:
    assert notes_per_second(notes([(0, 0.1, 60, 64)] * 3), 0.5) == 6.0
    assert notes_per_second(notes([(0, 0.1, 60, 64)] * 3), 1.0) == 3.0
