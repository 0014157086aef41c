"""How fast transcriber training batches are drawn, with and without prefetching workers.

    python benchmarks/draw_speed.py [--workers 0 1 2] [--batch 32] [--batches 12] [--rooms 16]

Draws --batches batches of --batch 5-second segments, each augmented as stage 4 trained (a
simulated room with probability 0.8, RT60 0.15-2 s, ambient microphone 2-15 m; the effects chain
at the default augment_p), from 20 minutes of synthetic piano-like tones in memory, through the loop's
Prefetcher (train/prefetch.py) with each number of workers. Prints segments/s and, for a GPU
whose step takes --step-ms, the steps/s the drawing allows. The time runs from the pool's start
to the last batch. The room bank is built once with pyroomacoustics and cached under cache/rooms.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from w2m2w import SAMPLE_RATE  # noqa: E402
from w2m2w.data.augment import Augmenter  # noqa: E402
from w2m2w.features import MelConfig  # noqa: E402
from w2m2w.train.prefetch import Prefetcher  # noqa: E402
from w2m2w.train.transcriber import TranscriberTrainConfig, make_augmenter  # noqa: E402

HOP = MelConfig().hop_length  # the transcriber's frames
FRAME_RATE = SAMPLE_RATE / HOP


class ToneSampler:
    """SegmentSampler's drawing on synthetic material: a segment cut at random, its room and effects.

    Each row also carries an (empty) 88-key roll of the segment's frames, so a batch crossing from
    a worker weighs what a real one does; the rolls' content costs nothing to draw and is not timed.
    """

    def __init__(self, minutes: float, augmenter: Augmenter, seed: int = 0):
        rng = np.random.default_rng(seed)
        n = int(minutes * 60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        self.audio = np.zeros(n, np.float32)
        for onset in np.arange(0, minutes * 60, 0.25):  # a decaying partial-rich tone every 250 ms
            f = 440.0 * 2 ** ((rng.integers(21, 109) - 69) / 12)
            a, b = int(onset * SAMPLE_RATE), min(n, int((onset + 1.0) * SAMPLE_RATE))
            seg = t[: b - a]
            self.audio[a:b] += (
                0.1 * np.exp(-3 * seg) * sum(np.sin(2 * np.pi * k * f * seg) / k for k in (1, 2, 3))
            ).astype(np.float32)
        self.augmenter = augmenter
        self.seg = int(5.0 * FRAME_RATE)

    def draw(self, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        n = (self.seg - 1) * HOP
        out = np.zeros((len(rngs), n), np.float32)
        rolls = np.zeros((len(rngs), self.seg, 88), np.float32)
        for i, rng in enumerate(rngs):
            a = int(rng.integers(0, len(self.audio) - n))
            out[i] = self.augmenter(self.audio[a : a + n].copy(), rng)
        return out, rolls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--rooms", type=int, default=16)
    ap.add_argument(
        "--step-ms",
        type=float,
        default=47.0,
        help="a GPU step's time, for the steps/s column (default 47 ms: batch 32 on an H200, 8,224 steps in 390 s)",
    )
    args = ap.parse_args(argv)
    # stage 4's augmentation: its rooms and probabilities, the effects chain at the default augment_p
    cfg = TranscriberTrainConfig(
        room_bank=args.rooms,
        room_cache=str(ROOT / "cache" / "rooms"),
        room_rt60=[0.15, 2.0],
        room_far_distance=[2.0, 15.0],
        room_p=0.8,
    )
    sampler = ToneSampler(20.0, make_augmenter(cfg))
    print(f"{os.cpu_count()} CPUs; batches of {args.batch} x 5 s segments, a room and the effects chain each\n")
    print(f"| workers | segments/s | ms per batch | steps/s a GPU step of {args.step_ms:g} ms allows |")
    print("| --- | --- | --- | --- |")
    for w in args.workers:
        # timed from the pool's start: the batches drawn ahead count only once they are asked for
        t0 = time.perf_counter()
        with Prefetcher(sampler, 0, w, lambda pos: (pos, 0, args.batch)) as p:
            for pos in range(args.batches):
                p.get(pos)
            dt = (time.perf_counter() - t0) / args.batches
        print(f"| {w} | {args.batch / dt:.0f} | {dt * 1000:.0f} | {1 / max(dt, args.step_ms / 1000):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
