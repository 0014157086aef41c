"""Notes -> audio with the source-filter WaveNet, block by block so memory stays bounded for any length.

A piece is rendered in blocks of `block_seconds`; each block is computed with
half the filter's receptive field of context on both sides and only its
centre is kept. The source and the roll are functions of absolute time
(w2m2w.models.source), so the blocks join exactly: the result does not depend on the
block length (tests hold it to the whole-piece render).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from w2m2w.audio import dc_block
from w2m2w.features import conditioning_roll
from w2m2w.models.source import MEASURED_RELEASE, SourceConfig, longest_release, piano_source
from w2m2w.models.source_filter import MODEL_NAME, SourceFilterWaveNet, source_filter_from_config


def window(
    model: SourceFilterWaveNet,
    notes: np.ndarray,
    audio: np.ndarray | None,
    start: int,
    n: int,
    threads: int = 1,
    source_cfg: SourceConfig | None = None,
) -> dict[str, np.ndarray]:
    """Inputs for samples [start, start + n) of a piece, with the context the model needs on each side.

    start and n are multiples of hop. Returns source (n + 2c, channels), gate (n + 2c,),
    roll (frames + 2 * cond_margin, 264) and, with audio, target (n + 2c,), zero outside
    the piece; c = context(model) samples. source_cfg: the source's settings (default: the model's own).
    """
    hop, sr = model.cfg.hop_length, model.cfg.sample_rate
    c = context(model)
    s0 = start - c
    src, gate = piano_source(notes, n + 2 * c, s0, source_cfg or model.source_cfg, sr, threads)
    m = model.cond_margin
    roll = conditioning_roll(notes, (n + 2 * c) // hop + 2 * m, sr / hop, s0 // hop - m)
    out = {"source": src, "gate": gate, "roll": roll}
    if audio is not None:
        y = np.zeros(n + 2 * c, np.float32)
        a, b = max(s0, 0), min(s0 + n + 2 * c, len(audio))
        if b > a:
            y[a - s0 : b - s0] = audio[a:b]
        out["target"] = y
    return out


def context(model: SourceFilterWaveNet) -> int:
    """Samples of context on each side of a window: half the receptive field, rounded up to whole frames."""
    hop = model.cfg.hop_length
    return math.ceil(model.half_receptive_field / hop) * hop


@dataclass
class SourceFilterRenderConfig:
    block_seconds: float = 4.0  # rendered at a time: memory ~ block x channels x layers
    tail_seconds: float = (
        5.0  # at most this long after the last offset (w2m2w.render.finish ends it where the sound has died)
    )
    device: str = "cpu"
    threads: int = 0  # torch threads; 0 = leave torch's setting
    source_only: bool = False  # render the source's plain mix instead of the WaveNet's output (for comparisons)
    # The gate opens gate_margin samples before an onset (and stays that long after a note's end), then ramps over
    # gate_ramp samples; None: the weights' own (256 and 160, their training's). The filter is non-causal, so a
    # longer lead lets its pre-echo through before the first note, which the loudness gain lifts; 0 and a 1 ms
    # ramp keep the silence before a note at -67 dBFS (-55 with the weights' own) at the same distance to the
    # piano (weights/README.md, "Level, ends and brightness").
    gate_margin: int | None = 0
    gate_ramp: int | None = 16
    release: str = (
        "model"  # the dampers: "model" (the weights' own source) | "measured" (the real piano's, MEASURED_RELEASE)
    )
    # corner (Hz) of the DC blocker on the WaveNet's output (audio.dc_block); 0: none. The filter leaves an offset while
    # a long release keeps its gate open (-46 dBFS on a held-out piece, weights/README.md "Natural ends"); at 5 Hz,
    # A0's fundamental (27.5 Hz) loses 0.14 dB and an offset falls 27 dB in 0.1 s
    dc_block_hz: float = 5.0


def load_source_filter(path: str | os.PathLike, device: str = "cpu") -> SourceFilterWaveNet:
    """The model from a weights file (WeightsError names the file if it is unusable)."""
    from w2m2w.checkpoint import load_model

    return load_model(path, MODEL_NAME, source_filter_from_config, device, what="the source-filter WaveNet")


def source_mix(source: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """The source alone as audio, (n,) from source (n, channels) and gate (n,): the partials and the hammer, gated.

    What the card compares the WaveNet's output with: everything the network adds is the difference.
    """
    from w2m2w.models.source import GROUPS

    return ((source[:, : len(GROUPS)].sum(1) + 0.3 * source[:, len(GROUPS)]) * gate * 0.1).astype(np.float32)


class SourceFilterRenderer:
    """Renders note lists with one loaded source-filter WaveNet (the `source_filter` synthesizer)."""

    name = "source_filter"

    def __init__(self, model: SourceFilterWaveNet, cfg: SourceFilterRenderConfig = SourceFilterRenderConfig()):
        self.model = model.eval()
        self.cfg = cfg
        self.sample_rate = model.cfg.sample_rate
        self.hop = model.cfg.hop_length
        self.block = max(1, round(cfg.block_seconds * self.sample_rate / self.hop)) * self.hop
        self.backend = "torch"
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.threads = torch.get_num_threads()  # the source's numba kernel splits a block over as many threads
        if cfg.release not in ("model", "measured"):
            raise ValueError(f"release={cfg.release!r}: 'model' or 'measured'")
        # the release is rendered as the real piano's, whatever the model trained with: the filter is local (16 ms), so
        # it shapes a longer decay as it shapes the first 0.36 s of one (the card measures what it does)
        self.source_cfg = (
            dataclasses.replace(model.source_cfg, **MEASURED_RELEASE) if cfg.release == "measured" else model.source_cfg
        )
        # the gate only multiplies the output: a shorter lead cuts the filter's pre-echo, nothing else
        if cfg.gate_margin is not None:
            self.source_cfg = dataclasses.replace(self.source_cfg, gate_margin=int(cfg.gate_margin))
        if cfg.gate_ramp is not None:
            self.source_cfg = dataclasses.replace(self.source_cfg, gate_ramp=int(cfg.gate_ramp))

    def n_samples(self, notes: np.ndarray) -> int:
        """Length to render: the last offset plus the tail, in whole frames."""
        end = float(notes[:, 1].max()) if len(notes) else 0.0
        return max(self.hop, math.ceil((end + self.cfg.tail_seconds) * self.sample_rate / self.hop) * self.hop)

    @torch.no_grad()
    def _block(self, notes: np.ndarray, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(audio (n,), open (n,) bool: where the gate lets sound through) of samples [start, start + n)."""
        w = window(self.model, notes, None, start, n, self.threads, self.source_cfg)
        c = context(self.model)
        open_ = w["gate"][c : c + n] > 0
        if self.cfg.source_only:
            return source_mix(w["source"], w["gate"])[c : c + n], open_
        if not open_.any():
            return np.zeros(n, np.float32), open_  # nothing sounds: the gate would zero it anyway
        dev = next(self.model.parameters()).device
        y = self.model.render(*(torch.from_numpy(w[k]).to(dev) for k in ("source", "gate", "roll")))
        return y[c : c + n].float().cpu().numpy(), open_

    def stream(
        self, notes: np.ndarray, n_samples: int | None = None, progress: Callable[[float], None] | None = None
    ) -> Iterator[np.ndarray]:
        """float32 audio chunks in order, n_samples in all (default: n_samples(notes)); progress gets seconds done."""
        notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
        total = self.n_samples(notes) if n_samples is None else int(n_samples)
        reach = (
            longest_release(self.source_cfg) * self.sample_rate
            + self.source_cfg.gate_margin
            + self.source_cfg.gate_ramp
            + 2 * self.block
        )
        state = None  # the DC blocker's, carried from block to block
        for start in range(0, total, self.block):
            n = min(self.block, total - start)
            n_pad = math.ceil(n / self.hop) * self.hop
            # only the notes that can touch this block (with its context): keeps a long piece's blocks cheap
            on, off = notes[:, 0] * self.sample_rate, notes[:, 1] * self.sample_rate
            near = notes[(on < start + n_pad + reach) & (off + reach > start)]
            y, open_ = self._block(near, start, n_pad)
            y, open_ = y[:n], open_[:n]
            if self.cfg.dc_block_hz > 0 and not self.cfg.source_only:  # the source's partials have no offset
                y, state = dc_block(y, open_, self.cfg.dc_block_hz, self.sample_rate, state)
            if progress is not None:
                progress(n / self.sample_rate)
            yield np.clip(y, -1.0, 1.0)

    def render(self, notes: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        parts = list(self.stream(notes, n_samples))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "block_seconds": self.cfg.block_seconds,
            "source_only": self.cfg.source_only,
            "release": self.cfg.release,
            "dc_block_hz": self.cfg.dc_block_hz,
        }
