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


# Conditioning rolls for the WaveNet: per key onset, sustain and velocity at a frame rate.
ROLL_FEATURES = ("onset", "frame", "velocity")


def conditioning_roll(notes: np.ndarray, n_frames: int, frame_rate: float = 100.0, start_frame: int = 0) -> np.ndarray:
    """Piano roll that conditions the WaveNet, float32 (n_frames, 3 * 88).

    notes: note list (n, 4) of onset s, offset s, MIDI pitch, velocity (sustain
    pedal already applied). Rows are frames start_frame .. start_frame + n_frames - 1
    (negative and past-the-end frames are simply empty, so a window of a long
    piece is computed exactly as the whole piece would be). Frame f covers
    [f, f + 1) / frame_rate and a note touches every frame its [onset, offset)
    overlaps (at least one), so the roll never runs ahead of or behind the audio
    by more than one frame. Columns: onset (1 in the note's first frame), frame
    (1 while it sounds), velocity (velocity / 127 while it sounds: the decay of
    a piano note depends on how hard it was struck, long after the onset).
    Keys outside 21..108 are ignored.
    """
    from .midi import MIN_MIDI, N_KEYS

    roll = np.zeros((n_frames, 3 * N_KEYS), dtype=np.float32)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if n_frames <= 0 or len(notes) == 0:
        return roll
    first = np.floor(notes[:, 0] * frame_rate).astype(np.int64) - start_frame
    last = np.maximum(np.ceil(notes[:, 1] * frame_rate).astype(np.int64) - start_frame, first + 1)  # exclusive
    keys = notes[:, 2].astype(np.int64) - MIN_MIDI
    keep = (keys >= 0) & (keys < N_KEYS) & (last > 0) & (first < n_frames)
    for a, b, k, vel in zip(first[keep], last[keep], keys[keep], notes[keep, 3]):
        if a >= 0:
            roll[a, k] = 1.0
        a0, b0 = max(a, 0), min(b, n_frames)
        roll[a0:b0, N_KEYS + k] = 1.0
        np.maximum(roll[a0:b0, 2 * N_KEYS + k], vel / 127.0, out=roll[a0:b0, 2 * N_KEYS + k])
    return roll
