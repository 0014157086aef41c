"""Log-mel features in torch with librosa's filterbank (same on CPU and GPU)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from . import SAMPLE_RATE


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 229
    fmin: float = 30.0
    fmax: float = 8000.0


@lru_cache(maxsize=8)
def _mel_basis(cfg: MelConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=True).astype(np.float32)


def mel_spectrogram(audio: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Power mel spectrogram.

    audio: (batch, samples) float. Returns (batch, frames, n_mels) with
    frames = samples // hop + 1 (centred STFT, reflect padding, as librosa).
    """
    window = torch.hann_window(cfg.n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio, cfg.n_fft, cfg.hop_length, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec.real**2 + spec.imag**2  # (batch, freq, frames)
    basis = torch.from_numpy(_mel_basis(cfg)).to(audio.device, audio.dtype)
    return torch.matmul(basis, power).transpose(1, 2)


def log_mel(audio: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-compressed mel spectrogram, (batch, frames, n_mels); log(mel + 1e-5) of magnitude-scaled power."""
    return torch.log(torch.clamp(mel_spectrogram(audio, cfg), min=1e-5))


def n_frames(n_samples: int, hop_length: int = 512) -> int:
    """Frames a centred STFT gives for `n_samples` samples."""
    return n_samples // hop_length + 1
