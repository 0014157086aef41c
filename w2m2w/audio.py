"""Audio I/O: load any format librosa reads as 16 kHz mono float32, save WAV, mu-law."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import SAMPLE_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au", ".wma")


_FRIENDLY = {"NoBackendError": "unknown or corrupt audio format", "EOFError": "truncated or corrupt data"}


class AudioError(ValueError):
    """An input that is not usable audio; the message names the file and the reason."""


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Read `path`, mix to mono and resample to `sr`.

    Returns float32 samples, shape (n,). Raises AudioError with a one-line reason
    for files that are empty, unreadable or not audio.
    """
    import librosa
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        # soundfile first: it is fast and exact for WAV/FLAC/OGG; librosa's
        # audioread fallback covers the rest (mp3, m4a, ...).
        try:
            info = sf.info(str(path))
            if max_seconds is not None and info.duration > max_seconds:
                raise AudioError(f"{path}: {info.duration:.0f} s is longer than the limit of {max_seconds:.0f} s")
            y, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
            y = y.mean(axis=1)
        except AudioError:
            raise
        except Exception:
            # decode at most just past the limit: a long compressed file must not be decoded whole
            limit = None if max_seconds is None else max_seconds + 1.0
            y, native_sr = librosa.load(str(path), sr=None, mono=True, dtype=np.float32, duration=limit)
            if max_seconds is not None and len(y) > max_seconds * native_sr:
                raise AudioError(f"{path}: longer than the limit of {max_seconds:.0f} s")
    except AudioError:
        raise
    except Exception as exc:  # librosa/audioread raise many types, often without a message
        reason = str(exc).splitlines()[0] if str(exc) else _FRIENDLY.get(type(exc).__name__, type(exc).__name__)
        raise AudioError(f"{path}: not readable as audio ({reason})") from None
    if y.size == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if native_sr != sr:
        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def is_silent(y: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak level of `y` is below `threshold_db` dBFS."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return peak <= 10 ** (threshold_db / 20)


def save_wav(path: str | os.PathLike, y: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (no atomicity here: callers use staging.atomic_path)."""
    import soundfile as sf

    sf.write(str(path), np.clip(y, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")


def mu_law_encode(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Float audio in [-1, 1] -> integer classes in [0, mu]."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return ((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(q: np.ndarray, mu: int = 255) -> np.ndarray:
    """Integer classes in [0, mu] -> float audio in [-1, 1]."""
    y = 2 * (np.asarray(q, dtype=np.float64) / mu) - 1
    return (np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)
