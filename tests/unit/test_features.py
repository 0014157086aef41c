"""Log-mel features against librosa, the reference the model's filterbank comes from."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from w2m2w.features import MelConfig, log_mel, mel_spectrogram, n_frames


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    chirp = np.sin(2 * np.pi * (100 * t + 900 * t**2))
    y = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.3 * chirp + 0.05 * rng.standard_normal(n)
    return y.astype(np.float32)


def test_mel_matches_librosa():
    y = _signal(20000)
    ours = mel_spectrogram(torch.from_numpy(y)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(
        y=y,
        sr=16000,
        n_fft=2048,
        hop_length=512,
        n_mels=229,
        fmin=30.0,
        fmax=8000.0,
        htk=True,
        power=2.0,
        center=True,
        pad_mode="reflect",
    ).T
    assert ours.shape == ref.shape == (20000 // 512 + 1, 229)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * float(ref.max()))


@pytest.mark.parametrize("n", [1600, 16000, 16383, 16384, 16385, 47999])
def test_frame_count(n):
    mel = mel_spectrogram(torch.from_numpy(_signal(n))[None])
    assert mel.shape == (1, n_frames(n), 229)
    assert n_frames(n) == n // 512 + 1


def test_batch_rows_are_independent():
    a, b = _signal(8000, 1), _signal(8000, 2)
    both = mel_spectrogram(torch.from_numpy(np.stack([a, b])))
    alone = mel_spectrogram(torch.from_numpy(b)[None])
    torch.testing.assert_close(both[1:], alone, rtol=1e-4, atol=1e-4)


def test_log_mel_floor_on_silence():
    out = log_mel(torch.zeros(1, 4000), MelConfig())
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full_like(out, float(np.log(1e-5))))
