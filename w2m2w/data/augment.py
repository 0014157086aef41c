"""Audio augmentations for transcriber training: gain, EQ, reverb, noise.

Pure functions of (audio, rng); audio is float32 (samples,) at 16 kHz. They let
a model trained on a few pianos hear other rooms, microphones and levels.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .. import SAMPLE_RATE


def random_gain(y: np.ndarray, rng: np.random.Generator, low_db: float = -12.0, high_db: float = 6.0) -> np.ndarray:
    return y * np.float32(10 ** (rng.uniform(low_db, high_db) / 20))


def random_eq(y: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One or two random peaking filters (+-9 dB) and, sometimes, a low-pass."""
    out = y
    for _ in range(rng.integers(1, 3)):
        f0 = float(np.exp(rng.uniform(np.log(80), np.log(6000))))
        gain_db = rng.uniform(-9, 9)
        q = rng.uniform(0.5, 2.0)
        out = signal.lfilter(*peaking_biquad(f0, gain_db, q, sr), out)
    if rng.random() < 0.3:
        b, a = signal.butter(2, rng.uniform(3000, 7500) / (sr / 2), btype="low")
        out = signal.lfilter(b, a, out)
    return out.astype(np.float32)


def peaking_biquad(f0: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of an RBJ audio-EQ-cookbook peaking filter."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * A, -2 * np.cos(w0), 1 - alpha * A])
    a = np.array([1 + alpha / A, -2 * np.cos(w0), 1 - alpha / A])
    return b / a[0], a / a[0]


def synthetic_ir(rng: np.random.Generator, rt60: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Exponentially decaying noise impulse response with the given RT60 (seconds)."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    return (ir / np.sqrt(np.sum(ir**2) + 1e-12)).astype(np.float32)


def random_reverb(y: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    ir = synthetic_ir(rng, rng.uniform(0.2, 1.5), sr)
    wet = signal.fftconvolve(y, ir)[: len(y)]
    mix = rng.uniform(0.1, 0.5)
    return ((1 - mix) * y + mix * wet).astype(np.float32)


def random_noise(y: np.ndarray, rng: np.random.Generator, snr_db_range: tuple[float, float] = (20.0, 50.0)) -> np.ndarray:
    """White or pink noise at a random signal-to-noise ratio."""
    noise = rng.standard_normal(len(y)).astype(np.float32)
    if rng.random() < 0.5:  # pink: 1/f spectrum
        spec = np.fft.rfft(noise)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        noise = np.fft.irfft(spec, n=len(y)).astype(np.float32)
    p_sig = float(np.mean(y**2)) + 1e-10
    p_noise = float(np.mean(noise**2)) + 1e-12
    snr = rng.uniform(*snr_db_range)
    return (y + noise * np.sqrt(p_sig / p_noise / 10 ** (snr / 10))).astype(np.float32)


def augment(y: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Each augmentation applied with probability `p`, in the order a signal chain would."""
    if rng.random() < p:
        y = random_eq(y, rng)
    if rng.random() < p:
        y = random_reverb(y, rng)
    if rng.random() < p:
        y = random_noise(y, rng)
    if rng.random() < p:
        y = random_gain(y, rng)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
