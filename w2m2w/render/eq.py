"""A fixed equaliser on a renderer's output: gains per octave band, as a linear-phase FIR run in chunks.

What it is for: a model that is darker (or brighter) than its target piano in
some bands, by a bias measured on its training pieces (scripts/band_bias.py),
gets that bias taken out after rendering, without retraining. The gains are at
the octave centres BANDS_HZ (the last one at Nyquist), interpolated linearly in
dB over log frequency between them. The FIR's delay (half its length) is taken
out, so the output lines up with the input sample for sample, and its state is
carried over chunks, so chunked output equals the whole signal's.
"""

from __future__ import annotations

import numpy as np

BANDS_HZ = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)  # octave centres at 16 kHz; 8000 is Nyquist
TAPS = 513  # 32 ms: resolves the 63 Hz band's gain to about a dB


def design(gains_db: list[float] | tuple[float, ...], sample_rate: int = 16000, taps: int = TAPS) -> np.ndarray:
    """FIR coefficients (taps,) whose magnitude follows gains_db (one per BANDS_HZ; below and above: the ends')."""
    from scipy.signal import firwin2

    if len(gains_db) != len(BANDS_HZ):
        raise ValueError(f"{len(gains_db)} EQ gains: one per band of {BANDS_HZ} Hz is needed")
    nyq = sample_rate / 2
    f = np.concatenate([[0.0], np.geomspace(20.0, nyq, 256)])
    g_db = np.interp(np.log(np.maximum(f, 20.0)), np.log(BANDS_HZ), np.asarray(gains_db, np.float64))
    return firwin2(taps, f / nyq, 10 ** (g_db / 20), window="hann")


class StreamingEQ:
    """Filters chunks in order; push() returns as many samples as it gets (delayed by the FIR's half length at first),
    flush() the rest, so push(all chunks) + flush() is the whole signal filtered and lined up, same length."""

    def __init__(self, gains_db: list[float] | tuple[float, ...], sample_rate: int = 16000):
        from scipy.signal import lfilter

        self._lfilter = lfilter
        self.b = design(gains_db, sample_rate)
        self.delay = (len(self.b) - 1) // 2
        self._zi = np.zeros(len(self.b) - 1)
        self._skip = self.delay  # leading samples of the output that belong before the signal

    def push(self, y: np.ndarray) -> np.ndarray:
        out, self._zi = self._lfilter(self.b, [1.0], np.asarray(y, np.float64), zi=self._zi)
        k = min(self._skip, len(out))
        self._skip -= k
        return out[k:].astype(np.float32)

    def flush(self) -> np.ndarray:
        """The last samples: the filter run over delay samples of silence after the signal."""
        return self.push(np.zeros(self.delay))
