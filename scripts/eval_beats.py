"""Beat, downbeat and notation accuracy on ASAP performances the tracker never saw (issue #32).

    python scripts/eval_beats.py --asap ../shared/data/midi/asap [--subset heldout|tuning] [--seconds 120]

Pieces (folders with a midi_score.mid) are ordered by sha1(SEED + folder): the first N_TUNING are the
tuning subset (the only ones any setting was chosen on), the next N_HELDOUT the held-out subset; one
performance per piece, the one with the smallest sha1(SEED + file name). Each performance is cut to its
first --seconds (so a run stays minutes on two cores) and scored:
  - beat and downbeat F-measure (mir_eval, 70 ms window, first 5 s trimmed as mir_eval.beat.evaluate
    does) from the MIDI, and from audio FluidSynth renders of it (soundfont chosen by the same hash);
  - notation: the share of performance notes whose quantized position in the bar (beat in bar + fraction,
    w2m2w.score.quantize) equals the score's. The score's position of a performance note comes from
    ASAP's aligned beats: the note's beat position (index + fraction) in the performance annotations is
    matched to the nearest same-pitch score note's exact beat position in midi_score_annotations.txt.
  - the bundled demo (Bach Prelude in C, 72 bpm, 4/4, sixteenths) and the tracker's speed.
Prints tables; the last line is one JSON object of the means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2m2w import beats as B  # noqa: E402
from w2m2w import score as S  # noqa: E402

SEED = "w2m2w-beats-32"
N_TUNING, N_HELDOUT = 6, 25
SOUNDFONTS = ("fluidr3", "musescore", "timgm6mb")


def _h(s: str) -> str:
    return hashlib.sha1((SEED + s).encode()).hexdigest()


def pick_performances(asap: Path, subset: str) -> list[Path]:
    """The fixed subset's performance MIDI paths (the seeded rule in the module docstring)."""
    pieces = sorted((p.parent for p in asap.rglob("midi_score.mid")), key=lambda p: _h(str(p.relative_to(asap))))
    chosen = pieces[:N_TUNING] if subset == "tuning" else pieces[N_TUNING : N_TUNING + N_HELDOUT]
    out = []
    for folder in chosen:
        perfs = sorted(
            (m for m in folder.glob("*.mid") if m.name != "midi_score.mid" and (folder / f"{m.stem}_annotations.txt").exists()), key=lambda m: _h(m.name)
        )
        if perfs:
            out.append(perfs[0])
    return out


def load_annotations(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """ASAP annotations: beat times (n,) and is_downbeat (n,) bool."""
    times, db = [], []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            times.append(float(parts[0]))
            db.append(parts[2].split(",")[0] == "db")
    return np.array(times), np.array(db, dtype=bool)


def beat_position(t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Continuous beat index (n,) of times t on a beat grid (m,), linear within and beyond it."""
    idx = np.arange(len(beats), dtype=np.float64)
    pos = np.interp(t, beats, idx)
    lo, hi = t < beats[0], t > beats[-1]
    pos[lo] = (t[lo] - beats[0]) / (beats[1] - beats[0])
    pos[hi] = len(beats) - 1 + (t[hi] - beats[-1]) / (beats[-1] - beats[-2])
    return pos


def f_measures(ref: np.ndarray, ref_db: np.ndarray, est: B.Beats) -> tuple[float, float]:
    import mir_eval

    trim = mir_eval.beat.trim_beats
    return (mir_eval.beat.f_measure(trim(ref), trim(est.times)), mir_eval.beat.f_measure(trim(ref[ref_db]), trim(est.downbeats)))


def score_positions(
    perf_notes: np.ndarray, perf_beats: np.ndarray, score_notes: np.ndarray, score_beats: np.ndarray, score_db: np.ndarray
) -> list[tuple[Fraction, bool] | None]:
    """Each performance note's position in the bar in the score (beats from the bar line, a Fraction), or None
    when no same-pitch score note lies within half a beat of it on the aligned beat grid."""
    n = min(len(perf_beats), len(score_beats))
    pp = beat_position(perf_notes[:, 0], perf_beats[:n])
    sp = beat_position(score_notes[:, 0], score_beats[:n])
    bar_start = np.maximum.accumulate(np.where(score_db[:n], np.arange(n), 0))
    out: list[tuple[Fraction, bool] | None] = []
    for pos, pitch in zip(pp, perf_notes[:, 2]):
        same = np.flatnonzero(score_notes[:, 2] == pitch)
        if len(same) == 0:
            out.append(None)
            continue
        j = same[np.argmin(np.abs(sp[same] - pos))]
        if abs(sp[j] - pos) > 0.5 or sp[j] < 0 or sp[j] >= n:
            out.append(None)
            continue
        exact = Fraction(sp[j]).limit_denominator(48)
        k = int(np.floor(float(exact)))
        out.append((exact - int(bar_start[k]), True))
    return out


def evaluate_one(perf: Path, seconds: float, audio: bool) -> dict:
    import pretty_midi

    from w2m2w.midi import load_midi_notes, notes_to_pretty_midi
    from w2m2w.pedal import pedal_from_pretty_midi
    from w2m2w.render.fluidsynth import soundfont_path

    folder = perf.parent
    pm = pretty_midi.PrettyMIDI(str(perf))
    notes = load_midi_notes(perf, apply_pedal=False)
    pedal = pedal_from_pretty_midi(pm)
    notes = notes[notes[:, 0] < seconds]
    ref, ref_db = load_annotations(folder / f"{perf.stem}_annotations.txt")
    keep = ref < seconds
    row: dict = {"piece": str(folder.relative_to(folder.parents[2])), "perf": perf.stem}
    est = B.beats_from_notes(notes)
    row["midi_beat_f"], row["midi_db_f"] = f_measures(ref[keep], ref_db[keep], est)
    row["meter"] = est.meter
    # notation: quantized position in the bar vs the score's
    score_notes = load_midi_notes(folder / "midi_score.mid", apply_pedal=False)
    sb, sdb = load_annotations(folder / "midi_score_annotations.txt")
    truth = score_positions(notes, ref, score_notes, sb, sdb)
    q = S.quantize(notes, est)
    hit = tot = hit_beat = 0
    for tr, (bar_pos, _) in zip(truth, q.positions()):
        if tr is None:
            continue
        tot += 1
        hit += bar_pos == tr[0]
        hit_beat += (bar_pos % 1) == (tr[0] % 1)  # the place within the beat only
    row["notes_at_score_pos"] = hit / max(tot, 1)
    row["notes_at_score_subbeat"] = hit_beat / max(tot, 1)
    if audio:
        pedal = pedal[pedal[:, 0] < seconds] if len(pedal) else pedal
        sf = SOUNDFONTS[int(_h(perf.name), 16) % len(SOUNDFONTS)]
        y = notes_to_pretty_midi(notes, pedal=pedal).fluidsynth(fs=16000, synthesizer=soundfont_path(sf)).astype(np.float32)
        t0 = time.perf_counter()
        est_a = B.beats_from_audio(y, 16000)
        row["audio_s_per_min"] = (time.perf_counter() - t0) / (len(y) / 16000 / 60)
        row["audio_beat_f"], row["audio_db_f"] = f_measures(ref[keep], ref_db[keep], est_a)
        row["soundfont"] = sf
    return row


def demo_check(path: Path) -> dict:
    """The bundled demo: 4/4, 72 bpm (w2m2w/demo.py), sixteenths."""
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32")
    y = y.mean(axis=1) if y.ndim > 1 else y
    est = B.beats_from_audio(y, sr)
    from w2m2w.demo import bach_prelude_notes

    notes = bach_prelude_notes()
    q = S.quantize(notes, est)
    ratio = est.tempo / 72.0
    ok_tempo = any(abs(ratio - r) <= 0.05 * r for r in (0.5, 1.0, 2.0))
    level = min((Fraction(1, 2), Fraction(1), Fraction(2)), key=lambda r: abs(ratio - float(r)))  # the tracked beat level
    sixteenth = Fraction(1, 4) * level  # a sixteenth in tracked beats
    steps = sorted({p for p, _ in q.positions()})
    frac_ok = all((p / sixteenth).denominator == 1 for p in steps)
    return {"tempo": round(est.tempo, 2), "meter": est.meter, "tempo_ok": ok_tempo, "sixteenths_intact": frac_ok, "beats": len(est.times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asap", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/midi/asap")
    ap.add_argument("--subset", choices=("heldout", "tuning"), default="heldout")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--demo", type=Path, default=Path(__file__).resolve().parents[1] / "assets/demo/bach_prelude_c.flac")
    args = ap.parse_args()
    rows = []
    for perf in pick_performances(args.asap, args.subset):
        row = evaluate_one(perf, args.seconds, audio=not args.no_audio)
        rows.append(row)
        cols = [
            f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
            for k in ("midi_beat_f", "midi_db_f", "audio_beat_f", "audio_db_f", "notes_at_score_pos", "notes_at_score_subbeat")
        ]
        print(f"{row['piece'][:44]:44s} {row['perf'][:14]:14s} m={row['meter']} " + " ".join(cols), flush=True)
    keys = [
        k for k in ("midi_beat_f", "midi_db_f", "audio_beat_f", "audio_db_f", "notes_at_score_pos", "notes_at_score_subbeat", "audio_s_per_min") if k in rows[0]
    ]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print(f"\n{args.subset}: {len(rows)} performances, first {args.seconds:.0f} s each")
    print("| metric | mean | floor |\n|---|---|---|")
    floors = {"audio_beat_f": 0.85, "audio_db_f": 0.6, "notes_at_score_pos": 0.70}
    for k, v in means.items():
        print(f"| {k} | {v:.3f} | {floors.get(k, '')} |")
    if args.demo.exists():
        means["demo"] = demo_check(args.demo)
        print("demo:", means["demo"])
    print(json.dumps({"subset": args.subset, "n": len(rows), **means}))


if __name__ == "__main__":
    main()
