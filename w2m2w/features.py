"""Log-mel features in torch with librosa's filterbank (same on CPU and GPU)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from w2m2w.constants import SAMPLE_RATE
from w2m2w.midi import N_KEYS


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

    return librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=True
    ).astype(np.float32)


def mel_spectrogram(audio: torch.Tensor, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """Power mel spectrogram.

    audio: (batch, samples) float. Returns (batch, frames, n_mels) with
    frames = samples // hop + 1 (centred STFT, reflect padding, as librosa).
    """
    window = torch.hann_window(cfg.n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(
        audio, cfg.n_fft, cfg.hop_length, window=window, center=True, pad_mode="reflect", return_complex=True
    )
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
N_ROLL = len(ROLL_FEATURES) * N_KEYS  # columns of a conditioning roll: each feature for the 88 keys


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
    from w2m2w.midi import MIN_MIDI, N_KEYS

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


def excitation(
    notes: np.ndarray, n_samples: int, sample_rate: int = SAMPLE_RATE, start_sample: int = 0, harmonics: int = 4
) -> np.ndarray:
    """Harmonic excitation of the sounding notes at the sample rate, float32 (n_samples, 2 * harmonics).

    Channel h-1 sums, over the notes sounding at each sample, velocity/127 *
    sin(2 pi h f0 (t - t_on) / sample_rate), and channel harmonics + h-1 the same
    with cos, for the note's equal-tempered f0 (A4 = 440 Hz) and its onset sample
    t_on; harmonics at or above Nyquist are left out. Notes are (n, 4): onset s,
    offset s, MIDI pitch, velocity, sustain pedal already applied. t counts
    samples from the start of the piece, so a window starting at start_sample
    is exactly those rows of the whole piece's excitation (the segments of a
    folded render line up).

    Why: the piano roll tells the WaveNet which keys sound but not the
    waveform's period; a sample-level model must discover each key's frequency
    from data before it sounds like a piano, which takes far more training than
    a CPU gives. Sinusoids at the right frequency (the "source" of neural
    source-filter vocoders, Wang et al. 2019) give it the period directly; the
    WaveNet still shapes spectrum, attack and decay itself. Phase starts at the
    onset because a sampled piano's waveform does (a note's waveform keeps one
    phase relation to its excitation), and sin with cos let a layer's linear
    projection turn that into any phase per harmonic.
    """
    out = np.zeros((max(n_samples, 0), 2 * harmonics), dtype=np.float32)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if n_samples <= 0 or harmonics <= 0 or len(notes) == 0:
        return out
    h = np.arange(1, harmonics + 1, dtype=np.float64)
    for onset, offset, pitch, vel in notes:
        t_on = int(round(onset * sample_rate))
        a = max(t_on - start_sample, 0)
        b = min(int(round(offset * sample_rate)) - start_sample, n_samples)
        if b <= a:
            continue
        freqs = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0) * h
        live = np.flatnonzero(freqs < sample_rate / 2)
        phase = (2 * np.pi / sample_rate) * np.outer(
            np.arange(a + start_sample - t_on, b + start_sample - t_on, dtype=np.float64), freqs[live]
        )
        out[a:b, live] += ((vel / 127.0) * np.sin(phase)).astype(np.float32)
        out[a:b, harmonics + live] += ((vel / 127.0) * np.cos(phase)).astype(np.float32)
    return out
