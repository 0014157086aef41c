"""Stage 3: MIDI -> 16 kHz mono audio, with the WaveNet (default) or FluidSynth (`synthesize=fluidsynth`).

Audio is written to the WAV file as it is generated, so memory stays bounded
for any length; a progress bar counts seconds rendered.
"""
from __future__ import annotations

import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from w2m2w import SAMPLE_RATE
from w2m2w.midi import MidiError, load_midi_notes
from w2m2w.pipeline import StageError, StageJob
from w2m2w.synthesis import SynthesisConfig, Synthesizer, clean_notes, load_wavenet

NAME = "synthesize"
REPO = Path(__file__).resolve().parent.parent
IMPLEMENTATIONS = ("wavenet", "fluidsynth")
SILENT_SECONDS = 0.5
log = logging.getLogger("w2m2w")

# what changes the WaveNet's audio; device, threads and chunking do not (the
# numba streams are independent of how they are split over threads)
_WAVENET_SETTINGS = ("folds", "min_segment_seconds", "max_segment_seconds", "warmup_seconds", "fade_seconds", "crossfade", "tail_seconds", "temperature", "seed", "backend")


def _impl(cfg: Any) -> str:
    name = cfg.get("name", "wavenet")
    if name not in IMPLEMENTATIONS:
        raise StageError(f"synthesize.name={name!r}: choose one of {', '.join(IMPLEMENTATIONS)}")
    return name


def weights_file(cfg: Any) -> Path:
    """The WaveNet weights (cfg.weights or the shipped weights/wavenet.safetensors), or FluidSynth's soundfont.

    The soundfont plays the part of weights for FluidSynth: its hash goes into
    the sidecar, so a changed or reinstalled soundfont makes outputs stale.
    """
    if _impl(cfg) == "fluidsynth":
        from w2m2w.data.render import SOUNDFONTS, RenderError, soundfont_path

        try:
            return Path(soundfont_path(cfg.soundfont))
        except RenderError:
            return Path(SOUNDFONTS.get(cfg.soundfont, cfg.soundfont))  # run() and prepare() report it
    return Path(cfg.weights) if cfg.get("weights") else REPO / "weights" / "wavenet.safetensors"


def settings(cfg: Any) -> dict[str, Any]:
    """Everything that changes the audio."""
    if _impl(cfg) == "fluidsynth":
        return {"name": "fluidsynth", "soundfont": cfg.soundfont, "program": int(cfg.program)}
    out = {"name": "wavenet", **{k: cfg[k] for k in _WAVENET_SETTINGS}}
    if out["backend"] == "auto":  # numba and torch may draw different samples from nearly equal logits
        out["backend"] = "torch" if str(cfg.get("device", "cpu")).startswith("cuda") else "numba"
    return out


def _synthesis_config(cfg: Any) -> SynthesisConfig:
    keys = set(SynthesisConfig.__dataclass_fields__)
    return SynthesisConfig(**{k: cfg[k] for k in keys if k in cfg})


@lru_cache(maxsize=2)
def _synthesizer(path: str, device: str, frozen_cfg: tuple) -> Synthesizer:
    # one model load and one weights packing per process, whatever the number of pieces
    return Synthesizer(load_wavenet(path, device), SynthesisConfig(**dict(frozen_cfg)))


def _get_synthesizer(cfg: Any) -> Synthesizer:
    sc = _synthesis_config(cfg)
    return _synthesizer(str(weights_file(cfg)), sc.device, tuple(sorted(sc.__dict__.items())))


def prepare(cfg: Any) -> None:
    """Load the model (or find the soundfont) once before the batch; errors name the file."""
    if _impl(cfg) == "fluidsynth":
        from w2m2w.data.render import soundfont_path

        soundfont_path(cfg.soundfont)
    else:
        _get_synthesizer(cfg)


def read_notes(path: Path) -> tuple[np.ndarray, list[str]]:
    """Notes of a MIDI file inside the piano's range, and warnings for what was dropped or missing."""
    try:
        notes = load_midi_notes(path)
    except MidiError as exc:
        raise StageError(str(exc)) from None
    notes, dropped = clean_notes(notes)
    warnings = []
    if dropped:
        warnings.append(f"{path}: {dropped} note(s) outside the piano's range (MIDI 21..108) dropped")
    if len(notes) == 0:
        warnings.append(f"{path}: no notes to play; writing {SILENT_SECONDS} s of silence")
    return notes, warnings


def _progress_bar(piece: str, seconds: float):
    from tqdm import tqdm

    return tqdm(total=round(seconds, 2), desc=f"synthesize {piece}", unit="s", mininterval=1.0, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")


def run(cfg: Any, job: StageJob, run_dir: Path) -> dict[str, Any]:
    """Render job.input (MIDI) into the WAV file job.output; returns note and speed stats."""
    import soundfile as sf

    impl = _impl(cfg)
    notes, warnings = read_notes(job.input)
    for w in warnings:
        log.warning("%s", w)
    stats: dict[str, Any] = {"notes": int(len(notes)), "synthesizer": impl}
    if warnings:
        stats["warnings"] = warnings
    t0 = time.perf_counter()
    with sf.SoundFile(str(job.output), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="WAV") as out:
        if len(notes) == 0:
            out.write(np.zeros(int(SILENT_SECONDS * SAMPLE_RATE), np.float32))
            stats["audio_seconds"] = SILENT_SECONDS
            return stats
        if impl == "fluidsynth":
            from w2m2w.data.render import RenderError, stream_notes

            chunks = stream_notes(notes, cfg.soundfont, SAMPLE_RATE, int(cfg.program), float(cfg.chunk_seconds))
            n = 0
            try:
                for y in chunks:
                    out.write(y)
                    n += len(y)
            except RenderError as exc:
                raise StageError(f"{job.input}: {exc}") from None
        else:
            synth = _get_synthesizer(cfg)
            from w2m2w.synthesis import piece_samples

            total = piece_samples(notes, synth.cfg.tail_seconds, synth.hop, synth.sr)
            bar = _progress_bar(job.piece, total / synth.sr)

            def advance(seconds: float) -> None:
                bar.update(min(seconds, bar.total - bar.n))  # float sums may overshoot the total by a hair

            n = 0
            try:
                for y in synth.stream(notes, total, progress=advance):
                    out.write(np.clip(y, -1.0, 1.0))
                    n += len(y)
            finally:
                bar.close()
            stats.update(backend=synth.backend, folds=synth.cfg.folds, segments=len(synth.plan(total)))
    dt = time.perf_counter() - t0
    stats.update(audio_seconds=round(n / SAMPLE_RATE, 3), render_seconds=round(dt, 3), samples_per_second=round(n / dt) if dt > 0 else None)
    return stats
