"""Loudness of rendered audio (ITU-R BS.1770 integrated loudness, pyloudnorm's meter) and the gain to a target.

Every renderer is brought to one stated loudness (`synthesize.loudness_lufs`) so
that they can be compared by ear. A render streams out in chunks of any length,
so the meter here is pyloudnorm's measurement made incremental: the same
K-weighting filters (pyloudnorm.Meter's, run with state across chunks), the
same 400 ms blocks with 75 % overlap, the same absolute (-70 LUFS) and relative
(-10 LU) gates. Only one number per 100 ms is kept, so memory stays bounded for
any length; tests hold the result to `pyloudnorm.Meter.integrated_loudness` of
the whole signal.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

BLOCK_SECONDS = 0.4  # BS.1770's gating block; pyloudnorm refuses shorter signals
STEP_SECONDS = 0.1  # 75 % overlap
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the loudness of the blocks above the absolute gate
PEAK_CEILING_DBFS = -1.0  # no sample is raised above this: a louder target is cut short of it (recorded as limited)


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


class LoudnessMeter:
    """Integrated loudness (LUFS) and sample peak of mono audio pushed in chunks of any length.

    Shorter than one 400 ms block in all, the audio is measured as that block, padded with silence
    (pyloudnorm refuses it; a short sound then counts over the block it sits in).
    """

    def __init__(self, sample_rate: int):
        import pyloudnorm
        import scipy.signal

        self._lfilter = scipy.signal.lfilter
        meter = pyloudnorm.Meter(sample_rate)  # K-weighting: a high shelf, then a high pass
        self._stages = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
        self._state = [np.zeros(max(len(a), len(b)) - 1) for b, a, _ in self._stages]
        self.sample_rate = sample_rate
        self.hop = round(STEP_SECONDS * sample_rate)
        self._sums: list[float] = []  # sum of squares of the weighted signal per 100 ms step
        self._fill = 0  # samples already in the last step
        self.n_samples = 0
        self.peak = 0.0  # largest |sample|

    def push(self, y: np.ndarray) -> None:
        """Add the next chunk (n,) of the audio."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if not len(y):
            return
        self.peak = max(self.peak, float(np.max(np.abs(y))))
        self.n_samples += len(y)
        for i, (b, a, gain) in enumerate(self._stages):
            y, self._state[i] = self._lfilter(b, a, y, zi=self._state[i])
            y = y * gain
        sq = y * y
        at = 0
        while at < len(sq):
            if self._fill == 0:
                self._sums.append(0.0)
            k = min(self.hop - self._fill, len(sq) - at)
            self._sums[-1] += float(sq[at : at + k].sum())
            self._fill = (self._fill + k) % self.hop
            at += k

    def integrated(self) -> float:
        """Gated integrated loudness in LUFS; -inf where every block is below the absolute gate (silence)."""
        sr = self.sample_rate
        short = round(BLOCK_SECONDS * sr) - self.n_samples
        if short > 0:  # the filters ring on into the padding, as they do in pyloudnorm's padded signal
            padded = copy.deepcopy(self)
            padded.push(np.zeros(short))
            return padded.integrated()
        n = self.n_samples
        steps = round(BLOCK_SECONDS / STEP_SECONDS)
        n_blocks = int(round((n / sr - BLOCK_SECONDS) / STEP_SECONDS)) + 1  # as pyloudnorm counts them
        sums = np.zeros(n_blocks + steps)
        sums[: len(self._sums)] = self._sums[: len(sums)]
        z = np.convolve(sums, np.ones(steps), "valid")[:n_blocks] / (BLOCK_SECONDS * sr)  # mean square per block
        with np.errstate(divide="ignore"):
            block = -0.691 + 10.0 * np.log10(z)
        z = z[block >= ABSOLUTE_GATE]
        if not len(z):
            return -math.inf
        relative = -0.691 + 10.0 * math.log10(z.mean()) + RELATIVE_GATE
        kept = z[-0.691 + 10.0 * np.log10(z) > relative]
        return -0.691 + 10.0 * math.log10(kept.mean()) if len(kept) else -math.inf


@dataclass(frozen=True)
class Level:
    """What bringing a render to the target did: for the sidecar and the evaluation."""

    target_lufs: float
    rendered_lufs: float | None  # None: silent (below the absolute gate)
    rendered_peak_dbfs: float | None
    gain_db: float
    lufs: float | None  # after the gain
    peak_dbfs: float | None
    limited: bool  # the target would have raised the peak above PEAK_CEILING_DBFS: the gain stops there

    @property
    def gain(self) -> float:
        return 10.0 ** (self.gain_db / 20.0)

    def stats(self) -> dict:
        """Rounded figures for a sidecar."""
        r = lambda x: None if x is None else round(x, 2)  # noqa: E731
        return {
            "loudness_target_lufs": self.target_lufs,
            "loudness_rendered_lufs": r(self.rendered_lufs),
            "loudness_gain_db": r(self.gain_db),
            "loudness_lufs": r(self.lufs),
            "peak_dbfs": r(self.peak_dbfs),
            "loudness_limited": self.limited,
        }


def level_for(meter: LoudnessMeter, target_lufs: float, ceiling_dbfs: float = PEAK_CEILING_DBFS) -> Level:
    """The gain that brings the metered audio to target_lufs, lowered where the peak would pass ceiling_dbfs.

    Silence (nothing above the absolute gate) gets no gain: there is nothing to measure, and raising a
    near-silent render by 100 dB would only raise its noise.
    """
    lufs, peak = meter.integrated(), _db(meter.peak)
    if not math.isfinite(lufs):
        return Level(
            target_lufs,
            None,
            None if not math.isfinite(peak) else peak,
            0.0,
            None,
            None if not math.isfinite(peak) else peak,
            False,
        )
    gain_db = target_lufs - lufs
    limited = peak + gain_db > ceiling_dbfs
    if limited:
        gain_db = ceiling_dbfs - peak
    return Level(target_lufs, lufs, peak, gain_db, lufs + gain_db, peak + gain_db, limited)


def normalize(
    y: np.ndarray, sample_rate: int, target_lufs: float, ceiling_dbfs: float = PEAK_CEILING_DBFS
) -> tuple[np.ndarray, Level]:
    """y (n,) brought to target_lufs (at most a ceiling_dbfs peak), float32, and what was done."""
    meter = LoudnessMeter(sample_rate)
    meter.push(y)
    level = level_for(meter, target_lufs, ceiling_dbfs)
    return (np.asarray(y, np.float32) * np.float32(level.gain)).astype(np.float32), level
