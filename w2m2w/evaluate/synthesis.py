"""What a listener hears, measured: the functions behind `evaluate task=synthesis`.

Every note file (MIDI, or MAPS-style .tsv) is rendered by each system being
compared (the synthesizer under test; FluidSynth through a soundfont; the
source-filter model's source alone), all to the same length: the last offset
plus 2.5 s, so there is silence to measure after the music. For each render:

- speed (samples per second of rendering);
- round-trip note and frame F1: the project's transcriber, and Basic Pitch
  when it is installed (an optional extra), transcribe the render and are
  scored against the notes it was rendered from (mir_eval);
- the log-mel distance to the target piano's own recording of the same notes
  (`reference`), when one is given;
- the level where no note sounds (dBFS): samples more than 1 s after every
  note's offset and before every onset.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2m2w.constants import SAMPLE_RATE
from w2m2w.features import MelConfig, log_mel

NOTE_SUFFIXES = (".mid", ".midi", ".tsv")
TAIL_SECONDS = 2.5  # every system renders this long after the last offset
SILENCE_AFTER = 1.0  # a note may ring this long after its offset before its samples count as silence
SILENCE_FLOOR_DB = -120.0


def log_mel_distance(a: np.ndarray, b: np.ndarray, cfg: MelConfig = MelConfig()) -> float:
    """Mean absolute difference of natural-log mel spectrograms of two 16 kHz signals (a, b: (n,)).

    Both are scaled to unit RMS first, so the figure measures spectral content
    and timing, not overall level; the longer signal is cut to the shorter.
    229 mel bins, hop 512, n_fft 2048, as the transcriber's front end.
    """
    n = min(len(a), len(b))
    if n == 0:
        raise ValueError("log_mel_distance of an empty signal")
    x = np.stack([a[:n], b[:n]]).astype(np.float32)
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1, keepdims=True))
    x = x / np.maximum(rms, 1e-8).astype(np.float32)
    mel = log_mel(torch.from_numpy(x), cfg)  # log(max(mel, 1e-5))
    return float((mel[0] - mel[1]).abs().mean())


def silence_mask(notes: np.ndarray, n_samples: int, sr: int = SAMPLE_RATE, after: float = SILENCE_AFTER) -> np.ndarray:
    """(n_samples,) bool: True where no note sounds, i.e. outside every [onset, offset + after) of notes (n, 4)."""
    quiet = np.ones(n_samples, bool)
    for on, off in np.asarray(notes, dtype=np.float64).reshape(-1, 4)[:, :2]:
        quiet[max(int(on * sr), 0) : max(int(np.ceil((off + after) * sr)), 0)] = False
    return quiet


def silence_dbfs(audio: np.ndarray, notes: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """RMS level (dBFS, full scale = 1.0) of audio where no note sounds; None if under 0.1 s is silent."""
    quiet = silence_mask(notes, len(audio), sr)
    if quiet.sum() < 0.1 * sr:
        return None
    rms = float(np.sqrt(np.mean(audio[quiet].astype(np.float64) ** 2)))
    return max(SILENCE_FLOOR_DB, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_FLOOR_DB


class BasicPitch:
    """Spotify's Basic Pitch (optional: pip install --no-deps basic-pitch, plus onnxruntime) as a second, outside transcriber."""

    def __init__(self, threads: int = 0):
        import logging

        logging.getLogger("root").setLevel(logging.ERROR)  # it warns about every backend it does not find
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model

        self.model = Model(ICASSP_2022_MODEL_PATH)
        if threads and self.model.model_type == Model.MODEL_TYPES.ONNX:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            self.model.model = ort.InferenceSession(
                str(ICASSP_2022_MODEL_PATH), sess_options=opts, providers=["CPUExecutionProvider"]
            )

    @staticmethod
    def available() -> str | None:
        """None when it can run here, else why not."""
        try:
            import basic_pitch.inference  # noqa: F401
        except Exception as exc:  # missing package, or one of its backends broken
            return f"basic-pitch not usable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return None

    def transcribe(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        from basic_pitch.inference import predict

        from w2m2w.audio import save_wav

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "render.wav"
            save_wav(path, audio, sr)
            _, _, events = predict(str(path), self.model)
        return np.array(
            [[s, e, p, np.clip(round(127 * a), 1, 127)] for s, e, p, a, *_ in events], dtype=np.float64
        ).reshape(-1, 4)


def round_trip(
    transcribe: Callable[[np.ndarray], np.ndarray], audio: np.ndarray, notes: np.ndarray
) -> dict[str, float]:
    """Transcribe audio and score it against the notes it was rendered from."""
    from w2m2w.metrics import transcription_metrics

    m = transcription_metrics(notes, transcribe(audio))
    return {k: m[k] for k in ("note_f1", "frame_f1")}


def system_row(
    renderer, notes: np.ndarray, n_samples: int, transcribers: dict[str, Callable], reference: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray]:
    """All figures of one renderer on one note list; returns (figures, audio)."""
    t0 = time.perf_counter()
    y = renderer.render(notes, n_samples)
    dt = time.perf_counter() - t0
    row: dict[str, Any] = {
        "samples_per_second": round(len(y) / dt, 1) if dt > 0 else None,
        "silence_dbfs": silence_dbfs(y, notes),
        **level_figures(y),
    }
    if row["silence_dbfs"] is not None:
        row["silence_dbfs"] = round(row["silence_dbfs"], 1)
    for tname, fn in transcribers.items():
        row.update({f"{tname}_{k}": round(v, 4) for k, v in round_trip(fn, y, notes).items()})
    if reference is not None:
        row["distance_to_target"] = round(log_mel_distance(y, reference), 4)
    return row, y


def level_figures(y: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """Integrated loudness (LUFS, BS.1770) and sample peak (dBFS) of a render; None where silent."""
    from w2m2w.loudness import LoudnessMeter

    meter = LoudnessMeter(sr)
    meter.push(y)
    lufs = meter.integrated()
    return {
        "lufs": round(lufs, 2) if np.isfinite(lufs) else None,
        "peak_dbfs": round(20 * np.log10(meter.peak), 2) if meter.peak > 0 else None,
    }


def side_by_side(summary: dict[str, Any], systems: Sequence[str], transcribers: Sequence[str]) -> str:
    """The summary's figures as a markdown table, one row per system (what the model card shows)."""
    cols = [(f"{t}_note_f1", f"round trip {t} note F1") for t in transcribers] + [
        ("distance_to_target", "distance to target"),
        ("silence_dbfs", "silence dBFS"),
        ("lufs", "level LUFS"),
        ("peak_dbfs", "peak dBFS"),
        ("x_real_time", "x real time"),
    ]
    cols = [(k, h) for k, h in cols if any(summary.get(f"{s}_{k}") is not None for s in systems)]
    lines = ["| system | " + " | ".join(h for _, h in cols) + " |", "|---|" + "--:|" * len(cols)]
    for s in systems:
        vals = [summary.get(f"{s}_{k}") for k, _ in cols]
        lines.append(f"| {s} | " + " | ".join("-" if v is None else f"{v:g}" for v in vals) + " |")
    return "\n".join(lines)


def note_inputs(
    path: str | os.PathLike, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[tuple[str, Path]]:
    """(name relative to the input root, file) for a note file (.mid/.midi/.tsv), every such file under a folder
    (hidden names skipped), or the files a .txt/.lst/.list names (e.g. a training run's validation_notes.txt);
    finding.find_files finds them.

    include/exclude: globs matched against the relative path or the bare file name.
    """
    from w2m2w.finding import InputError, find_files

    try:
        found = find_files(path, NOTE_SUFFIXES, what="MIDI or .tsv note", include=include, exclude=exclude)
    except InputError as exc:  # a ValueError, as run_synthesis_evaluation's callers expect
        raise InputError(f"input {exc}") from None
    return [(f.rel, f.path) for f in found]


midi_inputs = note_inputs  # the name scripts use


def reference_audio(reference: str | os.PathLike | None) -> dict[str, Path]:
    """Target recordings by file stem: every audio file under a folder, or the files a .txt lists."""
    from w2m2w.audio import AUDIO_EXTENSIONS

    if not reference:
        return {}
    ref = Path(reference)
    if ref.is_file() and ref.suffix.lower() == ".txt":
        files = [
            Path(ln.strip()) for ln in ref.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")
        ]
    elif ref.is_dir():
        files = [p for p in sorted(ref.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS]
    else:
        raise ValueError(f"reference {ref}: no such folder or list of recordings")
    return {f.stem: f for f in files}


def evaluate_synthesis(
    files: list[tuple[str, Path]],
    systems: dict[str, Any],
    transcribers: dict[str, Callable],
    references: dict[str, Path],
    max_seconds: float | None = 30.0,
    audio_out: str | os.PathLike | None = None,
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
    warn: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Render and score every note file with every system; returns the summary (mean figures per system).

    systems: label -> Renderer. max_seconds crops each piece (and its reference) from the start.
    Unreadable or empty note files are skipped with a warning naming them.
    """
    from w2m2w.audio import load_audio, save_wav
    from w2m2w.data.transcription import crop_notes
    from w2m2w.midi import MidiError, load_notes
    from w2m2w.render.wavenet import clean_notes

    rows, failed = [], []
    for name, path in files:
        try:
            notes, _ = clean_notes(load_notes(path))
        except (MidiError, ValueError, OSError) as exc:
            failed.append({"file": name, "error": str(exc).splitlines()[0]})
            warn(f"skipped {name}: {str(exc).splitlines()[0]}")
            continue
        if max_seconds:
            notes = crop_notes(notes, 0.0, max_seconds)
        if len(notes) == 0:
            failed.append({"file": name, "error": f"{path}: no notes"})
            warn(f"skipped {name}: {path}: no notes in the piano's range")
            continue
        n = int(np.ceil((notes[:, 1].max() + TAIL_SECONDS) * SAMPLE_RATE))
        ref = None
        if Path(path).stem in references:
            # the target goes on playing past a crop: compare only the cropped span
            ref = load_audio(references[Path(path).stem], max_seconds=None)[
                : min(n, int(max_seconds * SAMPLE_RATE)) if max_seconds else n
            ]
        elif references:
            warn(f"{name}: no target recording named {Path(path).stem}.* in the reference; no distance for it")
        row: dict[str, Any] = {"file": name, "notes": int(len(notes)), "audio_s": round(n / SAMPLE_RATE, 3)}
        for label, renderer in systems.items():
            figures, y = system_row(renderer, notes, n, transcribers, ref)
            row.update({f"{label}_{k}": v for k, v in figures.items()})
            if audio_out is not None:
                out = Path(audio_out)
                out.mkdir(parents=True, exist_ok=True)
                save_wav(out / f"{name.replace('/', '__').rsplit('.', 1)[0]}.{label}.wav", y)
        if ref is not None and audio_out is not None:
            save_wav(Path(audio_out) / f"{name.replace('/', '__').rsplit('.', 1)[0]}.target.wav", ref)
        rows.append(row)
        emit(row)
    summary: dict[str, Any] = {
        "task": "synthesis",
        "files": len(rows),
        "audio_s": round(sum(r["audio_s"] for r in rows), 3),
    }
    keys = [k for k in (rows[0] if rows else {}) if k not in ("file", "notes", "audio_s")]
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None]
        summary[k] = round(float(np.mean(vals)), 4) if vals else None
    for label in systems:  # speed over all files, not the mean of per-file speeds
        sps = [
            (r["audio_s"], r["audio_s"] * SAMPLE_RATE / r[f"{label}_samples_per_second"])
            for r in rows
            if r.get(f"{label}_samples_per_second")
        ]
        if sps:
            total, secs = sum(a for a, _ in sps), sum(t for _, t in sps)
            summary[f"{label}_samples_per_second"] = round(total * SAMPLE_RATE / secs, 1)
            summary[f"{label}_x_real_time"] = round(total / secs, 2)
    summary["failed"] = failed
    return summary


def run_synthesis_evaluation(
    input_path: str | os.PathLike,
    synthesizer: str = "source_filter",
    weights: str | os.PathLike | None = None,
    transcriber: str | os.PathLike | None = None,
    soundfont: str | Sequence[str] | None = "fluidr3",
    source_alone: bool = True,
    reference: str | os.PathLike | None = None,
    basic_pitch: str = "auto",
    max_seconds: float | None = 30.0,
    device: str = "cpu",
    threads: int = 0,
    audio_out: str | os.PathLike | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    emit: Callable[[dict[str, Any]], None] = lambda row: None,
    warn: Callable[[str], None] = lambda msg: None,
    settings: dict[str, Any] | None = None,
    loudness_lufs: float | None = None,
    also: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`evaluate task=synthesis` without Hydra.

    synthesizer: the renderer under test (renderers.RENDERERS), with `weights` (None: shipped) and
    extra `settings`; also: label -> other weights of the same synthesizer, beside it (e.g. a model of another
    piano); soundfont: FluidSynth through it (or each of a list: systems fluidsynth_NAME) beside it (None: not);
    loudness_lufs: every system's output brought to this loudness (None: as rendered); source_alone: the
    source-filter model's source without the filter beside it; reference: the target piano's
    recordings (folder or .txt list, matched by file stem) for the spectral distance;
    transcriber: Onsets and Frames weights for the round trip (None: skip); basic_pitch: auto
    (when installed) | true | false. Raises ValueError for an input with no note files,
    WeightsError for unusable weights, each one line naming the file.
    """
    from w2m2w.files import sha256_file
    from w2m2w.render.registry import load_renderer, weights_file

    files = note_inputs(input_path, include, exclude)
    refs = reference_audio(reference)
    level = {"loudness_lufs": loudness_lufs}
    base = {"device": device, "threads": threads, **level}
    opts = {**base, **(settings or {}), **({"weights": str(weights)} if weights else {})}
    systems: dict[str, Any] = {synthesizer: load_renderer(synthesizer, opts)}
    for label, other in (also or {}).items():
        systems[label] = load_renderer(synthesizer, {**base, "weights": str(other)})
    if synthesizer == "source_filter" and source_alone:
        systems["source"] = load_renderer("source_filter", {**opts, "source_only": True, "eq_db": None})
    fonts = [soundfont] if isinstance(soundfont, str) else list(soundfont or [])
    if synthesizer != "fluidsynth":
        for font in fonts:
            systems["fluidsynth" if len(fonts) == 1 else f"fluidsynth_{font}"] = load_renderer(
                "fluidsynth", {"soundfont": font, **level}
            )
    transcribers: dict[str, Callable] = {}
    if transcriber is not None:
        from w2m2w.transcription import load_transcriber, transcribe

        model = load_transcriber(transcriber, device)
        transcribers["w2m2w"] = lambda audio: transcribe(model, audio)
    bp_status = None if str(basic_pitch).lower() in ("true", "auto") else "basic_pitch=false"
    if bp_status is None:
        bp_status = BasicPitch.available()
        if bp_status is None:
            transcribers["basic_pitch"] = BasicPitch(threads).transcribe
        elif str(basic_pitch).lower() == "true":
            raise ValueError(bp_status)
        else:
            warn(f"{bp_status}; round trip with the project's transcriber only")
    summary = evaluate_synthesis(files, systems, transcribers, refs, max_seconds, audio_out, emit, warn)
    wfile = weights_file(synthesizer, opts)
    return {
        "task": "synthesis",
        "input": str(input_path),
        **summary,
        "synthesizer": synthesizer,
        "systems": list(systems),
        "weights": str(wfile),
        "weights_sha256": sha256_file(wfile) if wfile.is_file() else None,
        "transcribers": list(transcribers),
        "basic_pitch": bp_status or "used",
        "reference": str(reference) if reference else None,
        "soundfont": soundfont if soundfont is None or isinstance(soundfont, str) else fonts,
        "loudness_lufs": loudness_lufs,
        "max_seconds": max_seconds,
    }
