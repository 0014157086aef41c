"""Source-filter WaveNet rendering: speed and memory, printed as markdown tables.

    python benchmarks/source_filter_speed.py [--weights weights/source_filter_wavenet_real.safetensors] [--seconds 30] [--long-minutes 30]

A seeded, generated piece (10 notes per second, 0.2-3 s long, pitches across
the keyboard: as dense as a romantic piano piece with pedal) is rendered
through the SourceFilterRenderer exactly as the synthesize stage does (source,
roll, conditioning, filter, blocks, then its end and level: render/finish.py). Rows: 1 and 2 torch threads, two block
lengths, and the source alone (what the filter costs on top). Then, each in a
fresh process so peak RSS is its own: 1 minute and --long-minutes minutes of
the same music (memory must not grow with length) and 300 keys held at once
(hundreds of simultaneous notes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from benchmarks.transcribe_speed import peak_rss_mb  # noqa: E402  (this process's own peak, not its parent's)

SR = 16000


def dense_piece(seconds: float, seed: int = 0, rate: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    on = np.sort(rng.uniform(0, max(seconds - 3.0, 0.1), n))
    return np.column_stack(
        [on, on + rng.uniform(0.2, 3.0, n), rng.integers(24, 105, n), rng.integers(30, 115, n)]
    ).astype(np.float64)


def chord(keys: int, seconds: float) -> np.ndarray:
    return np.array([[0.1, seconds, 21 + k % 88, 90.0] for k in range(keys)])


def renderer(weights: str, threads: int, block: float = 8.0, source_only: bool = False):
    import torch

    from w2m2w.models.source_filter import SourceFilterConfig, SourceFilterWaveNet
    from w2m2w.render.finish import Finished
    from w2m2w.render.source_filter import SourceFilterRenderConfig, SourceFilterRenderer, load_source_filter

    torch.set_num_threads(threads)
    model = load_source_filter(weights) if Path(weights).is_file() else SourceFilterWaveNet(SourceFilterConfig()).eval()
    # finished as the stage finishes it: its end found, brought to the default -20 LUFS (two passes over a temporary file)
    return Finished(
        SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=block, source_only=source_only)), -20.0
    )


def speed_row(weights: str, threads: int, block: float, seconds: float, source_only: bool = False) -> dict:
    r = renderer(weights, threads, block, source_only)
    notes = dense_piece(seconds)
    r.render(notes[:5])  # numba compile and first-call allocations outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(len(y) for y in r.stream(notes))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "what": "source alone (no filter)" if source_only else "source-filter WaveNet",
        "threads": threads,
        "block_s": block,
        "audio_s": round(n / SR, 1),
        "samples_per_s": round(n / wall),
        "x_real_time": round(n / SR / wall, 1),
        "cpu_s_per_audio_s": round(cpu / (n / SR), 3),
    }


def memory_child(weights: str, kind: str, minutes: float, threads: int) -> None:
    """Render to nowhere, streaming, and print peak RSS (MB) and speed as JSON (runs in its own process)."""
    notes = chord(300, 5.0) if kind == "chord" else dense_piece(minutes * 60)
    r = renderer(weights, threads)
    t0 = time.perf_counter()
    n = sum(len(y) for y in r.stream(notes))
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "case": kind,
                "notes": len(notes),
                "audio_s": round(n / SR, 1),
                "x_real_time": round(n / SR / wall, 1),
                "peak_rss_mb": round(peak_rss_mb()),
            }
        )
    )


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(ROOT / "weights" / "source_filter_wavenet_real.safetensors"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--long-minutes", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "MINUTES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        memory_child(args.weights, args.child[0], float(args.child[1]), args.threads)
        return
    import torch

    print(
        f"weights: {args.weights if Path(args.weights).is_file() else 'none (random init of the default config)'}; torch {torch.__version__}"
    )
    rows = [
        speed_row(args.weights, t, b, args.seconds)
        for t, b in ((1, 4.0), (args.threads, 4.0), (args.threads, 8.0), (args.threads, 1.0))
    ]
    rows.append(speed_row(args.weights, args.threads, 4.0, args.seconds, source_only=True))
    print(table(rows))
    mem = []
    for kind, minutes in (("dense", 1.0), ("dense", args.long_minutes), ("chord", 0)):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--weights",
                args.weights,
                "--threads",
                str(args.threads),
                "--child",
                kind,
                str(minutes),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        mem.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print()
    print(table(mem))


if __name__ == "__main__":
    main()
