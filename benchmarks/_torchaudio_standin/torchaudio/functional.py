"""torchaudio.functional.melscale_fbanks, re-derived in numpy (HTK mel scale, unnormalised triangles by default)."""

from __future__ import annotations

import numpy as np


def _hz_to_mel(f: np.ndarray, mel_scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if mel_scale == "slaney":  # linear below 1 kHz, logarithmic above
        f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)
    raise ValueError(f"mel_scale should be 'htk' or 'slaney', not {mel_scale!r}")


def _mel_to_hz(m: np.ndarray, mel_scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if mel_scale == "slaney":
        f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
        min_log_mel = min_log_hz / f_sp
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)
    raise ValueError(f"mel_scale should be 'htk' or 'slaney', not {mel_scale!r}")


def melscale_fbanks(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
):
    """Triangular mel filters, a float32 tensor (n_freqs, n_mels), as torchaudio's function of the same name.

    Bin k of n_freqs is at k * (sample_rate // 2) / (n_freqs - 1) Hz; filter i rises from
    mel point i to i + 1 and falls to i + 2 of n_mels + 2 points evenly spaced in mel
    from f_min to f_max. norm="slaney" divides each filter by half its width in Hz.
    """
    import torch

    if norm not in (None, "slaney"):
        raise ValueError(f"norm should be None or 'slaney', not {norm!r}")
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    f_pts = _mel_to_hz(np.linspace(_hz_to_mel(f_min, mel_scale), _hz_to_mel(f_max, mel_scale), n_mels + 2), mel_scale)
    f_diff = np.diff(f_pts)  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        fb *= 2.0 / (f_pts[2:] - f_pts[:-2])
    return torch.from_numpy(fb.astype(np.float32))
