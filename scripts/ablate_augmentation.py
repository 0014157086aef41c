"""Ablate the transcriber's augmentation: twin runs that differ only in the stages left out, scored piece by piece.

Each --twin NAME=STAGE,STAGE trains with those stages of the chain (data/augment.py STAGES) left
out; the first twin is the reference (give it no stages: the whole chain). Everything else about the
runs is the same: the overrides after `--`, the seed, and so the segments and random draws, segment
for segment (a skipped stage still draws). Each twin is then scored on every --set by
w2m2w.evaluate, and the table gives, per set, each twin's mean F1 and its paired difference from
the reference over the same pieces, with the standard error of that mean difference.

    python scripts/ablate_augmentation.py --out runs/ablation --parallel 2 --threads 1 \\
        --twin full= --twin no_codec=codec --set cache/room_tune --set cache/room_tune_rooms -- \\
        train.init_weights=weights/onsets_frames.safetensors train.max_steps=2000 ...

The runs resume from their checkpoints, so the same command goes on after an interruption;
--score-only scores what is there. Writes OUT/NAME/ (each run), OUT/NAME.log and OUT/ablation.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2m2w.data.augment import STAGES  # noqa: E402

METRICS = ("note_f1", "note_offset_f1", "frame_f1", "note_velocity_f1")


@dataclass(frozen=True)
class Twin:
    name: str
    skip: tuple[str, ...]


def parse_twin(spec: str) -> Twin:
    """'NAME=STAGE,STAGE' (or 'NAME=' for the whole chain) -> Twin; ValueError naming a bad part."""
    name, sep, stages = spec.partition("=")
    if not sep or not name or "/" in name or name.startswith("."):
        raise ValueError(f"--twin {spec!r}: write NAME=STAGE,STAGE (NAME= for the whole chain)")
    skip = tuple(s.strip() for s in stages.split(",") if s.strip())
    unknown = [s for s in skip if s not in STAGES]
    if unknown:
        raise ValueError(f"--twin {spec!r}: unknown stage(s) {unknown}; the stages are {list(STAGES)}")
    return Twin(name, skip)


def train_command(twin: Twin, out: Path, overrides: list[str], threads: int) -> list[str]:
    """The `python -m w2m2w.train` call of one twin: the shared overrides, then its stages and folder."""
    return [
        sys.executable,
        "-m",
        "w2m2w.train",
        "train=transcriber",
        *overrides,
        f"train.augment_skip=[{','.join(twin.skip)}]",
        f"train.threads={threads}",
        f"train.out_dir={out / twin.name}",
    ]


def paired_difference(reference: list[dict], twin: list[dict], key: str) -> tuple[float, float, int]:
    """Mean over the pieces both scored of twin - reference for `key`, its standard error, and the number of pieces."""
    ref = {r["file"]: r[key] for r in reference}
    diffs = [r[key] - ref[r["file"]] for r in twin if r["file"] in ref]
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(diffs) / n
    if n == 1:
        return mean, math.nan, 1
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(var / n), n


def table(twins: list[Twin], scores: dict[str, dict[str, list[dict]]]) -> str:
    """Markdown: per set and twin, mean F1 and the paired difference from the first twin (+- its standard error)."""
    ref = twins[0].name
    lines = [
        "| set | twin | left out | "
        + " | ".join(METRICS)
        + " | "
        + " | ".join(f"d {m} (+- se)" for m in METRICS)
        + " |"
    ]
    lines.append("|" + " --- |" * (3 + 2 * len(METRICS)))
    for set_name in scores[ref]:
        for twin in twins:
            rows = scores.get(twin.name, {}).get(set_name)
            if not rows:
                continue
            means = [sum(r[m] for r in rows) / len(rows) for m in METRICS]
            if twin.name == ref:
                deltas = ["(reference)"] * len(METRICS)
            else:
                deltas = [
                    f"{d:+.4f} +- {se:.4f}"
                    for d, se, _ in (paired_difference(scores[ref][set_name], rows, m) for m in METRICS)
                ]
            left_out = ", ".join(twin.skip) or "nothing"
            lines.append(
                f"| {set_name} | {twin.name} | {left_out} | "
                + " | ".join(f"{v:.4f}" for v in means)
                + " | "
                + " | ".join(deltas)
                + " |"
            )
    return "\n".join(lines)


def _train(twin: Twin, out: Path, overrides: list[str], threads: int) -> tuple[Twin, int]:
    with open(out / f"{twin.name}.log", "a") as log:
        rc = subprocess.call(train_command(twin, out, overrides, threads), stdout=log, stderr=subprocess.STDOUT)
    return twin, rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    own, overrides = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--twin",
        action="append",
        required=True,
        metavar="NAME=STAGES",
        help="a run and the stages it leaves out; the first is the reference",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="a scoring set: audio and NAME.tsv side by side (repeatable)",
    )
    ap.add_argument("--parallel", type=int, default=1, help="twins trained at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run, and of the scoring")
    ap.add_argument("--score-only", action="store_true", help="score the runs' last.safetensors without training")
    args = ap.parse_args(own)
    try:
        twins = [parse_twin(s) for s in args.twin]
    except ValueError as exc:
        ap.error(str(exc))
    if len({t.name for t in twins}) != len(twins):
        ap.error("--twin names must differ")
    for s in args.set:
        if not s.is_dir():
            ap.error(f"--set {s}: not a folder")

    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    if not args.score_only:
        with ThreadPoolExecutor(max(1, args.parallel)) as pool:
            for twin, rc in pool.map(lambda t: _train(t, args.out, overrides, args.threads), twins):
                if rc:
                    print(
                        f"error: twin {twin.name}: training exited {rc}; see {args.out / twin.name}.log",
                        file=sys.stderr,
                    )
                    failed += 1

    import torch

    from w2m2w.evaluate.__main__ import evaluate_transcription

    torch.set_num_threads(max(1, args.threads))
    scores: dict[str, dict[str, list[dict]]] = {}
    for twin in twins:
        weights = args.out / twin.name / "last.safetensors"
        if not weights.is_file():
            print(f"error: twin {twin.name}: no {weights}", file=sys.stderr)
            failed += 1
            continue
        for s in args.set:
            report = evaluate_transcription(
                s, s, source="audio", weights=weights, warn=lambda m: print(f"warning: {m}", file=sys.stderr)
            )
            scores.setdefault(twin.name, {})[s.name] = report.rows
            print(f"{twin.name} on {s}: " + ", ".join(f"{m} {report.summary[m]:.4f}" for m in METRICS), flush=True)
    if twins[0].name not in scores:
        print(f"error: the reference twin {twins[0].name} has no scores", file=sys.stderr)
        return 1
    text = table(twins, scores)
    print(text)
    record = {
        "twins": {t.name: list(t.skip) for t in twins},
        "overrides": overrides,
        "sets": [str(s) for s in args.set],
        "scores": scores,
    }
    tmp = args.out / "ablation.json.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, args.out / "ablation.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
