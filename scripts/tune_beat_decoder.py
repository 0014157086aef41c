"""Sweep the learned beat tracker's decoder settings on the tuning pieces, from the performance MIDI (issue #32).

    python scripts/tune_beat_decoder.py --asap ../shared/data/midi/asap [--subset tuning] [--seconds 120]

The network runs once per performance (the first --seconds, notes lengthened by the pedal, as
scripts/eval_beats.py feeds it); each setting of w2m2w.beats.dbn_beats (tempo range, tempo-change weight,
observation window) then decodes the same activations, and the downbeats follow as the stages decode them.
Prints one line per setting: the settings, mean beat F and mean downbeat F (mir_eval, first 5 s trimmed).
Only the tuning subset is for choosing settings; the held-out pieces are for reporting.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2m2w import beats as B  # noqa: E402
from w2m2w.data import beats as D  # noqa: E402
from w2m2w.midi import load_midi_notes  # noqa: E402


def main() -> None:
    import mir_eval
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asap", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/midi/asap")
    ap.add_argument("--subset", choices=("tuning", "heldout"), default="tuning")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--weights", type=Path, default=Path(B.default_weights() or "weights/beat_tracker.safetensors"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # pretty_midi's notes on ASAP's tempo tracks, mir_eval's on empty beats
    trim = mir_eval.beat.trim_beats
    model = B.load_beat_tracker(str(args.weights))
    data = []
    for perf in D.pick_performances(args.asap, args.subset):
        ref, db = D.load_annotations(perf.parent / f"{perf.stem}_annotations.txt")
        keep = ref < args.seconds
        notes = load_midi_notes(perf, apply_pedal=True)
        notes = notes[notes[:, 0] < args.seconds]
        with torch.inference_mode():
            act = model.predict(np.asarray(notes, dtype=np.float64))
        data.append((ref[keep], db[keep], act))
    grid = itertools.product([20, 30, 40], [180, 220, 260], [30, 100, 300], [8, 16])
    for lo, hi, lam, obs in grid:
        setting = dict(min_bpm=lo, max_bpm=hi, transition_lambda=lam, observation_lambda=obs)
        fs, ds = [], []
        for ref, db, act in data:
            t = B.dbn_beats(act[:, 0], B.MODEL_FPS, **setting)
            _, down = B.downbeats_from_activation(t, act[:, 1], B.MODEL_FPS)
            fs.append(mir_eval.beat.f_measure(trim(ref), trim(t)))
            ds.append(mir_eval.beat.f_measure(trim(ref[db]), trim(t[down])) if len(t) else 0.0)
        print(setting, round(float(np.mean(fs)), 3), round(float(np.mean(ds)), 3), flush=True)


if __name__ == "__main__":
    main()
