"""w2m2w's transcriber beside its peers (Basic Pitch, Transkun) on the same audio: note, offset, velocity and frame F1, speed, memory.

    python benchmarks/transcribe_peers.py --input DIR [--reference DIR] [--include GLOB] [--max-seconds N]
        [--threads 2] [--systems w2m2w,basic-pitch,transkun] [--weights weights/onsets_frames.safetensors] [--json OUT] [--per-file]

Every audio file under DIR (recursively) with a same-stem reference, NAME.tsv
(onset, offset, note, velocity; one header line) or NAME.mid, beside it or in
--reference, is transcribed by each system and scored with the project's own
metrics (w2m2w.metrics.transcription_metrics: mir_eval, 50 ms onsets; MIDI
references with the sustain pedal applied). With --max-seconds each system
reads only the first N seconds (a cut copy of the file at its own rate and
channels), scored against the notes that start in them.

Each system runs in its own subprocess with the same thread budget: it loads
its model once (timed apart), then transcribes the files one after another;
wall time covers reading each file through to its note list, including any
resampling the system does. x real time is total audio seconds over total wall
seconds; peak RSS is that subprocess's (interpreter, libraries, model, audio,
inference), taken before scoring. Metrics are the mean over files, as
w2m2w.metrics.mean_metrics pools them.

The peers are optional extras, yardsticks only; a system that is not installed
is listed with the reason and skipped:
  basic-pitch: pip install --no-deps basic-pitch && pip install onnxruntime resampy
  transkun:    pip install --no-deps transkun && pip install moduleconf soxr
Transkun declares torchaudio, which this environment does not import; Transkun
uses it only for its mel filterbank, a buffer its checkpoint overwrites, so the
Transkun worker (and only that subprocess) puts benchmarks/_torchaudio_standin
first on sys.path, and checks that the checkpoint's buffer replaced the stand-in's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from benchmarks.transcribe_speed import _version, load_system, peak_rss_mb, rss_mb, run_script_worker  # noqa: E402

STANDIN = HERE / "_torchaudio_standin"  # holds a `torchaudio` package with melscale_fbanks only
SYSTEMS = ("w2m2w", "basic-pitch", "transkun")
INSTALL = {
    "basic-pitch": "pip install --no-deps basic-pitch && pip install onnxruntime resampy",
    "transkun": "pip install --no-deps transkun && pip install moduleconf soxr",
}
# metrics the table pools, keys of w2m2w.metrics.transcription_metrics
METRICS = (
    "note_precision",
    "note_recall",
    "note_f1",
    "note_velocity_f1",
    "note_offset_f1",
    "note_offset_velocity_f1",
    "frame_f1",
)


def _audio_extensions() -> tuple[str, ...]:
    from w2m2w.audio import AUDIO_EXTENSIONS

    return AUDIO_EXTENSIONS


def pair_files(
    input_dir: str | os.PathLike, reference_dir: str | os.PathLike | None = None, include: str | None = None
) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(audio, reference) pairs under `input_dir`, sorted by path, and the audio files that have no reference.

    Files are found and references matched as `evaluate` does (finding.find_files, finding.ReferenceIndex:
    the same relative path without extension under `reference_dir`, or beside the audio without one;
    then the file name alone where it names one reference). `include` is a glob matched against the
    file name or its path relative to `input_dir`. Hidden files are left out.
    """
    from w2m2w.finding import InputError, ReferenceIndex, find_files

    try:
        found = find_files(
            input_dir,
            _audio_extensions(),
            what="audio",
            lists=False,
            named_any_type=False,
            include=[include] if include else (),
        )
    except InputError:
        return [], []
    index = ReferenceIndex(reference_dir if reference_dir is not None else input_dir)
    pairs, unmatched = [], []
    for f in sorted(found, key=lambda f: str(f.path)):
        ref = index.find(f.rel[: -len(f.path.suffix)])
        if ref is None:
            unmatched.append(f.path)
        else:
            pairs.append((f.path, ref))
    return pairs, unmatched


def cut_audio(src: Path, dst: Path, max_seconds: float) -> float:
    """Write the first `max_seconds` of `src` to WAV `dst` at its own sample rate and channels; its length in seconds."""
    import soundfile as sf

    try:
        info = sf.info(str(src))
        y, sr = sf.read(str(src), frames=int(round(max_seconds * info.samplerate)), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):  # a format libsndfile does not read (some mp3, m4a): librosa's fallbacks
        import librosa

        y, sr = librosa.load(str(src), sr=None, mono=False, duration=max_seconds)
        y = np.atleast_2d(y).T
    sf.write(str(dst), y, sr, subtype="FLOAT")
    return len(y) / sr


def prepare_manifest(pairs: list[tuple[Path, Path]], max_seconds: float | None, tmp: Path) -> list[dict]:
    """What each worker reads: per file its name, audio (cut when `max_seconds`) and reference notes as TSV."""
    from w2m2w.data.transcription import crop_notes
    from w2m2w.midi import load_notes

    out = []
    for i, (audio, ref) in enumerate(pairs):
        notes = load_notes(ref)  # a MIDI reference with the sustain pedal applied, as w2m2w's evaluation reads it
        item = {"name": audio.stem, "audio": str(audio.resolve())}
        if max_seconds:
            cut = tmp / f"{i:04d}_{audio.stem}.wav"
            cut_audio(audio, cut, max_seconds)
            notes = crop_notes(notes, 0.0, max_seconds)
            item["audio"] = str(cut)
        tsv = tmp / f"{i:04d}_{audio.stem}.tsv"
        np.savetxt(tsv, notes.reshape(-1, 4), fmt="%.6f", delimiter="\t", header="onset,offset,note,velocity")
        item["ref"], item["ref_notes"] = str(tsv), len(notes)
        out.append(item)
    return out


# --- Transkun, in its worker only ---------------------------------------------------------------

MEL_KEY = "framewiseFeatureExtractor.freq2mels"


def load_transkun_model(threads: int) -> tuple[Any, dict]:
    """Transkun's shipped model (the checkpoint and conf inside its wheel) in eval mode, and facts about the load.

    The torchaudio stand-in goes first on sys.path (this process only); the checkpoint must carry its own
    mel filterbank, so the stand-in's is never used.
    """
    if str(STANDIN) not in sys.path:
        sys.path.insert(0, str(STANDIN))  # this worker process only: `import torchaudio` finds the stand-in
    from importlib.resources import files

    import moduleconf
    import torch

    torch.set_num_threads(threads)
    pretrained = files("transkun") / "pretrained"
    info: dict = {}
    t0 = time.perf_counter()
    conf = moduleconf.parseFromFile(str(pretrained / "2.0.conf"))  # as transkun.transcribe does
    model = conf["Model"].module.TransKun(conf=conf["Model"].config)
    standin_fbank = model.framewiseFeatureExtractor.freq2mels.clone()
    checkpoint = torch.load(str(pretrained / "2.0.pt"), map_location="cpu", weights_only=True)
    state = checkpoint.get("best_state_dict", checkpoint.get("state_dict"))
    if MEL_KEY not in state:
        raise SystemExit(
            f"Transkun's checkpoint has no {MEL_KEY}: the torchaudio stand-in's filterbank would be used; refusing"
        )
    res = model.load_state_dict(
        state, strict=False
    )  # strict=False as transkun.transcribe; a missing key is an error here
    if res.missing_keys:
        raise SystemExit(f"Transkun's checkpoint lacks {res.missing_keys[:3]}...")
    if not torch.equal(model.framewiseFeatureExtractor.freq2mels, state[MEL_KEY]):
        raise SystemExit("Transkun's mel filterbank is not the checkpoint's after loading")
    model.eval()
    info["load_s"] = time.perf_counter() - t0
    info["rss_loaded_mb"] = rss_mb()
    info["label"] = "Transkun"
    info["version"] = f"{_version('transkun')} (pretrained 2.0.pt)"
    info["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    info["standin_fbank_max_abs_diff"] = float((standin_fbank - state[MEL_KEY]).abs().max())
    info["sample_rate"] = int(model.fs)
    return model, info


def load_transkun(threads: int) -> tuple[Callable[[str], tuple[np.ndarray, float]], dict]:
    """Transkun's shipped model as load_system returns the others: a function audio path -> (keys, seconds)."""
    import soundfile as sf
    import soxr
    import torch

    model, info = load_transkun_model(threads)
    fs = info["sample_rate"]

    def run(audio: str) -> tuple[np.ndarray, float]:
        y, sr = sf.read(audio, dtype="float32", always_2d=True)  # (samples, channels), as transkun's own reader gives
        seconds = len(y) / sr
        if sr != fs:
            y = soxr.resample(y, sr, fs)  # as transkun.transcribe does
        with torch.inference_mode():
            notes = model.transcribe(torch.from_numpy(np.ascontiguousarray(y)), discardSecondHalf=False)
        # pitch <= 0 marks a pedal event (minus its controller number): keys only
        est = np.array([[n.start, n.end, n.pitch, n.velocity] for n in notes if n.pitch > 0], dtype=np.float64).reshape(
            -1, 4
        )
        return est, seconds

    return run, info


# --- the worker: one system, every file ---------------------------------------------------------


def worker(system: str, manifest: list[dict], weights: str, threads: int) -> dict:
    """Load `system` once, transcribe every file of `manifest`, then score; the measurements as a dict."""
    from w2m2w.metrics import mean_metrics, transcription_metrics
    from w2m2w.midi import load_tsv_notes

    if system == "w2m2w":
        run, info = load_system("onsets_frames", weights, threads)
        info["version"] = (
            f"{_version('w2m2w')} ({Path(weights).name if Path(weights).is_file() else 'random init: no weights file'})"
        )
        info["label"] = "w2m2w Onsets and Frames"
    elif system == "basic-pitch":
        run, info = load_system("basic_pitch", weights, threads)
        info["version"] = f"{_version('basic-pitch')} (ICASSP 2022, ONNX)"
        info["label"] = "Basic Pitch"
    elif system == "transkun":
        run, info = load_transkun(threads)
    else:
        raise SystemExit(f"unknown system {system!r}")
    ests, audio_s, wall_s = [], [], []
    for item in manifest:
        t0 = time.perf_counter()
        est, seconds = run(item["audio"])
        wall_s.append(time.perf_counter() - t0)
        audio_s.append(seconds)
        ests.append(est)
    info["peak_rss_mb"] = peak_rss_mb()  # before scoring: mir_eval's matching has its own peak
    files = []
    for item, est, a, w in zip(manifest, ests, audio_s, wall_s):
        m = transcription_metrics(load_tsv_notes(item["ref"]), est)
        files.append({"name": item["name"], "audio_s": a, "wall_s": w, "est_notes": len(est), **m})
    info.update(
        system=system,
        threads=threads,
        files=files,
        audio_s=float(sum(audio_s)),
        wall_s=float(sum(wall_s)),
        mean=mean_metrics([{k: f[k] for k in METRICS} for f in files]),
    )
    return info


def system_status(system: str) -> str | None:
    """None when `system` can run here, else a one-line reason."""
    if system == "w2m2w":
        return None
    module = {"basic-pitch": "basic_pitch", "transkun": "transkun"}[system]
    if importlib.util.find_spec(module) is None:
        return f"not installed ({INSTALL[system]})"
    if system == "transkun":
        code = f"import sys; sys.path.insert(0, {str(STANDIN)!r}); import moduleconf, soxr, soundfile, transkun.ModelTransformer"
    else:
        code = "import logging; logging.disable(logging.WARNING); import basic_pitch.inference"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode == 0:
        return None
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else f"import failed (exit {res.returncode})") + f" ({INSTALL[system]})"


def run_worker(system: str, manifest_path: Path, weights: str, threads: int, tmp: Path) -> dict:
    args = ["--worker", system, "--manifest", str(manifest_path), "--weights", weights]
    return run_script_worker(Path(__file__), args, system, threads, tmp / f"{system}.json")


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def table(rows: list[dict]) -> str:
    """One markdown row per system: speed, memory and mean-over-files metrics (a failed system says why)."""
    head = (
        "| system | version | files | audio s | x real time | model load s | peak RSS MB | note P | note R | note F1 | note+velocity F1 "
        "| note+offset F1 | note+offset+velocity F1 | frame F1 |"
    )
    n_cols = head.count("|") - 1
    lines = [head, "|" + "---|" * n_cols]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['system']} | failed: {r['error']} |" + " |" * (n_cols - 2))
            continue
        m = r["mean"]
        speed = r["audio_s"] / r["wall_s"] if r["wall_s"] > 0 else float("nan")
        lines.append(
            f"| {r['label']} | {r['version']} | {len(r['files'])} | {r['audio_s']:.0f} | {_f(speed, '.2f')} | {r['load_s']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {_f(m.get('note_precision'))} | {_f(m.get('note_recall'))} | {_f(m.get('note_f1'))} | {_f(m.get('note_velocity_f1'))} "
            f"| {_f(m.get('note_offset_f1'))} "
            f"| {_f(m.get('note_offset_velocity_f1'))} | {_f(m.get('frame_f1'))} |"
        )
    return "\n".join(lines)


def per_file_table(rows: list[dict]) -> str:
    """Note F1 / frame F1 of each file (rows) by system (columns)."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return ""
    head = "| file | " + " | ".join(f"{r['label']} note / frame F1" for r in ok) + " |"
    lines = [head, "|" + "---|" * (len(ok) + 1)]
    for i, f in enumerate(ok[0]["files"]):
        cells = [f"{r['files'][i]['note_f1']:.3f} / {r['files'][i]['frame_f1']:.3f}" for r in ok]
        lines.append(f"| {f['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_systems(text: str) -> list[str]:
    """'w2m2w,transkun' -> ['w2m2w', 'transkun'], in the order given; an unknown name is an error."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SYSTEMS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--input", help="folder of audio files, each with a same-stem .tsv or .mid reference")
    ap.add_argument("--reference", help="folder holding the references, when they are not beside the audio")
    ap.add_argument("--include", help="only audio whose name (or path under --input) matches this glob")
    ap.add_argument("--max-seconds", type=float, help="transcribe and score only the first N seconds of each file")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for each system")
    ap.add_argument(
        "--systems", type=parse_systems, default=list(SYSTEMS), help=f"comma-separated, of {','.join(SYSTEMS)}"
    )
    ap.add_argument(
        "--weights",
        default="weights/onsets_frames.safetensors",
        help="w2m2w transcriber weights; a random model of the default config when missing",
    )
    ap.add_argument("--json", help="also write every measurement, per file too, to this JSON file")
    ap.add_argument("--per-file", action="store_true", help="also print note and frame F1 per file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        info = worker(args.worker, json.loads(Path(args.manifest).read_text()), args.weights, args.threads)
        Path(args.result).write_text(json.dumps(info))
        return 0
    if not args.input:
        ap.error("--input is required")

    pairs, unmatched = pair_files(args.input, args.reference, args.include)
    if unmatched:
        print(f"{len(unmatched)} audio file(s) without a reference left out, e.g. {unmatched[0]}", file=sys.stderr)
    if not pairs:
        print(
            f"no audio with a same-stem .tsv/.mid reference under {args.input}"
            + (f" matching {args.include!r}" if args.include else ""),
            file=sys.stderr,
        )
        return 2
    weights = str(Path(args.weights).resolve())
    skipped = {s: why for s in args.systems if (why := system_status(s)) is not None}
    rows = []
    with tempfile.TemporaryDirectory(prefix="w2m2w-peers-") as tmpdir:
        tmp = Path(tmpdir)
        manifest = prepare_manifest(pairs, args.max_seconds, tmp)
        manifest_path = tmp / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        n_ref = sum(m["ref_notes"] for m in manifest)
        print(
            f"{len(manifest)} file(s), {n_ref} reference notes; systems: {', '.join(s for s in args.systems if s not in skipped) or 'none'}",
            file=sys.stderr,
        )
        for system in args.systems:
            if system in skipped:
                continue
            t0 = time.perf_counter()
            rows.append(run_worker(system, manifest_path, weights, args.threads, tmp))
            print(
                f"  {system}: {time.perf_counter() - t0:.0f} s"
                + (f" (failed: {rows[-1]['error']})" if "error" in rows[-1] else ""),
                file=sys.stderr,
            )

    print(table(rows))
    print()
    cut = f"first {args.max_seconds:g} s of each" if args.max_seconds else "whole files"
    print(
        f"{len(manifest)} file(s) from {args.input}{f' ({args.include})' if args.include else ''}, {cut}; {n_ref} reference notes. "
        f"Metrics are the mean over files (w2m2w.metrics.transcription_metrics: mir_eval, 50 ms onset tolerance, offsets within 20% or 50 ms, "
        f"velocity after mir_eval's rescaling; frames at 100 Hz). threads={args.threads}, {os.cpu_count()} CPUs, torch {_version('torch')}. "
        "Wall time covers reading each file to its notes, resampling included; model load is apart."
    )
    if any(r.get("system") == "basic-pitch" and "error" not in r for r in rows):
        print(
            "Basic Pitch predicts note amplitude, not velocity: its velocity column scores 127 x amplitude (what its own MIDI writer uses)."
        )
    for r in rows:
        if r.get("system") == "transkun" and "error" not in r:
            print(
                f"Transkun ran at {r['sample_rate']} Hz (audio resampled with soxr inside the timed section), its mel filterbank the checkpoint's "
                f"(the torchaudio stand-in's differed from it by at most {r['standin_fbank_max_abs_diff']:.1e} before loading)."
            )
    if "w2m2w" in args.systems and not Path(weights).is_file():
        print(
            f"No weights at {args.weights}: the w2m2w row is a randomly initialised model; its speed and memory are real, its F1 is not."
        )
    for s, why in skipped.items():
        print(f"{s} skipped: {why}")
    if args.per_file:
        print()
        print(per_file_table(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items() if k not in ("worker", "manifest", "result")},
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
