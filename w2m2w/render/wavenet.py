"""Notes -> audio with the WaveNet: model loading, conditioning, folded batched generation, streaming.

Every piece is cut into segments (w2m2w.render.folding); segments of one or several
pieces are generated side by side in windows of `folds` streams, by the numba
kernel on CPU or the torch loop on GPU, and joined back with cross-fades.
Audio comes out per window, in order, so memory is bounded for any length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from w2m2w.audio import mu_law_decode
from w2m2w.constants import SAMPLE_RATE
from w2m2w.features import conditioning_roll, excitation
from w2m2w.midi import notes_in_range
from w2m2w.models.wavenet import MODEL_NAME, TorchGenerator, WaveNet, wavenet_from_config
from w2m2w.render.folding import Segment, Unfolder, plan_segments, segment_length


@dataclass
class SynthesisConfig:
    folds: int = 16  # streams generated side by side (segments of one piece, or of several)
    min_segment_seconds: float = 1.0
    max_segment_seconds: float = 4.0
    warmup_seconds: float = 0.15  # generated before a segment's cross-fade and thrown away
    fade_seconds: float = 0.05
    crossfade: str = "equal_power"  # or linear
    tail_seconds: float = 1.0  # rendered after the last note ends, for its decay
    temperature: float = 1.0
    seed: int = 0
    backend: str = "auto"  # auto (numba on CPU, torch on GPU) | numba | torch
    device: str = "cpu"
    threads: int = 0  # numba streams run on this many threads; 0 = every core
    chunk_samples: int = 4000  # samples per stream per kernel call: progress granularity


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use, not what the machine has
    except AttributeError:
        return os.cpu_count() or 1


def load_wavenet(path: str | os.PathLike, device: str = "cpu") -> WaveNet:
    """A WaveNet from a weights file (WeightsError names the file if it is unusable)."""
    from w2m2w.checkpoint import load_model

    return load_model(path, MODEL_NAME, wavenet_from_config, device, what="the WaveNet")


def piece_samples(notes: np.ndarray, tail_seconds: float, hop: int, sr: int = SAMPLE_RATE) -> int:
    """Length to render: the last note's end plus the tail, rounded up to whole frames."""
    end = float(notes[:, 1].max()) if len(notes) else 0.0
    return max(hop, math.ceil((end + tail_seconds) * sr / hop) * hop)


def clean_notes(notes: np.ndarray) -> tuple[np.ndarray, int]:
    """Notes inside the 88 keys with positive duration, and how many were dropped for being outside."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    inside = notes_in_range(notes)
    kept = notes[inside]
    return kept[kept[:, 1] > kept[:, 0]], int((~inside).sum())


class Synthesizer:
    """Renders note lists with one loaded autoregressive WaveNet (load once, render many pieces); a renderers.Renderer."""

    name = "wavenet"

    def __init__(self, model: WaveNet, cfg: SynthesisConfig = SynthesisConfig()):
        self.model = model.eval()
        self.cfg = cfg
        backend = cfg.backend
        if backend == "auto":
            backend = "torch" if str(cfg.device).startswith("cuda") else "numba"
        if backend not in ("numba", "torch"):
            raise ValueError(f"unknown synthesis backend {cfg.backend!r}: auto, numba or torch")
        self.backend = backend
        self.threads = cfg.threads or _cores()
        self.packed = None
        if backend == "numba":
            from w2m2w.models.wavenet_numba import pack

            self.packed = pack(model)
        hop = model.cfg.hop_length
        sr = model.cfg.sample_rate
        self.hop, self.sr = hop, sr
        self.sample_rate = sr
        self.fade = int(round(cfg.fade_seconds * sr))
        self.preroll = math.ceil((cfg.warmup_seconds + cfg.fade_seconds) * sr / hop) * hop
        self.min_seg = max(int(cfg.min_segment_seconds * sr), self.preroll + hop)
        self.max_seg = max(int(cfg.max_segment_seconds * sr), self.min_seg)

    def n_samples(self, notes: np.ndarray) -> int:
        """Length to render: the last note's end plus the tail, in whole frames."""
        return piece_samples(notes, self.cfg.tail_seconds, self.hop, self.sr)

    def describe(self) -> dict:
        return {"backend": self.backend, "folds": self.cfg.folds}

    def plan(self, n_samples: int) -> list[Segment]:
        seg = segment_length(n_samples, self.cfg.folds, self.min_seg, self.max_seg, self.hop)
        return plan_segments(n_samples, seg, self.preroll, self.hop)

    def _cond(self, items: list[tuple[np.ndarray, Segment]], frames: int) -> torch.Tensor:
        m = self.model.cond_margin
        fr = self.sr / self.hop
        roll = np.stack(
            [conditioning_roll(notes, frames + 2 * m, fr, seg.start // self.hop - m) for notes, seg in items]
        )
        dev = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model.conditioning(torch.from_numpy(roll).to(dev))

    def _excitation(self, items: list[tuple[np.ndarray, Segment]], n: int) -> np.ndarray | None:
        """(streams, n, 2 * harmonics) float32 for models that take an excitation, else None."""
        H = self.model.cfg.excitation_harmonics
        if not H:
            return None
        return np.stack([excitation(notes, n, self.sr, seg.start, H) for notes, seg in items])

    def _generate(
        self,
        cond: torch.Tensor,
        exc: np.ndarray | None,
        lengths: np.ndarray,
        rng: np.random.Generator,
        on_chunk: Callable[[int, int], None],
    ) -> np.ndarray:
        """Classes (batch, max(lengths)) uint8 for a window of streams."""
        B, n = cond.shape[0], int(lengths.max())
        out = np.zeros((B, n), np.uint8)
        chunk = max(1, self.cfg.chunk_samples)
        u = rng.random((B, n), dtype=np.float32)  # drawn per window, so the chunking never changes the audio
        if self.backend == "numba":
            from w2m2w.models.wavenet_numba import NumbaGenerator, prepare_cond

            gen = NumbaGenerator(
                self.packed,
                prepare_cond(self.packed, cond.cpu().numpy()),
                lengths,
                self.threads,
                self.cfg.temperature,
                exc,
            )
            try:
                for t in range(0, n, chunk):
                    k = min(chunk, n - t)
                    out[:, t : t + k] = gen.advance(k, u[:, t : t + k])
                    on_chunk(t, k)
            finally:
                gen.close()
        else:
            exc_t = None if exc is None else torch.from_numpy(exc).to(cond.device, cond.dtype)
            gen = TorchGenerator(self.model, cond, self.cfg.temperature, exc_t)
            for t in range(0, n, chunk):
                k = min(chunk, n - t)
                uk = torch.from_numpy(u[:, t : t + k]).to(cond.device)
                out[:, t : t + k] = gen.advance(k, uk).cpu().numpy().astype(np.uint8)
                on_chunk(t, k)
        return out

    def stream_many(
        self,
        pieces: list[np.ndarray],
        lengths: list[int] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Render several note lists in shared batches; yields (piece index, float32 audio chunk), each piece in order.

        pieces: note lists (n, 4), already inside the 88 keys. lengths: samples
        per piece (default: last note off + tail). progress receives seconds of
        piece audio rendered as they are generated.
        """
        lengths = lengths or [piece_samples(p, self.cfg.tail_seconds, self.hop, self.sr) for p in pieces]
        queue = [(i, seg) for i, n in enumerate(lengths) for seg in self.plan(n)]
        unfold = {i: Unfolder(n, self.fade, self.cfg.crossfade) for i, n in enumerate(lengths)}
        rng = np.random.default_rng(self.cfg.seed)
        folds = max(1, self.cfg.folds)
        for w in range(0, len(queue), folds):
            window = queue[w : w + folds]
            seg_len = np.array([seg.length for _, seg in window], dtype=np.int64)
            frames = math.ceil(int(seg_len.max()) / self.hop)
            items = [(pieces[i], seg) for i, seg in window]
            cond = self._cond(items, frames)
            exc = self._excitation(items, int(seg_len.max()))
            preroll = np.array([seg.own - seg.start for _, seg in window])

            def on_chunk(t: int, k: int, seg_len: np.ndarray = seg_len, preroll: np.ndarray = preroll) -> None:
                if progress is not None:  # count owned samples only, so the total is the pieces' length
                    done = np.clip(np.minimum(t + k, seg_len) - np.maximum(t, preroll), 0, None).sum()
                    progress(float(done) / self.sr)

            classes = self._generate(cond, exc, seg_len, rng, on_chunk)
            for (i, seg), row in zip(window, classes):
                audio = unfold[i].push(seg, mu_law_decode(row[: seg.length]))
                if len(audio):
                    yield (
                        i,
                        np.clip(audio, -1.0, 1.0),
                    )  # an equal-power fade of two loud, correlated segments can pass 1

    def stream(
        self, notes: np.ndarray, n_samples: int | None = None, progress: Callable[[float], None] | None = None
    ) -> Iterator[np.ndarray]:
        """Render one note list; yields float32 audio chunks in order (total n_samples)."""
        for _, chunk in self.stream_many([notes], None if n_samples is None else [n_samples], progress):
            yield chunk

    def render(self, notes: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        """The whole audio of one note list in memory (for short pieces, tests and evaluation)."""
        parts = list(self.stream(notes, n_samples))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
