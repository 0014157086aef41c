"""Loudness (BS.1770, streamed) and the finish every render goes through: its end, its level, no clipping."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest

from w2m2w.loudness import LoudnessMeter, normalize

SR = 16000


def _piano_like(n: int, seed: int = 0) -> np.ndarray:
    """Decaying tones and a little noise: loud and quiet blocks, so both gates have work."""
    t = np.arange(n) / SR
    rng = np.random.default_rng(seed)
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-t) + 0.2 * np.sin(2 * np.pi * 3000 * t) * np.exp(-3 * (t % 1.3))
    return y + 0.003 * rng.standard_normal(n)


@pytest.mark.parametrize(
    "n, chunk", [(6400, 6400), (6401, 100), (3 * SR + 123, 777), (10 * SR, 16000), (10 * SR + 7, 1)]
)
def test_streamed_meter_is_pyloudnorm(n, chunk):
    """The meter fed in chunks of any size reads what pyloudnorm reads from the whole signal."""
    y = _piano_like(n)
    meter = LoudnessMeter(SR)
    for a in range(0, n, chunk if chunk > 1 else 997):
        meter.push(y[a : a + (chunk if chunk > 1 else 997)])
    assert meter.integrated() == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(y), abs=1e-6)
    assert meter.peak == pytest.approx(np.abs(y).max())


def test_a_sine_reads_as_the_standard_says():
    """BS.1770: a 997 Hz sine at full scale in one channel reads -3.01 LUFS; at amplitude 0.1, 20 dB less."""
    t = np.arange(5 * SR) / SR
    meter = LoudnessMeter(SR)
    meter.push(0.1 * np.sin(2 * np.pi * 997 * t))
    assert meter.integrated() == pytest.approx(
        -23.01, abs=0.1
    )  # K-weighting designed at 16 kHz, not the standard's 48: -23.08


def test_normalize_reaches_the_target():
    y = 0.05 * _piano_like(8 * SR)
    out, level = normalize(y, SR, -20.0)
    assert pyloudnorm.Meter(SR).integrated_loudness(out.astype(np.float64)) == pytest.approx(-20.0, abs=0.01)
    assert level.lufs == pytest.approx(-20.0) and not level.limited
    assert level.gain_db == pytest.approx(-20.0 - pyloudnorm.Meter(SR).integrated_loudness(y), abs=1e-6)
    assert out.dtype == np.float32


def test_a_target_that_would_clip_stops_at_the_ceiling():
    """Sparse clicks: far louder peaks than loudness. -5 LUFS would need a peak far above full scale."""
    y = np.zeros(4 * SR)
    y[:: SR // 2] = 0.5
    y += 0.001 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / SR)
    out, level = normalize(y, SR, -5.0)
    assert level.limited
    assert np.abs(out).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)  # -1 dBFS exactly, nothing clipped
    assert level.peak_dbfs == pytest.approx(-1.0)
    assert level.lufs == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(out.astype(np.float64)), abs=0.01)
    assert level.lufs < -5.0


def test_silence_gets_no_gain_and_no_nan():
    out, level = normalize(np.zeros(2 * SR), SR, -20.0)
    assert np.array_equal(out, np.zeros(2 * SR, np.float32))
    assert level.gain_db == 0.0 and level.rendered_lufs is None and level.lufs is None and not level.limited
    assert all(v is None or isinstance(v, bool) or math.isfinite(v) for v in level.stats().values())
    # below the absolute gate (-70 LUFS) is silence too: a faint hiss is not raised by 50 dB
    faint, level = normalize(1e-5 * _piano_like(2 * SR), SR, -20.0)
    assert level.gain_db == 0.0 and level.lufs is None


def test_shorter_than_a_block_is_measured_as_one_block_of_it():
    """pyloudnorm refuses under 0.4 s; the meter reads the sound padded with silence to one block."""
    y = _piano_like(int(0.25 * SR))
    with pytest.raises(ValueError):
        pyloudnorm.Meter(SR).integrated_loudness(y)
    padded = np.concatenate([y, np.zeros(int(0.4 * SR) - len(y))])
    out, level = normalize(y, SR, -20.0)
    assert level.rendered_lufs == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(padded), abs=1e-6)
    assert len(out) == len(y)


class _Decay:
    """A stand-in renderer: a 440 Hz tone decaying 60 dB per second from 0.1 s, over a cap of n samples."""

    name, sample_rate, backend = "decay", SR, "numpy"

    def __init__(self, n: int = 4 * SR, amp: float = 0.05):
        self.n, self.amp = n, amp

    def n_samples(self, notes):
        return self.n

    def stream(self, notes, n_samples=None, progress=None):
        n = self.n if n_samples is None else n_samples
        t = np.arange(n) / SR
        y = (self.amp * np.sin(2 * np.pi * 440 * t) * 10 ** (-3 * np.maximum(t - 0.1, 0)) * (t >= 0.1)).astype(
            np.float32
        )
        for a in range(0, n, 5000):
            yield y[a : a + 5000]

    def describe(self):
        return {"backend": self.backend}


def test_finished_render_ends_where_the_sound_has_decayed_and_stands_at_the_level():
    from w2m2w.render.finish import END_DB, Finished

    inner = _Decay()
    raw = np.concatenate(list(inner.stream(None)))
    r = Finished(inner, -20.0)
    y = r.render(None)
    # by hand: the envelope falls 60 dB/s from 0.1 s, so -90 dB below the peak is 1.5 s later (within a period)
    assert len(y) / SR == pytest.approx(0.1 + (-END_DB) / 60, abs=1 / 440)
    assert np.abs(raw[len(y) :]).max() <= np.abs(raw).max() * 10 ** (END_DB / 20)
    assert pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64)) == pytest.approx(
        -20.0, abs=0.05
    )  # the tail cut is below the gates
    stats = r.describe()
    assert (
        stats["backend"] == "numpy"
        and stats["loudness_lufs"] == pytest.approx(-20.0, abs=0.01)
        and stats["rendered_seconds"] == 4.0
    )
    # asked for a length, it gives exactly that; with no target, the samples are the inner renderer's
    assert len(Finished(inner, -20.0).render(None, 3 * SR)) == 3 * SR
    np.testing.assert_array_equal(Finished(inner, None).render(None, 2 * SR), raw[: 2 * SR])


def test_finished_silence_keeps_its_length_and_zeros():
    from w2m2w.render.finish import Finished

    y = Finished(_Decay(amp=0.0), -20.0).render(None)
    assert len(y) == 4 * SR and not y.any()


def test_fluidsynth_falls_silent_and_ends_before_its_cap():
    """FluidSynth's 16-bit dither (+-1 LSB, ~60 dB under a quiet render's peak) is removed: after the note's release
    the samples are exact zeros, so the render ends there, not at its 5 s cap; louder samples are untouched."""
    pytest.importorskip("fluidsynth")
    from w2m2w.render.fluidsynth import RenderError, _raw_chunks
    from w2m2w.render.registry import load_renderer

    notes = np.array([[0.1, 1.0, 60, 100.0]])
    try:
        raw = np.concatenate(list(_raw_chunks(notes, "timgm6mb", SR, 0, SR, 5.0)))
    except RenderError as exc:
        pytest.skip(str(exc))
    assert np.abs(raw[-SR:]).max() >= 1  # the dither the raw output carries in silence
    r = load_renderer("fluidsynth", {"soundfont": "timgm6mb", "loudness_lufs": None})
    y = r.render(notes)
    assert 1.0 < len(y) / SR < 3.0, "ends within two seconds of the note-off, well before the 5 s cap"
    scale = 0.9 / np.abs(raw).max()
    loud = np.abs(raw[: len(y)]) > 1
    np.testing.assert_allclose(y[loud], raw[: len(y)][loud] * scale, rtol=1e-6)
    assert not y[~loud].any()
