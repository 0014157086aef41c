"""Folding one long sequence into overlapping segments generated side by side, and cross-fading them back.

As in WaveRNN's batched generation (Kalchbrenner et al. 2018; fatchord's
fold/xfade_and_unfold): an autoregressive model is sequential in time, so one
piece gives one stream and one core. Cutting the piece into segments that are
generated as a batch gives as many streams as segments. Segment k owns samples
[k * S, (k + 1) * S); it starts `preroll` samples earlier, from silence, so the
model has settled by the time its output is used: the first preroll - fade
samples are thrown away, the last `fade` samples of the preroll are cross-faded
with the end of segment k - 1.

Everything here is pure numpy over plain ints, so it is the same for every
backend and testable on hand-made signals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # first generated sample (preroll included); a multiple of the hop
    own: int  # first sample this segment owns
    end: int  # one past its last sample

    @property
    def length(self) -> int:
        return self.end - self.start


def segment_length(n_samples: int, folds: int, min_samples: int, max_samples: int, hop: int) -> int:
    """Samples owned per segment: the piece split `folds` ways, kept within [min, max], a multiple of hop."""
    s = math.ceil(n_samples / max(folds, 1))
    s = min(max(s, min_samples), max_samples)
    return max(hop, math.ceil(s / hop) * hop)


def plan_segments(n_samples: int, seg: int, preroll: int, hop: int = 1) -> list[Segment]:
    """Segments covering [0, n_samples); seg and preroll are multiples of hop and seg > preroll."""
    if seg % hop or preroll % hop:
        raise ValueError(f"segment {seg} and preroll {preroll} must be multiples of the hop {hop}")
    if seg <= preroll:
        raise ValueError(f"segment length {seg} must exceed the preroll {preroll}")
    out = []
    k = 0
    while k * seg < n_samples or k == 0:
        own = k * seg
        out.append(Segment(k, max(0, own - preroll), own, min(own + seg, n_samples)))
        k += 1
    return out


def fade_curves(n: int, kind: str = "equal_power") -> tuple[np.ndarray, np.ndarray]:
    """(fade_in, fade_out), each (n,) float32.

    equal_power keeps the loudness of two uncorrelated signals (two independent
    generations of the same notes differ in phase), as WaveRNN's unfold does;
    linear sums to one, so two copies of one signal join exactly.
    """
    t = np.linspace(-1.0, 1.0, n, dtype=np.float64) if n > 1 else np.zeros(n)
    if kind == "equal_power":
        fin, fout = np.sqrt(0.5 * (1 + t)), np.sqrt(0.5 * (1 - t))
    elif kind == "linear":
        fin = 0.5 * (1 + t)
        fout = 1 - fin
    else:
        raise ValueError(f"unknown cross-fade {kind!r}: equal_power or linear")
    return fin.astype(np.float32), fout.astype(np.float32)


class Unfolder:
    """Joins generated segments, in order, into one stream, cross-fading the overlaps.

    push(segment, audio) takes a segment's generated samples (segment.length,)
    and returns the samples that are now final, in order; the last `fade`
    samples of each segment wait for the next one. Memory: one fade.
    """

    def __init__(self, n_samples: int, fade: int, kind: str = "equal_power"):
        self.n = n_samples
        self.fade = fade
        self.fin, self.fout = fade_curves(fade, kind)
        self.tail = np.zeros(0, np.float32)
        self.next_index = 0
        self.emitted = 0

    def push(self, seg: Segment, audio: np.ndarray) -> np.ndarray:
        if seg.index != self.next_index:
            raise ValueError(f"segment {seg.index} pushed, expected {self.next_index}")
        if len(audio) != seg.length:
            raise ValueError(f"segment {seg.index}: {len(audio)} samples, expected {seg.length}")
        if seg.index > 0 and seg.own - seg.start < self.fade:
            raise ValueError("preroll shorter than the cross-fade")
        self.next_index += 1
        body = audio[seg.own - seg.start :]
        parts = []
        if seg.index > 0:
            head = audio[seg.own - seg.start - len(self.tail) : seg.own - seg.start]
            fin, fout = self.fin[self.fade - len(self.tail) :], self.fout[self.fade - len(self.tail) :]
            parts.append(self.tail * fout + head * fin)
        last = seg.end >= self.n
        keep = 0 if last else min(self.fade, len(body))
        parts.append(body[: len(body) - keep])
        self.tail = np.array(body[len(body) - keep :], dtype=np.float32)
        out = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        self.emitted += len(out)
        return out
