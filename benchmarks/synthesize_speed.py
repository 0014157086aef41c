"""WaveNet generation speed: naive PyTorch loop, cached (fast WaveNet) PyTorch loop, numba kernel.

    python benchmarks/synthesize_speed.py [--weights weights/wavenet.safetensors] [--threads 2] [--seconds 20]

Uses the shipped weights when the file exists, else a randomly initialised
model of the default config (speed does not depend on the weights; the table
says which). Rows:
- naive torch: every sample runs the teacher-forced forward over the last
  receptive field of samples and keeps the last position (no caching);
- cached torch: the fast WaveNet step (per-layer queues), one stream, then
  16 streams in a batch (how the GPU path runs folds);
- numba: the compiled kernel, one stream on one thread, then one piece folded
  into 16 segments on all threads, end to end through Synthesizer (roll,
  conditioning network, sampling, cross-fades), as the synthesize stage runs it.
Prints a markdown table with samples per second, x real time and the ratio to
the naive loop.
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

import torch  # noqa: E402

from w2m2w.models.wavenet import SILENCE, TorchGenerator, WaveNet, WaveNetConfig, macs_per_sample, sample_inverse_cdf  # noqa: E402
from w2m2w.render.wavenet import SynthesisConfig, Synthesizer, load_wavenet  # noqa: E402


def timed(fn, min_seconds: float = 2.0) -> tuple[int, float, float]:
    """Run fn() (which returns samples made) until min_seconds have passed; (samples, wall seconds, CPU seconds).

    CPU time is what this process actually got: on a machine shared with other
    work it tells the speed the same code has on idle cores.
    """
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        n += fn()
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n, dt, time.process_time() - c0


@torch.no_grad()
def naive_torch(model: WaveNet, steps: int) -> int:
    """Sample by sample, the full forward over the receptive field (what caching avoids)."""
    hop = model.cfg.hop_length
    win = -(-model.receptive_field // hop) * hop
    x = torch.full((1, win), SILENCE, dtype=torch.long)
    roll = torch.zeros(1, win // hop + 2 * model.cond_margin, 264)
    E = 2 * model.cfg.excitation_harmonics
    exc = torch.randn(1, win, E) if E else None
    for _ in range(steps):
        logits = model(torch.roll(x, -1, 1), roll, exc)[:, -1]  # predicts the sample after the window
        k = sample_inverse_cdf(logits, torch.rand(1))
        x = torch.roll(x, -1, 1)
        x[0, -1] = k[0]
    return steps


@torch.no_grad()
def cached_torch(model: WaveNet, streams: int, steps: int) -> int:
    R, L = model.cfg.residual_channels, model.cfg.layers
    frames = -(-steps // model.cfg.hop_length)
    cond = 0.1 * torch.randn(streams, frames, L, 2 * R)
    E = 2 * model.cfg.excitation_harmonics
    exc = torch.randn(streams, steps, E) if E else None
    TorchGenerator(model, cond, exc=exc).advance(steps, torch.rand(streams, steps))
    return streams * steps


def numba_one_stream(model: WaveNet, steps: int) -> int:
    from w2m2w.models.wavenet_numba import generate_numba, pack, prepare_cond

    p = pack(model)
    frames = -(-steps // model.cfg.hop_length)
    cond = prepare_cond(
        p, 0.1 * np.random.randn(1, frames, model.cfg.layers, 2 * model.cfg.residual_channels).astype(np.float32)
    )
    E = 2 * model.cfg.excitation_harmonics
    exc = np.random.randn(1, steps, E).astype(np.float32) if E else None
    generate_numba(p, cond, np.random.rand(1, steps).astype(np.float32), threads=1, exc=exc)
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(ROOT / "weights" / "wavenet.safetensors"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the piece the numba kernel renders")
    ap.add_argument("--folds", type=int, default=16)
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for the torch loops: their ops are too small to gain from more, and lose badly on a busy machine",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    if Path(args.weights).is_file():
        model, source = load_wavenet(args.weights), f"shipped weights {args.weights}"
    else:
        torch.manual_seed(0)
        model, source = WaveNet(WaveNetConfig()).eval(), f"random init of the default config ({args.weights} not found)"
    cfg = model.cfg
    print(f"model: {source}")
    print(
        f"  {cfg.layers} layers, {cfg.residual_channels} residual / {cfg.skip_channels} skip / {cfg.output_channels} output channels, "
        f"excitation harmonics {cfg.excitation_harmonics}, receptive field {model.receptive_field} samples, {sum(p.numel() for p in model.parameters()):,} parameters, {macs_per_sample(cfg):,} MAC per sample"
    )
    print(
        f"  threads: torch {args.torch_threads}, numba {args.threads}; cpu: {os.cpu_count()} cores; torch {torch.__version__}, load average before: {os.getloadavg()[0]:.2f}\n"
    )

    rows = []
    n, dt, cpu = timed(lambda: naive_torch(model, 20), 3.0)
    rows.append(
        ("naive torch (full forward over the receptive field per sample)", 1, args.torch_threads, n / dt, n / cpu)
    )
    numba_one_stream(model, 320)  # compile (or load the cache) outside the timing
    for streams in (1, args.folds):
        n, dt, cpu = timed(lambda s=streams: cached_torch(model, s, 400), 3.0)
        rows.append(
            (
                f"cached torch (fast WaveNet queues), {streams} stream{'s' if streams > 1 else ''}",
                streams,
                args.torch_threads,
                n / dt,
                n / cpu,
            )
        )
    n, dt, cpu = timed(lambda: numba_one_stream(model, 16000), 3.0)
    rows.append(("numba kernel, 1 stream", 1, 1, n / dt, n / cpu))

    from w2m2w.demo import bach_prelude_notes

    notes = bach_prelude_notes(8)
    notes = np.concatenate(
        [
            notes + [k * (notes[:, 1].max() + 0.5), k * (notes[:, 1].max() + 0.5), 0, 0]
            for k in range(int(np.ceil(args.seconds / notes[:, 1].max())))
        ]
    )
    notes = notes[notes[:, 1] <= args.seconds]
    synth = Synthesizer(model, SynthesisConfig(folds=args.folds, threads=args.threads))
    synth.render(notes[:4], 16000)  # warm up the thread pool and the kernel
    t0, c0 = time.perf_counter(), time.process_time()
    y = synth.render(notes)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    segs = len(synth.plan(len(y)))
    rows.append(
        (
            f"numba kernel, one {len(y) / 16000:.0f} s piece folded into {segs} segments (stage path)",
            min(segs, args.folds),
            args.threads,
            len(y) / dt,
            len(y) / cpu,
        )
    )

    base = rows[0][3]
    print("| method | streams | threads | samples/s | x real time | vs naive | samples per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, streams, threads, sps, per_cpu in rows:
        print(
            f"| {name} | {streams} | {threads} | {sps:,.0f} | {sps / cfg.sample_rate:.2f} | {sps / base:,.0f}x | {per_cpu:,.0f} |"
        )
    print(
        f"\nnumba vs cached torch (1 stream): {rows[3][3] / rows[1][3]:.1f}x; goal for one piece: 16,000 samples/s (real time): "
        f"{'met' if rows[-1][3] >= 16000 else 'NOT met'} ({rows[-1][3]:,.0f})."
    )
    print(
        "samples/s is wall clock; samples per CPU-second is what the process made per second of CPU it got: on a busy machine it"
    )
    print(
        "estimates one idle core (times the threads for the folded row). Each folded segment also generates and drops its preroll."
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
