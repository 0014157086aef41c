"""Folding a piece into overlapping segments and cross-fading them back, on hand-made signals."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.render.folding import Segment, Unfolder, fade_curves, plan_segments, segment_length


def test_plan_covers_the_piece_once():
    segs = plan_segments(1000, seg=300, preroll=100, hop=10)
    assert segs == [
        Segment(0, 0, 0, 300),
        Segment(1, 200, 300, 600),
        Segment(2, 500, 600, 900),
        Segment(3, 800, 900, 1000),
    ]
    assert plan_segments(50, 300, 100, 10) == [Segment(0, 0, 0, 50)]
    with pytest.raises(ValueError):
        plan_segments(1000, 100, 100, 10)  # no room for the preroll
    with pytest.raises(ValueError):
        plan_segments(1000, 305, 100, 10)  # not on the frame grid
    assert segment_length(160_000, 16, 16_000, 64_000, 160) == 16_000  # 10 s over 16 folds: the 1 s minimum
    assert segment_length(16_000_000, 16, 16_000, 64_000, 160) == 64_000  # 1000 s: the 4 s maximum bounds memory
    assert segment_length(500_000, 16, 16_000, 64_000, 160) == 31_360  # ceil(500000/16) on the 160 grid


def _segments_of(x: np.ndarray, segs: list[Segment]) -> list[np.ndarray]:
    return [x[s.start : s.end].copy() for s in segs]


def test_linear_crossfade_of_identical_segments_is_exact():
    # when every segment generated exactly the underlying signal, unfolding must give it back
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    segs = plan_segments(1000, 300, 100, 10)
    u = Unfolder(1000, fade=40, kind="linear")
    out = np.concatenate([u.push(s, a) for s, a in zip(segs, _segments_of(x, segs))])
    np.testing.assert_allclose(out, x, atol=1e-6)
    assert u.emitted == 1000


def test_crossfade_weights_by_hand():
    # segment k holds the constant k + 1: inside each fade the output goes from k to k + 1 along the curves
    segs = plan_segments(700, 300, 100, 10)
    fade = 4
    u = Unfolder(700, fade=fade, kind="equal_power")
    chunks = [u.push(s, np.full(s.length, s.index + 1, np.float32)) for s in segs]
    assert [len(c) for c in chunks] == [296, 300, 104]  # each waits for its last `fade` samples
    out = np.concatenate(chunks)
    fin = np.sqrt(0.5 * (1 + np.array([-1, -1 / 3, 1 / 3, 1])))
    fout = np.sqrt(0.5 * (1 - np.array([-1, -1 / 3, 1 / 3, 1])))
    np.testing.assert_allclose(out[296:300], 1 * fout + 2 * fin, rtol=1e-6)
    np.testing.assert_allclose(out[596:600], 2 * fout + 3 * fin, rtol=1e-6)
    np.testing.assert_array_equal(out[:296], 1)
    np.testing.assert_array_equal(out[300:596], 2)
    np.testing.assert_array_equal(out[600:], 3)
    assert out[296] == pytest.approx(1.0) and out[299] == pytest.approx(2.0)  # starts all old, ends all new


def test_equal_power_keeps_uncorrelated_power():
    fin, fout = fade_curves(101, "equal_power")
    np.testing.assert_allclose(fin**2 + fout**2, 1, rtol=1e-6)
    lin_in, lin_out = fade_curves(101, "linear")
    np.testing.assert_allclose(lin_in + lin_out, 1, rtol=1e-6)
    with pytest.raises(ValueError):
        fade_curves(3, "cubic")


def test_segments_must_come_in_order():
    segs = plan_segments(1000, 300, 100, 10)
    u = Unfolder(1000, fade=40)
    with pytest.raises(ValueError, match="expected 0"):
        u.push(segs[1], np.zeros(segs[1].length, np.float32))
