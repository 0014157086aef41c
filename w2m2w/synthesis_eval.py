"""How good and how fast the WaveNet renders MIDI: pure functions behind `evaluate task=synthesis`.

For each MIDI file: render it with the WaveNet (timed: samples per second),
render it with FluidSynth (the reference, the instrument the WaveNet learned),
transcribe both with the project's transcriber and score them against the MIDI
(round-trip note F1), and measure a log-mel spectral distance between the two
renders.
"""
from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import SAMPLE_RATE
from .features import MelConfig, log_mel


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


def round_trip_metrics(transcriber, audio: np.ndarray, notes: np.ndarray) -> dict[str, float]:
    """Transcribe `audio` with the project's transcriber and score it against the notes it was rendered from."""
    from .metrics import transcription_metrics
    from .transcription import transcribe

    est = transcribe(transcriber, audio)
    m = transcription_metrics(notes, est)
    return {k: m[k] for k in ("note_precision", "note_recall", "note_f1", "note_offset_f1", "frame_f1")}


def synthesis_row(name: str, notes: np.ndarray, synthesizer, transcriber=None, soundfont: str | None = "fluidr3", audio_out: str | os.PathLike | None = None) -> dict[str, Any]:
    """All figures for one note list: speed, round-trip F1 of the WaveNet (and FluidSynth) audio, log-mel distance."""
    from .audio import save_wav

    t0 = time.perf_counter()
    y = synthesizer.render(notes)
    dt = time.perf_counter() - t0
    row: dict[str, Any] = {"file": name, "notes": int(len(notes)), "audio_s": round(len(y) / SAMPLE_RATE, 3), "render_s": round(dt, 3),
                           "samples_per_second": round(len(y) / dt, 1) if dt > 0 else None}
    ref = None
    if soundfont:
        from .data.render import render_notes

        ref = render_notes(notes, soundfont)
        row["log_mel_distance"] = round(log_mel_distance(y, ref), 4)
    if transcriber is not None:
        row.update({f"wavenet_{k}": round(v, 4) for k, v in round_trip_metrics(transcriber, y, notes).items()})
        if ref is not None:
            row.update({f"fluidsynth_{k}": round(v, 4) for k, v in round_trip_metrics(transcriber, ref, notes).items()})
    if audio_out is not None:
        out = Path(audio_out)
        out.mkdir(parents=True, exist_ok=True)
        stem = name.replace("/", "__").rsplit(".", 1)[0]
        save_wav(out / f"{stem}.wavenet.wav", y)
        if ref is not None:
            save_wav(out / f"{stem}.fluidsynth.wav", ref)
    return row


def evaluate_synthesis(midi_files: list[tuple[str, Path]], synthesizer, transcriber=None, soundfont: str | None = "fluidr3",
                       max_seconds: float | None = 30.0, audio_out: str | os.PathLike | None = None,
                       emit: Callable[[dict[str, Any]], None] = lambda row: None, warn: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Render and score every (name, path) MIDI file; returns the summary (mean figures, overall speed).

    max_seconds crops each piece (from its start) to keep evaluation short.
    Unreadable or empty MIDI files are skipped with a warning naming them.
    """
    from .data.transcription import crop_notes
    from .midi import MidiError, load_midi_notes
    from .synthesis import clean_notes

    rows, failed = [], []
    for name, path in midi_files:
        try:
            notes, _ = clean_notes(load_midi_notes(path))
        except MidiError as exc:
            failed.append({"file": name, "error": str(exc)})
            warn(f"skipped {name}: {exc}")
            continue
        if max_seconds:
            notes = crop_notes(notes, 0.0, max_seconds)
        if len(notes) == 0:
            failed.append({"file": name, "error": f"{path}: no notes"})
            warn(f"skipped {name}: {path}: no notes in the piano's range")
            continue
        row = synthesis_row(name, notes, synthesizer, transcriber, soundfont, audio_out)
        rows.append(row)
        emit(row)
    total_samples = sum(r["audio_s"] for r in rows) * SAMPLE_RATE
    total_time = sum(r["render_s"] for r in rows)
    summary: dict[str, Any] = {"task": "synthesis", "files": len(rows), "audio_s": round(total_samples / SAMPLE_RATE, 3),
                               "samples_per_second": round(total_samples / total_time, 1) if total_time else None,
                               "x_real_time": round(total_samples / total_time / SAMPLE_RATE, 3) if total_time else None}
    keys = [k for k in (rows[0] if rows else {}) if k.startswith(("wavenet_", "fluidsynth_")) or k == "log_mel_distance"]
    summary.update({k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys})
    summary["backend"] = synthesizer.backend
    summary["failed"] = failed
    return summary


def midi_inputs(path: str | os.PathLike, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """(name relative to `path`, file) for a MIDI file, every .mid/.midi under a folder (hidden names skipped),
    or the files listed in a .txt file (e.g. a WaveNet training run's validation_midi.txt).

    include/exclude: globs matched against the relative path or the bare file name.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".txt":
        listed = [Path(ln.strip()) for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
        # relative entries: next to the list if they are there, else as written (relative to where it was made)
        files = [q if q.is_absolute() or not (path.parent / q).exists() else path.parent / q for q in listed]
        if not files:
            raise ValueError(f"input {path}: the list names no MIDI files")
        root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
        return [(os.path.relpath(f.resolve(), root), f) for f in files]
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise ValueError(f"input {path}: no such file or folder")
    files = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in (".mid", ".midi")
             and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    def hit(rel: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(rel.rsplit("/", 1)[-1], g) for g in patterns)

    out = [(p.relative_to(path).as_posix(), p) for p in files]
    out = [(r, p) for r, p in out if (not include or hit(r, include)) and not hit(r, exclude)]
    if not out:
        raise ValueError(f"input {path}: no MIDI files found" + (" matching the include/exclude globs" if include or exclude else ""))
    return out


def run_synthesis_evaluation(input_path: str | os.PathLike, wavenet: str | os.PathLike, transcriber: str | os.PathLike | None = None,
                             soundfont: str | None = "fluidr3", max_seconds: float | None = 30.0, device: str = "cpu", threads: int = 0,
                             audio_out: str | os.PathLike | None = None, include: Sequence[str] = (), exclude: Sequence[str] = (),
                             emit: Callable[[dict[str, Any]], None] = lambda row: None, warn: Callable[[str], None] = lambda msg: None,
                             temperature: float = 1.0) -> dict[str, Any]:
    """`evaluate task=synthesis` without Hydra: load the models, render and score every MIDI file under input_path.

    wavenet: WaveNet weights; transcriber: Onsets and Frames weights for the
    round-trip F1 (None skips it); soundfont: the FluidSynth reference (None
    skips it and the log-mel distance). Raises ValueError for an input with
    no MIDI, WeightsError for unusable weights, each one line naming the file.
    """
    from .checkpoint import sha256_file
    from .synthesis import SynthesisConfig, Synthesizer, load_wavenet

    files = midi_inputs(input_path, include, exclude)
    synth = Synthesizer(load_wavenet(wavenet, device), SynthesisConfig(device=device, threads=threads, temperature=temperature))
    model = None
    if transcriber is not None:
        from .transcription import load_transcriber

        model = load_transcriber(transcriber, device)
    summary = evaluate_synthesis(files, synth, model, soundfont, max_seconds, audio_out, emit, warn)
    summary = {"task": "synthesis", "input": str(input_path), **summary, "wavenet": str(wavenet), "wavenet_sha256": sha256_file(wavenet),
               "transcriber": str(transcriber) if transcriber else None, "soundfont": soundfont, "max_seconds": max_seconds, "temperature": temperature}
    return summary
