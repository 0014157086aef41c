"""Sweep the learned beat tracker's decoder settings on the tuning pieces, from the performance MIDI (issue #32).

    python scripts/tune_beat_decoder.py --asap ../shared/data/midi/asap [--subset tuning] [--seconds 120]
    python scripts/tune_beat_decoder.py --sweep meter --subset tuning validation

The network runs once per performance (the first --seconds, notes lengthened by the pedal, as
scripts/eval_beats.py feeds it); each setting then decodes the same activations:
  --sweep beats (default): w2m2w.beats.dbn_beats' tempo range, tempo-change weight and observation window,
    the downbeats following as the stages decode them;
  --sweep meter: downbeats_from_activation's log-odds bias and jump penalty at the stages' beat decoder,
    also printing how often the meter is the annotations' and the share of notes at the score's position in
    the bar (scripts/eval_beats.py's measure);
  --sweep accents: the weights of note_accents (harmonic change, note length) added to the downbeat log-odds,
    with the same figures.
Prints one line per setting: the settings, mean beat F and mean downbeat F (mir_eval, first 5 s trimmed).
Only the tuning subset and the training side's validation pieces (`validation`: the pieces
train=beat_tracker holds out with its default val_fraction and split_seed) are for choosing settings;
the held-out pieces are for reporting.
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
    ap.add_argument("--subset", nargs="+", choices=("tuning", "heldout", "validation"), default=["tuning"])
    ap.add_argument("--sweep", choices=("beats", "meter", "accents"), default="beats")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--weights", type=Path, default=Path(B.default_weights() or "weights/beat_tracker.safetensors"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # pretty_midi's notes on ASAP's tempo tracks, mir_eval's on empty beats
    trim = mir_eval.beat.trim_beats
    model = B.load_beat_tracker(str(args.weights))
    data = []
    for perf in performances(args.asap, args.subset):
        ref, db = D.load_annotations(perf.parent / f"{perf.stem}_annotations.txt")
        keep = ref < args.seconds
        notes = load_midi_notes(perf, apply_pedal=True)
        notes = notes[notes[:, 0] < args.seconds]
        with torch.inference_mode():
            act = model.predict(np.asarray(notes, dtype=np.float64))
        data.append((ref[keep], db[keep], act))
    if args.sweep in ("meter", "accents"):
        sweep_meter(args, data)
        return
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


def performances(asap: Path, subsets: list[str]) -> list[Path]:
    """One performance per piece of each subset (validation: the first performance of each training-side validation
    piece, as train=beat_tracker validates)."""
    out: list[Path] = []
    for subset in subsets:
        if subset == "validation":
            from w2m2w.train.beat_tracker import BeatTrackerTrainConfig

            cfg = BeatTrackerTrainConfig()
            _, val = D.split_pieces(D.training_pieces(asap), cfg.val_fraction, cfg.split_seed)
            out += [perfs[0] for perfs in (D.performances(f) for f in val) if perfs]
        else:
            out += D.pick_performances(asap, subset)
    return out


def annotated_meter(db: np.ndarray) -> int:
    """Beats per bar of the annotations: the commonest spacing of their downbeats."""
    gaps = np.diff(np.flatnonzero(db))
    return int(np.bincount(gaps).argmax()) if len(gaps) else 4


def sweep_meter(args: argparse.Namespace, data: list) -> None:
    """Downbeat bias x jump penalty at the stages' beat decoder: beat F, downbeat F, meter right, notes placed."""
    import mir_eval

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_beats import score_positions

    from w2m2w import score as S

    trim = mir_eval.beat.trim_beats
    perfs = performances(args.asap, args.subset)
    truths = []
    for perf in perfs:
        notes = load_midi_notes(perf, apply_pedal=False)
        notes = notes[notes[:, 0] < args.seconds]
        sb, sdb = D.load_annotations(perf.parent / "midi_score_annotations.txt")
        full, _ = D.load_annotations(perf.parent / f"{perf.stem}_annotations.txt")
        truths.append(
            (
                notes,
                score_positions(
                    notes, full, load_midi_notes(perf.parent / "midi_score.mid", apply_pedal=False), sb, sdb
                ),
            )
        )
    beats = [B.dbn_beats(act[:, 0], B.MODEL_FPS) for _, _, act in data]
    # the tracker's input, read once: notes lengthened by the pedal, as the stages and data[] have them
    pedalled = [load_midi_notes(p, apply_pedal=True) for p in perfs]
    pedalled = [n[n[:, 0] < args.seconds] for n in pedalled]
    if args.sweep == "accents":
        settings = [
            {"accent_weights": w}
            for w in itertools.product([0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0], [0.0, 0.25, 0.5, 0.75, 1.0])
        ]
    else:
        grid = itertools.product([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0], [2.0, 3.0, 4.0, 6.0, 9.0])
        settings = [{"bias": b, "switch_penalty": p, "accent_weights": (0.0, 0.0)} for b, p in grid]
    for setting in settings:
        ds, meters, placed = [], [], []
        for (ref, db, act), t, (notes, truth) in zip(data, beats, truths):
            decode = {k: v for k, v in setting.items() if k != "accent_weights"}
            accents = B.note_accents(pedalled[len(ds)], t, setting["accent_weights"])
            m, down = B.downbeats_from_activation(t, act[:, 1], B.MODEL_FPS, accents=accents, **decode)
            ds.append(mir_eval.beat.f_measure(trim(ref[db]), trim(t[down])) if len(t) else 0.0)
            meters.append(m == annotated_meter(db))
            q = S.quantize(notes, B.Beats(t, down, m))
            pairs = [(p[0], tr[0]) for tr, p in zip(truth, q.positions()) if tr is not None]
            placed.append(sum(a == b for a, b in pairs) / max(len(pairs), 1))
        print(
            setting,
            "downbeat F",
            round(float(np.mean(ds)), 3),
            "meter right",
            f"{int(np.sum(meters))}/{len(meters)}",
            "notes at the score position",
            round(float(np.mean(placed)), 3),
            flush=True,
        )


if __name__ == "__main__":
    main()
