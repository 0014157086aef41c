"""Audio I/O: load any format librosa reads as 16 kHz mono float32, save WAV, mu-law."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from w2m2w.constants import SAMPLE_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au", ".wma")


_FRIENDLY = {"NoBackendError": "unknown or corrupt audio format", "EOFError": "truncated or corrupt data"}


class AudioError(ValueError):
    """An input that is not usable audio; the message names the file and the reason."""


def _first_line(text: str) -> str:
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return first.removeprefix("Error : ").removeprefix("Error: ").removeprefix("Note: ").rstrip(".").strip()


def _reason(exc: BaseException, chatter: str = "") -> str:
    """One line of why a decoder failed: libsndfile's own words ('flac decoder lost sync'), else the exception's.

    libsndfile says 'File does not exist or is not a regular file' when its mp3 decoder gives
    up on a file that does exist; the decoder's own note (`chatter`) is the real reason then.
    """
    text = getattr(exc, "error_string", None) or str(exc)  # soundfile keeps libsndfile's message apart from its str()
    first = _first_line(text)
    if first.startswith("File does not exist") and _first_line(chatter):
        first = _first_line(chatter)
    return first or _FRIENDLY.get(type(exc).__name__, type(exc).__name__)


@contextlib.contextmanager
def _decoder_stderr() -> Iterator[list[str]]:
    """Catch what C decoders print on stderr (mpg123's 'Note: ...' lines) during the block, instead of the console.

    Yields a list that holds the text once the block ends. Only this thread's libsndfile call
    writes there meanwhile: logs of a batch go through the logging handlers, not fd 2 directly.
    """
    got: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:
        yield got
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield got
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            got.append(sink.read(4000).decode(errors="replace"))


def _decode_with_audioread(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """librosa's audioread fallback for what libsndfile cannot open (mp3 on old libsndfile, m4a, aac, wma); quietly."""
    import warnings

    import librosa

    # decode at most just past the limit: a long compressed file must not be decoded whole
    limit = None if max_seconds is None else max_seconds + 1.0
    with warnings.catch_warnings(), _decoder_stderr():  # librosa retries soundfile first: its decoder notes again
        warnings.simplefilter(
            "ignore"
        )  # librosa warns that soundfile failed and that audioread is deprecated: we say why, once
        y, native_sr = librosa.load(str(path), sr=None, mono=True, dtype=np.float32, duration=limit)
    if max_seconds is not None and len(y) > max_seconds * native_sr:
        raise AudioError(f"{path}: longer than the limit of {max_seconds:.0f} s")
    return y, native_sr


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
    # soundfile first: it is fast and exact for WAV/FLAC/OGG (and mp3 with libsndfile >= 1.1)
    try:
        with _decoder_stderr() as chatter:
            info = sf.info(str(path))
    except Exception as exc:  # a format libsndfile does not know: audioread (ffmpeg, ...) may
        try:
            y, native_sr = _decode_with_audioread(path, max_seconds)
        except AudioError:
            raise
        except Exception as exc2:
            # both failed: libsndfile's reason names the format problem; audioread's is often just "no backend"
            reason = _reason(exc, "".join(chatter)) if type(exc2).__name__ == "NoBackendError" else _reason(exc2)
            raise AudioError(f"{path}: not readable as audio ({reason})") from None
    else:
        if max_seconds is not None and info.duration > max_seconds:
            raise AudioError(f"{path}: {info.duration:.0f} s is longer than the limit of {max_seconds:.0f} s")
        try:
            with _decoder_stderr() as chatter:
                return _read_resampled(path, sr)
        except AudioError:
            raise
        except Exception as exc:  # libsndfile knows the format but not this file: its reason is the real one
            raise AudioError(f"{path}: not readable as audio ({_reason(exc, ''.join(chatter))})") from None
    _check_samples(path, y)
    if native_sr != sr:
        y = librosa.resample(y, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def _check_samples(path: Path, y: np.ndarray, empty: bool = True) -> None:
    if empty and y.size == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: contains NaN or infinite samples")


def _read_resampled(path: Path, sr: int, block_seconds: float = 30.0) -> np.ndarray:
    """A file libsndfile reads, mixed to mono and resampled to `sr` block by block.

    Peak memory is the output plus one block: a whole hour of 48 kHz stereo would otherwise sit
    in memory three times over (the frames, their mono mix, the resampler's input) before
    becoming 16 kHz. soxr's stream resampler keeps its filter state across blocks, so the samples
    are the one-shot resampling's (librosa's soxr_hq), and so is the length (a test holds both).
    """
    import soundfile as sf
    import soxr

    with sf.SoundFile(str(path)) as f:
        native_sr = f.samplerate
        stream = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ") if native_sr != sr else None
        # filled in place; the header's frame count is an estimate for some formats, so more may follow
        out = np.empty(int(np.ceil(max(f.frames, 0) * sr / native_sr)) + 16, dtype=np.float32)
        extra: list[np.ndarray] = []
        filled, read = 0, 0

        def put(part: np.ndarray) -> None:
            nonlocal filled
            take = min(len(part), len(out) - filled)
            out[filled : filled + take] = part[:take]
            filled += take
            if take < len(part):
                extra.append(part[take:])

        for block in f.blocks(blocksize=max(int(block_seconds * native_sr), 1), dtype="float32", always_2d=True):
            read += len(block)
            mono = block.mean(axis=1)
            _check_samples(path, mono, empty=False)
            put(mono if stream is None else stream.resample_chunk(mono, last=False))
        if stream is not None:
            put(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    if read == 0:
        raise AudioError(f"{path}: contains no samples")
    y = np.concatenate([out[:filled], *extra]) if extra else out[:filled]
    n = read if stream is None else int(np.ceil(read * sr / native_sr))  # librosa.resample's length
    if len(y) < n:  # the stream can end a sample short of it
        y = np.concatenate([y, np.zeros(n - len(y), dtype=np.float32)])
    return np.ascontiguousarray(y[:n])


def is_silent(y: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak level of `y` is below `threshold_db` dBFS."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return peak <= 10 ** (threshold_db / 20)


def level_db(
    y: np.ndarray, frame: int = 2048, percentile: float = 95.0, range_db: float = 50.0, block_frames: int = 4096
) -> float | None:
    """The playing level of a recording, dBFS: the `percentile` of its frames' RMS (frames of
    `frame` samples, 128 ms at 16 kHz), counting only frames within `range_db` of the loudest, so
    long silences do not pull it down. None when y has no non-zero frame.

    A high percentile follows what is loud in the piece, not how much of it is quiet; computed in
    blocks of `block_frames` frames, so an hour of audio costs no second copy of it.
    """
    n = len(y) // frame
    if n == 0:
        y = np.pad(np.asarray(y, dtype=np.float32), (0, frame - len(y)))
        n = 1
    blocks = (
        np.asarray(y[a * frame : min(a + block_frames, n) * frame], dtype=np.float64) for a in range(0, n, block_frames)
    )  # one at a time
    ms = np.concatenate([np.mean(np.square(b.reshape(-1, frame)), axis=1) for b in blocks])
    loudest = float(ms.max())
    if loudest <= 0.0:
        return None
    kept = ms[ms >= loudest * 10 ** (-range_db / 10)]
    return float(10 * np.log10(np.percentile(kept, percentile)))


def level_gain(y: np.ndarray, target_db: float | None) -> float:
    """The factor that brings y's level_db to `target_db` (1.0 when target_db is None or y is silent)."""
    level = level_db(y) if target_db is not None else None
    return 1.0 if level is None else float(10 ** ((target_db - level) / 20))


def dc_block(
    y: np.ndarray, open_: np.ndarray, hz: float, sr: int = SAMPLE_RATE, state: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(audio (n,) float32, filter state (1,)): y (n,) through a first-order DC blocker, y[n] - y[n-1] + r out[n-1]
    with r = exp(-2 pi hz / sr), then zero wherever open_ (n,) is False, so exact silence stays exact.

    Chunks of one signal give the same samples as the whole when each gets the state the last returned (None:
    the signal starts at rest). A model trained with spectral losses only is not told its mean: it may leave an
    offset while a note's tail keeps its gate open, which a DC blocker takes out (a corner of a few Hz is below A0).
    """
    from scipy.signal import lfilter

    r = float(np.exp(-2.0 * np.pi * hz / sr))
    zi = np.zeros(1) if state is None else state
    out, zf = lfilter([1.0, -1.0], [1.0, -r], np.asarray(y, dtype=np.float64), zi=zi)
    return np.where(open_, out, 0.0).astype(np.float32), zf


def save_wav(path: str | os.PathLike, y: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (no atomicity here: callers use files.atomic_path)."""
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


class StreamResampler:
    """Audio made at `sr_in`, written at `sr_out`, chunk by chunk: soxr's stream resampler (HQ) keeps its filter state
    across chunks, so the samples are those of resampling the whole at once. Equal rates pass chunks through as they are."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        import soxr

        self.same = int(sr_in) == int(sr_out)
        self._stream = None if self.same else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")

    def __call__(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        """The next chunk at sr_out; last=True flushes what the filter still holds (pass an empty chunk if none is left)."""
        y = np.asarray(y, dtype=np.float32)
        return y if self._stream is None else self._stream.resample_chunk(y, last=last)
