"""Seconds per Music Transformer training step: relative vs absolute positions, float32 vs bf16 autocast.

    python benchmarks/mt_train_step.py [--threads 1] [--steps 4] [--contexts 512 1024]

One optimiser step (forward, backward, AdamW) of the shipped model size on random events, batch
4096 events (8 x 512, 4 x 1024), key state on. The first step is a warm-up and is not timed; the
table gives the median of the rest. Equal compute between the relative model and its absolute
twin is a question of these numbers: where they are equal, equal steps are equal wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing


def step_seconds(position: str, context: int, bf16: bool, steps: int, events: int = 4096) -> float:
    """Median seconds of `steps` timed training steps (after one untimed) of batch events // context x context."""
    import torch

    from w2m2w.events import VOCAB_SIZE
    from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    model = MusicTransformer(MusicTransformerConfig(max_len=context, position=position, key_state=True)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(3, VOCAB_SIZE, (max(events // context, 1), context + 1))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss, _ = model.training_step(tokens, bf16)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per row (after one warm-up)")
    ap.add_argument("--contexts", type=int, nargs="+", default=[512, 1024])
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print("| context | batch | positions | float32 s/step | bf16 s/step | bf16 speed-up |")
    print("|---:|---:|---|---:|---:|---:|")
    for context in args.contexts:
        for position in ("relative", "learned"):
            fp32 = step_seconds(position, context, False, args.steps)
            bf16 = step_seconds(position, context, True, args.steps)
            print(
                f"| {context} | {4096 // context} | {position} | {fp32:.2f} | {bf16:.2f} | {fp32 / bf16:.1f}x |",
                flush=True,
            )
    print(
        f"\nthreads={args.threads}, torch {torch.__version__}; the shipped size (4 layers, d_model 256, 4 heads), key state on."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
