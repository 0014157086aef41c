"""The fixed per-band equaliser on a render's output: its gains where asked, lined up, chunked as whole."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.render.eq import BANDS_HZ, StreamingEQ

SR = 16000
GAINS = [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 6.0, 9.0]


def _gain_db(eq_gains, f: float) -> float:
    """Gain of the EQ at f, read off a steady sine through it (by hand: output RMS over input RMS)."""
    t = np.arange(2 * SR) / SR
    x = np.sin(2 * np.pi * f * t)
    e = StreamingEQ(eq_gains, SR)
    y = np.concatenate([e.push(x), e.flush()])
    mid = slice(SR // 2, 3 * SR // 2)
    return 20 * np.log10(np.sqrt(np.mean(y[mid] ** 2)) / np.sqrt(np.mean(x[mid] ** 2)))


@pytest.mark.parametrize("f, want", [(250.0, 0.0), (1000.0, 0.0), (2000.0, 3.0), (4000.0, 6.0), (2**0.5 * 2000, 4.5)])
def test_gains_at_the_band_centres_and_between(f, want):
    assert _gain_db(GAINS, f) == pytest.approx(want, abs=0.3)  # between centres: halfway in dB over log frequency


def test_between_centres_is_linear_in_log_frequency():
    """Half an octave above 2 kHz, halfway from 0 to 12 dB: 6 dB (linear in Hz it would be 5 dB)."""
    assert _gain_db([0, 0, 0, 0, 0, 0, 12.0, 12.0], 2**0.5 * 2000) == pytest.approx(6.0, abs=0.3)


def test_output_lines_up_and_chunks_join():
    """An impulse comes out at its own sample (the FIR's delay taken out), and any chunking gives the same samples."""
    x = np.zeros(5000)
    x[1234] = 1.0
    e = StreamingEQ([0.0] * len(BANDS_HZ), SR)
    y = np.concatenate([e.push(x), e.flush()])
    assert len(y) == len(x) and int(np.argmax(np.abs(y))) == 1234 and y[1234] == pytest.approx(1.0, abs=0.02)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000)
    whole = StreamingEQ(GAINS, SR)
    want = np.concatenate([whole.push(x), whole.flush()])
    e = StreamingEQ(GAINS, SR)
    got = np.concatenate([e.push(x[a : a + 777]) for a in range(0, len(x), 777)] + [e.flush()])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert len(StreamingEQ(GAINS, SR).push(x[:100])) == 0  # shorter than the delay: all comes out in flush()


def test_finished_render_goes_through_the_eq_before_the_level():
    from tests.unit.test_loudness import _Decay
    from w2m2w.render.finish import Finished

    flat = Finished(_Decay(), None).render(None, 2 * SR)
    bright = Finished(_Decay(), None, [0, 0, 6.0, 6.0, 6.0, 6.0, 6.0, 6.0]).render(None, 2 * SR)  # +6 dB from 250 Hz up
    assert len(bright) == len(flat)
    assert np.sqrt(np.mean(bright**2)) / np.sqrt(np.mean(flat**2)) == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="one per band"):
        Finished(_Decay(), None, [1.0, 2.0]).render(None)
