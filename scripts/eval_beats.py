"""Beat, downbeat and notation accuracy on ASAP performances the tracker never saw (issue #32).

    python scripts/eval_beats.py --asap ../shared/data/midi/asap [--subset heldout|tuning] [--seconds 120] [--tracker learned|handmade]

Pieces (folders with a midi_score.mid) are ordered by sha1(SEED + folder): the first N_TUNING are the
tuning subset (the only ones any setting was chosen on), the next N_HELDOUT the held-out subset; one
performance per piece, the one with the smallest sha1(SEED + file name). The rule lives in
w2m2w/data/beats.py (eval_pieces, pick_performances): the learned tracker's training leaves out every
performance of these pieces by the same rule. Each performance is cut to its
first --seconds (so a run stays minutes on two cores) and scored:
  - beat and downbeat F-measure (mir_eval, 70 ms window, first 5 s trimmed as mir_eval.beat.evaluate
    does) from the MIDI, and from audio FluidSynth renders of it (soundfont chosen by the same hash):
    the render transcribed by the shipped transcriber, then beats_from_audio_and_notes (the learned
    tracker reads the transcription's notes; --tracker handmade: the hand-made audio tracker);
  - notation: the share of performance notes whose quantized position in the bar (beat in bar + fraction,
    w2m2w.score.quantize) equals the score's. The score's position of a performance note comes from
    ASAP's aligned beats: the note's beat position (index + fraction) in the performance annotations is
    matched to the nearest same-pitch score note's exact beat position in midi_score_annotations.txt.
  - the bundled demo (Bach Prelude in C, 72 bpm, 4/4, sixteenths), and the speed: seconds of
    transcription + tracking per minute of audio, and the tracker's share of it.
Prints tables; the last line is one JSON object of the means.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2m2w import beats as B  # noqa: E402
from w2m2w import score as S  # noqa: E402
from w2m2w.data import beats as D  # noqa: E402
from w2m2w.data.beats import load_annotations, pick_performances  # noqa: E402

SOUNDFONTS = ("fluidr3", "musescore", "timgm6mb")
_h = D._h  # sha1(SEED + s): the soundfont of a performance, as the pieces are chosen


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
    return (
        mir_eval.beat.f_measure(trim(ref), trim(est.times)),
        mir_eval.beat.f_measure(trim(ref[ref_db]), trim(est.downbeats)),
    )


def score_positions(
    perf_notes: np.ndarray,
    perf_beats: np.ndarray,
    score_notes: np.ndarray,
    score_beats: np.ndarray,
    score_db: np.ndarray,
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


def track_notes(notes: np.ndarray, tracker: str, weights: Path) -> B.Beats:
    return B.learned_beats(notes, weights) if tracker == "learned" else B.handmade_beats_from_notes(notes)


def track_audio(
    y: np.ndarray, sr: int, transcriber, tracker: str, weights: Path, cache: Path | None = None
) -> tuple[B.Beats, float, float]:
    """(beats, transcription seconds, tracking seconds) of 16 kHz mono audio: transcribed, then tracked.

    cache: an .npz keeping the transcription and the seconds it took, so trackers compare on the same notes."""
    from w2m2w.transcription import transcribe

    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            notes, t_tr = z["notes"], float(z["seconds"])
    else:
        t0 = time.perf_counter()
        notes = transcribe(transcriber, y)
        t_tr = time.perf_counter() - t0
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, notes=notes, seconds=t_tr)
    t1 = time.perf_counter()
    est = (
        B.learned_beats(notes, weights) if tracker == "learned" else B.handmade_beats_from_audio_and_notes(y, sr, notes)
    )
    return est, t_tr, time.perf_counter() - t1


def evaluate_one(
    perf: Path, seconds: float, transcriber, tracker: str, weights: Path, transcripts: Path | None = None
) -> dict:
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
    # the learned tracker was trained on notes lengthened by the pedal, as a listener (and the transcriber) hears them
    played = load_midi_notes(perf, apply_pedal=True)
    est = track_notes(played[played[:, 0] < seconds] if tracker == "learned" else notes, tracker, weights)
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
    if transcriber is not None:
        pedal = pedal[pedal[:, 0] < seconds] if len(pedal) else pedal
        sf = SOUNDFONTS[int(_h(perf.name), 16) % len(SOUNDFONTS)]
        y = (
            notes_to_pretty_midi(notes, pedal=pedal)
            .fluidsynth(fs=16000, synthesizer=soundfont_path(sf))
            .astype(np.float32)
        )
        cache = transcripts / f"{perf.parent.name}_{perf.stem}_{sf}_{seconds:g}.npz" if transcripts else None
        est_a, t_tr, t_beats = track_audio(y, 16000, transcriber, tracker, weights, cache)
        minutes = len(y) / 16000 / 60
        row["transcribe_s_per_min"] = t_tr / minutes
        row["beats_s_per_min"] = t_beats / minutes
        row["audio_beat_f"], row["audio_db_f"] = f_measures(ref[keep], ref_db[keep], est_a)
        row["soundfont"] = sf
    return row


def demo_check(path: Path, transcriber, tracker: str, weights: Path, transcripts: Path | None = None) -> dict:
    """The bundled demo: 4/4, 72 bpm (w2m2w/demo.py), sixteenths; tracked from its audio (through its transcription)."""
    import librosa
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32")
    y = y.mean(axis=1) if y.ndim > 1 else y
    if sr != 16000:
        y, sr = librosa.resample(y, orig_sr=sr, target_sr=16000), 16000
    if transcriber is None:
        est = B.beats_from_audio(y, sr)
    else:
        est = track_audio(y, sr, transcriber, tracker, weights, transcripts / "demo.npz" if transcripts else None)[0]
    from w2m2w.demo import bach_prelude_notes

    notes = bach_prelude_notes()
    q = S.quantize(notes, est)
    ratio = est.tempo / 72.0
    ok_tempo = any(abs(ratio - r) <= 0.05 * r for r in (0.5, 1.0, 2.0))
    level = min(
        (Fraction(1, 2), Fraction(1), Fraction(2)), key=lambda r: abs(ratio - float(r))
    )  # the tracked beat level
    sixteenth = Fraction(1, 4) * level  # a sixteenth in tracked beats
    steps = sorted({p for p, _ in q.positions()})
    frac_ok = all((p / sixteenth).denominator == 1 for p in steps)
    return {
        "tempo": round(est.tempo, 2),
        "meter": est.meter,
        "tempo_ok": ok_tempo,
        "sixteenths_intact": frac_ok,
        "beats": len(est.times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asap", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/midi/asap")
    ap.add_argument("--subset", choices=("heldout", "tuning"), default="heldout")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--no-audio", action="store_true")
    ap.add_argument("--tracker", choices=("learned", "handmade"), default="learned")
    ap.add_argument(
        "--weights",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "weights/beat_tracker.safetensors",
        help="the learned tracker's",
    )
    ap.add_argument(
        "--transcripts",
        type=Path,
        default=None,
        help="a folder keeping each render's transcription (and its time) between runs",
    )
    ap.add_argument(
        "--demo", type=Path, default=Path(__file__).resolve().parents[1] / "assets/demo/bach_prelude_c.flac"
    )
    args = ap.parse_args()
    transcriber = None
    if not args.no_audio:
        from w2m2w.paths import DEFAULT_WEIGHTS
        from w2m2w.transcription import load_transcriber

        transcriber = load_transcriber(DEFAULT_WEIGHTS["onsets_frames"])
    rows = []
    for perf in pick_performances(args.asap, args.subset):
        row = evaluate_one(perf, args.seconds, transcriber, args.tracker, args.weights, args.transcripts)
        rows.append(row)
        cols = [
            f"{row[k]:.3f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
            for k in (
                "midi_beat_f",
                "midi_db_f",
                "audio_beat_f",
                "audio_db_f",
                "notes_at_score_pos",
                "notes_at_score_subbeat",
            )
        ]
        print(f"{row['piece'][:44]:44s} {row['perf'][:14]:14s} m={row['meter']} " + " ".join(cols), flush=True)
    keys = [
        k
        for k in (
            "midi_beat_f",
            "midi_db_f",
            "audio_beat_f",
            "audio_db_f",
            "notes_at_score_pos",
            "notes_at_score_subbeat",
            "transcribe_s_per_min",
            "beats_s_per_min",
        )
        if k in rows[0]
    ]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print(f"\n{args.subset}: {len(rows)} performances, first {args.seconds:.0f} s each, tracker {args.tracker}")
    print("| metric | mean | floor |\n|---|---|---|")
    floors = {"audio_beat_f": 0.85, "audio_db_f": 0.6, "notes_at_score_pos": 0.70}
    for k, v in means.items():
        print(f"| {k} | {v:.3f} | {floors.get(k, '')} |")
    if "transcribe_s_per_min" in means:
        # the floor: transcription with score output at >= 50x real time, i.e. <= 1.2 s per minute of audio
        means["x_realtime_with_beats"] = 60.0 / (means["transcribe_s_per_min"] + means["beats_s_per_min"])
        print(f"speed: {means['x_realtime_with_beats']:.1f}x real time (transcription + beats; floor 50x)")
    if args.demo.exists():
        means["demo"] = demo_check(args.demo, transcriber, args.tracker, args.weights, args.transcripts)
        print("demo:", means["demo"])
    print(json.dumps({"subset": args.subset, "n": len(rows), **means}))


if __name__ == "__main__":
    main()
