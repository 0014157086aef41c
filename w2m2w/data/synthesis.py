"""Training windows for the two WaveNets, drawn from examples (audio + notes) held in memory.

MuLawSampler: the autoregressive WaveNet's, mu-law classes with their piano roll.
SourceWindowSampler: the source-filter WaveNet's, the source, gate and roll with the target audio.
(The transcriber's SegmentSampler is in data/transcription.py, the Music Transformer's
WindowSampler in data/midi_corpus.py.)

Each has sample(n) from its own generator (fixed validation sets) and draw(rngs), one row per
generator (training: the loop gives every row its own, see w2m2w/train/loop.py).
"""

from __future__ import annotations

import numpy as np
import torch

from w2m2w.audio import load_audio, mu_law_encode
from w2m2w.data.transcription import Example
from w2m2w.features import conditioning_roll, excitation
from w2m2w.midi import load_notes
from w2m2w.models.source_filter import SourceFilterWaveNet
from w2m2w.models.wavenet import SILENCE
from w2m2w.render.source_filter import window


class MuLawSampler:
    """Random hop-aligned segments: mu-law classes (batch, T), rolls (batch, T/hop + 2m, 264)
    and, for models that take it, excitation (batch, T, 2 * harmonics); None otherwise.

    Audio is held in memory as 8-bit mu-law (a quarter of float32). Segments
    that are silent with no note sounding are mostly redrawn: they teach little.
    """

    def __init__(
        self,
        examples: list[Example],
        segment_samples: int,
        hop: int,
        margin: int,
        sr: int,
        seed: int = 0,
        harmonics: int = 0,
    ):
        self.items = []
        for ex in examples:
            y = load_audio(ex.audio, sr=sr)
            self.items.append((mu_law_encode(y).astype(np.uint8), load_notes(ex.notes)))
        if not self.items:
            raise ValueError("no examples")
        self.T, self.hop, self.margin, self.rate, self.sr, self.harmonics = (
            segment_samples,
            hop,
            margin,
            sr / hop,
            sr,
            harmonics,
        )
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(q) for q, _ in self.items], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def _one(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray, int]:
        """(classes, roll, busy, the piece's notes, the segment's first sample)."""
        q, notes = self.items[rng.choice(len(self.items), p=self.weights)]
        frames = self.T // self.hop
        f0 = int(rng.integers(0, max(1, (len(q) - self.T) // self.hop + 1)))
        x = np.full(self.T, SILENCE, np.uint8)
        seg = q[f0 * self.hop : f0 * self.hop + self.T]
        x[: len(seg)] = seg
        roll = conditioning_roll(notes, frames + 2 * self.margin, self.rate, f0 - self.margin)
        busy = bool(roll.any()) or int(np.abs(x.astype(np.int16) - SILENCE).max()) > 2
        return x, roll, busy, notes, f0 * self.hop

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`batch_size` segments from the sampler's own generator (see draw)."""
        return self.draw([self.rng] * batch_size)

    def draw(self, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One segment per generator: classes (batch, T) int64, rolls, excitation or None."""
        xs, rolls, excs = [], [], []
        for rng in rngs:
            for _ in range(4):
                x, roll, busy, notes, start = self._one(rng)
                if busy:
                    break
            xs.append(x)
            rolls.append(roll)
            if self.harmonics:  # for the kept segment only
                excs.append(excitation(notes, self.T, self.sr, start, self.harmonics))
        return np.stack(xs).astype(np.int64), np.stack(rolls), (np.stack(excs) if self.harmonics else None)


class SourceWindowSampler:
    """Random hop-aligned windows from whole pieces held in memory (audio float32, notes), as the
    source-filter model takes them: source, gate, roll and target, each with the model's context
    (synthesis_source_filter.window)."""

    def __init__(self, examples: list[Example], model: SourceFilterWaveNet, segment: int, seed: int = 0):
        sr = model.cfg.sample_rate
        self.items = [(load_audio(e.audio, sr=sr), load_notes(e.notes)) for e in examples]
        self.model, self.segment = model, segment
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(a) for a, _ in self.items], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        """`batch` windows from the sampler's own generator (see draw)."""
        return self.draw([self.rng] * batch)

    def draw(self, rngs: list[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One window per generator: source (batch, T + 2c, channels), gate and target (batch, T + 2c), roll."""
        hop = self.model.cfg.hop_length
        rows = []
        for rng in rngs:
            for _ in range(4):  # windows where no note sounds teach nothing (the gate zeroes them): mostly redraw
                audio, notes = self.items[rng.choice(len(self.items), p=self.weights)]
                f0 = int(rng.integers(0, max(1, (len(audio) - self.segment) // hop + 1)))
                w = window(self.model, notes, audio, f0 * hop, self.segment)
                if w["gate"].any():
                    break
            rows.append(w)
        return {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}
