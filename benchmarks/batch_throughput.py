"""Batch throughput of `run.py` with 1 and 2 (or more) worker processes on the same batch.

    python benchmarks/batch_throughput.py [--pieces 8] [--seconds 30] [--workers 1 2] [--stages transcribe]
                                          [--set KEY=VALUE ...]

Renders PIECES different recordings of SECONDS of random piano music with FluidSynth
(benchmarks/transcribe_speed.musical_notes), then runs the real `python run.py` over
the folder once per worker count, each into a fresh run directory, and prints a
markdown table: wall time (process start to exit, model loading included), pieces
per minute, audio seconds per minute, and the speed-up over one worker. The default
stages are the ones whose weights ship; add `--stages transcribe generate synthesize`
when all three do. `--set` passes overrides through (e.g. generate.seconds=10).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_batch(folder: Path, pieces: int, seconds: float) -> float:
    """PIECES rendered recordings in `folder`; returns their total length in seconds."""
    import soundfile as sf

    from benchmarks.transcribe_speed import musical_notes
    from w2m2w.render.fluidsynth import render_notes

    total = 0.0
    for i in range(pieces):
        y = render_notes(musical_notes(seconds, seed=100 + i), "fluidr3", 16000)
        sf.write(str(folder / f"piece_{i:03d}.flac"), y, 16000)
        total += len(y) / 16000
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pieces", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--stages", nargs="+", default=["transcribe"])
    ap.add_argument("--set", nargs="*", default=[], help="extra run.py overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "batch"
        folder.mkdir()
        audio_s = make_batch(folder, args.pieces, args.seconds)
        rows = []
        for w in args.workers:
            run_dir = Path(tmp) / f"run_w{w}"
            cmd = [
                sys.executable,
                str(ROOT / "run.py"),
                f"input={folder}",
                f"run_dir={run_dir}",
                f"stages=[{','.join(args.stages)}]",
                f"workers={w}",
                "progress=false",
                *args.set,
            ]
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                sys.exit(f"workers={w} failed (exit {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
            done = json.loads((run_dir / "summary.json").read_text())["counts"].get("done", 0)
            rows.append((w, done, wall))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\nbatch: {args.pieces} pieces, {audio_s:.0f} s of audio; stages {args.stages}; {cores} usable cores\n")
    print("| workers | pieces done | wall s | pieces/min | audio s/min | speed-up |")
    print("|--:|--:|--:|--:|--:|--:|")
    for w, done, wall in rows:
        print(
            f"| {w} | {done} | {wall:.1f} | {60 * done / wall:.1f} | {60 * audio_s / wall:.0f} | {rows[0][2] / wall:.2f}x |"
        )


if __name__ == "__main__":
    main()
