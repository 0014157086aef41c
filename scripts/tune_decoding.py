"""Choose the transcriber's decoding thresholds on held-out audio: one forward pass per piece, then a grid.

    python scripts/tune_decoding.py --weights runs/X/last.safetensors \
        --set ../shared/data/audio/maps_synth:'*SptkBGCl*' --set cache/renders:'*_csound*' [--seconds 60]

Prints the mean F1s (note, note+offset, note+offset+velocity, frame, pedal onset) of every setting
in the grid, best first by the mean of note, note+offset and frame F1, and the best setting as
the overrides to pass to the transcribe stage. Tune on a validation set and report on another:
figures from the set the thresholds were chosen on flatter the model.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from w2m2w.data.transcription import Example, audio_dir_examples, maps_examples  # noqa: E402
from w2m2w.decoding import DecodeConfig  # noqa: E402
from w2m2w.train.transcriber import decoding_scores, load_validation  # noqa: E402
from w2m2w.transcription import load_transcriber  # noqa: E402


def examples(spec: str) -> list[Example]:
    """DIR:GLOB -> the examples in DIR (MAPS layout flac/ + tsv/, or NAME.audio beside NAME.tsv) whose name matches GLOB."""
    folder, _, pattern = spec.partition(":")
    found = maps_examples(folder) if (Path(folder) / "flac").is_dir() else audio_dir_examples(folder)
    return [e for e in found if fnmatch.fnmatch(e.name, pattern or "*")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="weights/onsets_frames.safetensors")
    ap.add_argument("--set", action="append", required=True, help="DIR:GLOB of held-out audio with notes (repeatable)")
    ap.add_argument("--seconds", type=float, default=60.0, help="first N seconds of each piece")
    ap.add_argument("--onset", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    ap.add_argument("--frame", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--offset", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3])
    ap.add_argument(
        "--pedal",
        type=float,
        nargs="+",
        default=[0.3, 0.4, 0.5],
        help="pedal frame and onset thresholds tried (pedal head only)",
    )
    ap.add_argument(
        "--pedal-offset", type=float, nargs="+", default=[0.06, 0.1, 0.2, 0.4], help="pedal offset thresholds tried"
    )
    ap.add_argument(
        "--pedal-gap",
        type=float,
        nargs="+",
        default=[0.0, 0.15, 0.25],
        help="pedal change gaps tried (seconds; 0: off)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    model = load_transcriber(args.weights)
    ex = [e for spec in args.set for e in examples(spec)]
    if not ex:
        print("no held-out audio with notes matched --set", file=sys.stderr)
        return 1
    data = load_validation(ex, args.seconds)
    probs = [model.predict(y) for y, _, _ in data]
    has_pedal = model.cfg.pedal
    results = []
    for on, fr, off in itertools.product(args.onset, args.frame, args.offset):
        d = DecodeConfig(onset_threshold=on, frame_threshold=fr, offset_threshold=off)
        results.append(
            (
                {"onset_threshold": on, "frame_threshold": fr, "offset_threshold": off},
                decoding_scores(probs, data, model.frame_rate, d),
            )
        )
    results.sort(key=lambda r: -np.mean([r[1]["note_f1"], r[1]["note_offset_f1"], r[1]["frame_f1"]]))
    best = results[0][0]
    if has_pedal:  # the pedal's thresholds do not touch the notes: tuned on their own, at the best note setting
        pedal_results = []
        for pf, po, pof, gap in itertools.product(args.pedal, args.pedal, args.pedal_offset, args.pedal_gap):
            setting = {
                "pedal_frame_threshold": pf,
                "pedal_onset_threshold": po,
                "pedal_offset_threshold": pof,
                "pedal_change_gap": gap,
            }
            pedal_results.append(
                (setting, decoding_scores(probs, data, model.frame_rate, DecodeConfig(**best, **setting)))
            )
        pedal_results.sort(key=lambda r: -r[1].get("pedal_onset_f1", 0.0))
        best = {**best, **pedal_results[0][0]}
    print(f"{len(ex)} pieces, first {args.seconds:g} s each; weights {args.weights}\n")
    cols = ["note_f1", "note_velocity_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"]
    print("| onset | frame | offset | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (3 + len(cols)))
    for s, m in results[: args.top]:
        print(
            f"| {s['onset_threshold']} | {s['frame_threshold']} | {s['offset_threshold']} | "
            + " | ".join(f"{m[c]:.3f}" for c in cols)
            + " |"
        )
    if has_pedal:
        print(
            "\n| pedal frame | pedal onset | pedal offset | change gap | pedal_onset_f1 | pedal_onset_offset_f1 | pedal_frame_f1 |\n"
            + "| --- " * 7
            + "|"
        )
        for s, m in pedal_results[: args.top]:
            print(
                f"| {s['pedal_frame_threshold']} | {s['pedal_onset_threshold']} | {s['pedal_offset_threshold']} | {s['pedal_change_gap']} | "
                f"{m.get('pedal_onset_f1', float('nan')):.3f} | "
                f"{m.get('pedal_onset_offset_f1', float('nan')):.3f} | {m.get('pedal_frame_f1', float('nan')):.3f} |"
            )
    print("\nbest: " + " ".join(f"{k}={v}" for k, v in best.items()))
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
