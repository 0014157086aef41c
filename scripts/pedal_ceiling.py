"""How well can pedal presses be placed when the audio carries no press? An oracle on reference pedals.

    python scripts/pedal_ceiling.py --set cache/room_val:'*_csound*'

The FluidSynth renders are made from notes with the pedal already applied (a note under the pedal
is written as a longer note, and FluidSynth's own sustain does the same), so a press changes
nothing in the waveform: nothing sounds when the dampers lift, unlike a real piano's sympathetic
resonance and damper noise. What the audio does show is a lift: the notes held by the pedal stop
together. So the best a transcriber can do on these renders is to find every lift exactly and
guess each following press from habit.

This script scores that best case with the evaluation's own scoring (metrics.pedal_metrics,
Kong et al.'s 0.2 s onset tolerance): every lift and the first press taken from the reference,
each later press guessed as lift + a constant gap, offsets exact. It prints the F1 for a grid of
gaps and the spread of the real lift-to-press gaps. A transcriber's pedal onset F1 on the same
set is bounded in practice by the best row here, unless it learns more about when pianists press.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from w2m2w.metrics import pedal_metrics  # noqa: E402
from w2m2w.pedal import load_pedal  # noqa: E402


def lift_oracle(ref: np.ndarray, gap: float) -> np.ndarray:
    """Pedal intervals (n, 2) with the reference's first press, its lifts and offsets, and every later press at lift + gap."""
    ref = np.asarray(ref, dtype=np.float64).reshape(-1, 2)
    if len(ref) == 0:
        return ref
    downs = np.concatenate([ref[:1, 0], ref[:-1, 1] + gap])
    return np.stack([downs, np.maximum(ref[:, 1], downs + 0.05)], axis=1)


def pedal_refs(spec: str) -> list[tuple[Path, np.ndarray]]:
    """DIR:GLOB -> (NAME.tsv, its pedal (n, 2)) for each NAME in DIR matching GLOB whose NAME.pedal.tsv holds at least one press."""
    folder, _, pattern = spec.partition(":")
    out = []
    for tsv in sorted(Path(folder).glob("*.tsv")):
        if tsv.name.endswith(".pedal.tsv") or not fnmatch.fnmatch(tsv.stem, pattern or "*"):
            continue
        ped = load_pedal(tsv)
        if ped is not None and len(ped):
            out.append((tsv, ped))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--set",
        action="append",
        required=True,
        help="DIR:GLOB of notes TSVs with NAME.pedal.tsv beside them (repeatable)",
    )
    ap.add_argument("--gaps", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4])
    args = ap.parse_args(argv)
    refs = [ped for spec in args.set for _, ped in pedal_refs(spec)]
    if not refs:
        print(f"error: no reference pedal in {args.set}", file=sys.stderr)
        return 2
    gaps = np.concatenate([r[1:, 0] - r[:-1, 1] for r in refs])
    print(
        f"{len(refs)} pieces, {sum(len(r) for r in refs)} presses, {len(gaps)} of them after a lift in the same piece\n"
    )
    print("| press guessed at lift + | pedal onset P | R | F1 | pedal onset+offset F1 |")
    print("| --- | --- | --- | --- | --- |")
    for g in args.gaps:
        ms = [pedal_metrics(r, lift_oracle(r, g)) for r in refs]
        mean = {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}
        print(
            f"| {g:.2f} s | {mean['pedal_onset_precision']:.3f} | {mean['pedal_onset_recall']:.3f} | "
            f"{mean['pedal_onset_f1']:.3f} | {mean['pedal_onset_offset_f1']:.3f} |"
        )
    q = np.quantile(gaps, [0.1, 0.25, 0.5, 0.75, 0.9])
    print("\nlift-to-press gaps (s), quantiles 10/25/50/75/90 %: " + " / ".join(f"{x:.2f}" for x in q))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
