"""Transcription speed, peak memory and note F1 on a rendered piano recording.

    python benchmarks/transcribe_speed.py [--weights weights/onsets_frames.safetensors] [--minutes 10] [--threads 2]

Builds MINUTES of random but musical piano (a chord progression, a bass line
and a melody in a random key, changing tempo and dynamics), renders it with
FluidSynth (w2m2w.render.fluidsynth), writes it as a user's recording would come
(44.1 kHz stereo 16-bit WAV unless --sample-rate/--channels say otherwise), and transcribes it with the project's Onsets
and Frames model and, when `basic_pitch` is importable, with Spotify's Basic
Pitch (ONNX) for comparison. Each system runs in its own subprocess, so its
peak RSS is its own: interpreter, libraries, model, audio and inference.
Wall time covers reading the audio file through to the note list; model
loading is reported separately. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 5, 1, 4))


def musical_notes(seconds: float, seed: int = 0) -> np.ndarray:
    """Random piano music of about `seconds`: note list (n, 4) of onset, offset, pitch, velocity.

    Eight-bar sections, each with its own key, mode, tempo, texture and
    dynamic; a repeated key is cut where it is struck again, as a piano would.
    """
    rng = np.random.default_rng(seed)
    notes: list[tuple[float, float, int, int]] = []
    t = 0.5
    while t < seconds:
        tonic = 48 + int(rng.integers(0, 12))
        scale = MAJOR if rng.random() < 0.6 else MINOR
        beat = 60.0 / rng.uniform(70, 150)
        loud = rng.uniform(45, 100)
        texture = rng.choice(["block", "arpeggio", "alberti"])
        prog = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
        mdeg = 7 + int(rng.integers(0, 7))  # melody as a scale degree, an octave above the tonic

        def degree(d: int, octave: int = 0, tonic: int = tonic, scale: tuple = scale) -> int:  # this piece's key
            return tonic + 12 * (octave + d // 7) + scale[d % 7]

        for bar in range(8):
            if t >= seconds:
                break
            root = prog[bar % 4]
            chord = [degree(root), degree(root + 2), degree(root + 4)]
            vel = lambda base: int(np.clip(rng.normal(base, 8), 20, 120))  # noqa: E731
            # bass on beat one, held for the bar
            notes.append((t, t + 4 * beat * 0.95, degree(root, -1), vel(loud - 5)))
            if texture == "block":
                for b in (0, 2):
                    for p in chord:
                        notes.append((t + b * beat, t + (b + 2) * beat * 0.9, p, vel(loud - 10)))
            else:
                pattern = [0, 1, 2, 1] if texture == "arpeggio" else [0, 2, 1, 2]
                for i in range(8):
                    p = chord[pattern[i % 4]]
                    notes.append((t + i * beat / 2, t + (i + 1) * beat / 2 * 0.95, p, vel(loud - 15)))
            # melody: a random walk on the scale, eighths and quarters
            pos = 0.0
            while pos < 4:
                dur = beat * (0.5 if rng.random() < 0.5 else 1.0)
                step = int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]))
                if not 60 <= degree(mdeg + step) <= 96:
                    step = -step
                mdeg += step
                if rng.random() > 0.1:  # some rests
                    notes.append(
                        (t + pos * beat, t + pos * beat + dur * rng.uniform(0.7, 1.2), degree(mdeg), vel(loud + 5))
                    )
                pos += dur / beat
            t += 4 * beat
    arr = np.array(notes, dtype=np.float64)
    arr = arr[arr[:, 0] < seconds]
    arr[:, 1] = np.minimum(arr[:, 1], seconds + 1.0)
    arr = arr[np.lexsort((arr[:, 2], arr[:, 0]))]
    keep = np.ones(len(arr), bool)
    for pitch in np.unique(arr[:, 2]):
        idx = np.flatnonzero(arr[:, 2] == pitch)
        a = idx[0]
        for b in idx[1:]:
            if arr[b, 0] - arr[a, 0] < 0.03:  # a double strike on one key: one note
                keep[b] = False
                arr[a, 1] = max(arr[a, 1], arr[b, 1])
                continue
            arr[a, 1] = min(arr[a, 1], arr[b, 0])
            a = b
    return arr[keep]


def rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float:
    """This process's own peak resident set size, MB.

    Linux's VmHWM, not getrusage's ru_maxrss: a child started by subprocess inherits its parent's
    ru_maxrss across exec (measured: a fresh interpreter under a 300 MB parent reports 312 MB), so
    a worker's peak would include whatever the benchmark itself held.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # elsewhere ru_maxrss (kilobytes on Linux, bytes on macOS), with the caveat above
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024


def load_system(system: str, weights: str, threads: int) -> tuple[Callable[[str], tuple[np.ndarray, float]], dict]:
    """Load `system`'s model in this process: a function audio path -> (note list (n, 4), audio seconds), and facts about the load.

    The function covers reading the file through to the note list; the facts are label, load_s
    and rss_loaded_mb (and params_m for the Onsets and Frames model).
    """
    info: dict = {}
    if system in ("onsets_frames", "onsets_frames+score"):
        import torch

        from w2m2w import SAMPLE_RATE
        from w2m2w.audio import load_audio
        from w2m2w.models.onsets_frames import OnsetsFrames
        from w2m2w.transcription import load_transcriber, transcribe

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        if Path(weights).is_file():
            model = load_transcriber(weights)
            info["label"] = f"w2m2w Onsets and Frames ({Path(weights).name})"
        else:
            model = OnsetsFrames().eval()
            info["label"] = "w2m2w Onsets and Frames (random init: no weights file)"
        info["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        info["load_s"] = time.perf_counter() - t0
        info["rss_loaded_mb"] = rss_mb()

        def run(audio: str) -> tuple[np.ndarray, float]:
            y = load_audio(audio)
            return transcribe(model, y), len(y) / SAMPLE_RATE

        if system == "onsets_frames+score":
            import music21  # noqa: F401  (loaded once per process, as the stage does: counted in load_s)

            from w2m2w.beats import load_beat_tracker, track_beats_of
            from w2m2w.musicxml import write_score
            from w2m2w.paths import DEFAULT_WEIGHTS
            from w2m2w.tempo_map import write_tempo_mapped_midi

            load_beat_tracker(str(DEFAULT_WEIGHTS["beat_tracker"]))
            info["label"] += " + tempo map and MusicXML (transcribe.score=true)"
            info["load_s"] = time.perf_counter() - t0
            plain = run

            def run(audio: str) -> tuple[np.ndarray, float]:
                notes, seconds = plain(audio)
                beats = track_beats_of(notes)
                with tempfile.TemporaryDirectory() as out:
                    if beats is not None:
                        write_tempo_mapped_midi(Path(out) / "t.mid", notes, beats)
                    write_score(Path(out) / "t.musicxml", notes, beats)
                return notes, seconds

    elif system == "basic_pitch":
        import logging

        logging.disable(logging.WARNING)  # it warns about every backend it does not find
        import soundfile as sf
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model, predict

        t0 = time.perf_counter()
        model = Model(ICASSP_2022_MODEL_PATH)
        if model.model_type == Model.MODEL_TYPES.ONNX:
            import onnxruntime as ort

            # the same thread budget as the torch model (ORT's default is every core)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            model.model = ort.InferenceSession(
                str(ICASSP_2022_MODEL_PATH), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        info["label"] = (
            f"Basic Pitch {_version('basic-pitch')} ({Path(str(ICASSP_2022_MODEL_PATH)).name}, default thresholds)"
        )
        info["load_s"] = time.perf_counter() - t0
        info["rss_loaded_mb"] = rss_mb()

        def run(audio: str) -> tuple[np.ndarray, float]:
            _, _, events = predict(audio, model)
            est = np.array(
                [[s, e, p, np.clip(round(127 * a), 1, 127)] for s, e, p, a, *_ in events], dtype=np.float64
            ).reshape(-1, 4)
            return est, sf.info(audio).duration

    else:
        raise SystemExit(f"unknown system {system!r}")
    return run, info


def worker(system: str, audio: str, ref_tsv: str, weights: str, threads: int) -> dict:
    """Transcribe `audio` with `system` in this process; the measurements as a dict."""
    from w2m2w.metrics import transcription_metrics
    from w2m2w.midi import load_tsv_notes

    ref = load_tsv_notes(ref_tsv)
    run, info = load_system(system, weights, threads)
    t0 = time.perf_counter()
    est, info["audio_s"] = run(audio)
    info["wall_s"] = time.perf_counter() - t0
    info["peak_rss_mb"] = peak_rss_mb()  # before scoring: mir_eval's matching has its own peak
    m = transcription_metrics(ref, est)
    info.update(
        system=system,
        threads=threads,
        note_f1=m["note_f1"],
        note_offset_f1=m["note_offset_f1"],
        frame_f1=m["frame_f1"],
        est_notes=len(est),
        ref_notes=len(ref),
    )
    return info


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def basic_pitch_status() -> str | None:
    """None when basic_pitch can run here, else why not."""
    code = "import logging; logging.disable(logging.WARNING); import basic_pitch.inference"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode == 0:
        return None
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"import failed (exit {res.returncode})"


def run_worker(system: str, audio: Path, tsv: Path, weights: str, threads: int, tmp: Path) -> dict:
    out = tmp / f"{system}.json"
    args = ["--worker", system, "--audio", str(audio), "--ref", str(tsv), "--weights", weights]
    return run_script_worker(Path(__file__), args, system, threads, out)


def run_script_worker(script: Path, args: list[str], system: str, threads: int, out: Path) -> dict:
    """Run `script` with `args` in its own process (so its peak RSS is its own) and read the JSON it
    writes to `out`; a failure comes back as {"system", "error": its last stderr line}."""
    cmd = [sys.executable, str(Path(script).resolve()), *args, "--threads", str(threads), "--result", str(out)]
    # the thread budget also binds OpenMP/MKL pools that libraries start on their own
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0 or not out.is_file():
        tail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
        return {"system": system, "error": tail}
    return json.loads(out.read_text())


def table(rows: list[dict]) -> str:
    head = "| system | audio s | wall s | x real time | peak RSS MB | RSS after model load MB | model load s | notes out | note F1 | note+offset F1 | frame F1 |"
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['system']} | failed: {r['error']} |" + " |" * (head.count(" | ") - 1))
            continue
        lines.append(
            f"| {r['label']} | {r['audio_s']:.1f} | {r['wall_s']:.1f} | {r['audio_s'] / r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['rss_loaded_mb']:.0f} | {r['load_s']:.1f} "
            f"| {r['est_notes']} | {r['note_f1']:.3f} | {r['note_offset_f1']:.3f} | {r['frame_f1']:.3f} |"
        )
    return "\n".join(lines)


def write_recording(path: Path, y, sample_rate: int, channels: int) -> None:
    """The 16 kHz render written as a user's recording would come: `sample_rate`, `channels`, 16-bit WAV."""
    import librosa
    import soundfile as sf

    from w2m2w import SAMPLE_RATE

    if sample_rate != SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=SAMPLE_RATE, target_sr=sample_rate, res_type="soxr_hq")
    y = np.clip(y, -1.0, 1.0)
    sf.write(str(path), np.repeat(y[:, None], channels, axis=1) if channels > 1 else y, sample_rate, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--weights",
        default="weights/onsets_frames.safetensors",
        help="transcriber weights; a random model of the default config when missing",
    )
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the test recording")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for each system")
    ap.add_argument(
        "--soundfont", default="fluidr3", help="FluidSynth soundfont (w2m2w.render.fluidsynth.SOUNDFONTS name or path)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-basic-pitch", action="store_true", help="skip the Basic Pitch comparison")
    ap.add_argument(
        "--score", action="store_true", help="also time transcription with the tempo map and MusicXML of the stage"
    )
    ap.add_argument("--keep", help="folder to keep the rendered WAV and its notes in")
    ap.add_argument(
        "--sample-rate",
        type=int,
        default=44100,
        help="the test WAV's rate: a user's recording, not the model's 16 kHz, so reading it is measured too",
    )
    ap.add_argument("--channels", type=int, default=2, choices=(1, 2), help="the test WAV's channels")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--audio", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        info = worker(args.worker, args.audio, args.ref, args.weights, args.threads)
        Path(args.result).write_text(json.dumps(info))
        return 0

    import soundfile as sf

    from w2m2w import SAMPLE_RATE
    from w2m2w.render.fluidsynth import render_notes

    with tempfile.TemporaryDirectory(prefix="w2m2w-bench-") as tmpdir:
        tmp = Path(args.keep) if args.keep else Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        notes = musical_notes(args.minutes * 60, args.seed)
        t0 = time.perf_counter()
        y = render_notes(notes, args.soundfont)
        render_s = time.perf_counter() - t0
        audio, tsv = tmp / "bench.wav", tmp / "bench.tsv"
        write_recording(audio, y, args.sample_rate, args.channels)
        np.savetxt(tsv, notes, fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")
        print(
            f"test recording: {len(y) / SAMPLE_RATE / 60:.1f} min, {len(notes)} notes, rendered with FluidSynth ({args.soundfont}) in {render_s:.1f} s, "
            f"written as {sf.info(str(audio)).samplerate} Hz {args.channels}-channel 16-bit WAV",
            file=sys.stderr,
        )

        rows = [run_worker("onsets_frames", audio, tsv, args.weights, args.threads, tmp)]
        if args.score:
            rows.append(run_worker("onsets_frames+score", audio, tsv, args.weights, args.threads, tmp))
        skipped = "--no-basic-pitch" if args.no_basic_pitch else basic_pitch_status()
        if skipped is None:
            rows.append(run_worker("basic_pitch", audio, tsv, args.weights, args.threads, tmp))

    print(table(rows))
    print()
    print(
        f"threads={args.threads}, {os.cpu_count()} CPUs, torch {_version('torch')}; {len(notes)} reference notes; note F1 with 50 ms onset tolerance (mir_eval)."
    )
    if not Path(args.weights).is_file():
        print(
            f"No weights at {args.weights}: the Onsets and Frames row is a randomly initialised model of the default config; its speed and memory are real, its F1 is not."
        )
    if skipped is not None:
        print(f"Basic Pitch skipped: {skipped}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
