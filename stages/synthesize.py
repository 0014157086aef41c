"""Stage 3: MIDI -> 16 kHz mono audio through a renderer (w2m2w.renderers).

`synthesize=source_filter` (the default: the source-filter WaveNet),
`synthesize=wavenet` (the autoregressive WaveNet of Wave2Midi2Wave) or
`synthesize=fluidsynth` (reference and quick preview). Audio is written to the
WAV file as it is rendered, so memory stays bounded for any length; a
progress bar counts seconds rendered.
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
from w2m2w.renderers import RENDERERS, Renderer, load_renderer
from w2m2w.renderers import weights_file as _renderer_weights
from w2m2w.synthesis import clean_notes

NAME = "synthesize"
SILENT_SECONDS = 0.5
log = logging.getLogger("w2m2w")

# what changes each renderer's audio; device, threads, block and chunk sizes do not
# (the numba streams are independent of their threads; source-filter blocks join exactly)
_AUDIO_SETTINGS = {
    "source_filter": ("tail_seconds", "source_only"),
    "wavenet": ("folds", "min_segment_seconds", "max_segment_seconds", "warmup_seconds", "fade_seconds", "crossfade", "tail_seconds",
                "temperature", "seed", "backend"),
    "fluidsynth": ("soundfont", "program"),
}
# read by the renderer; everything else in the config group is the stage's (name, weights, max_seconds)
_RENDER_KEYS = ("weights", "device", "threads", "block_seconds", "tail_seconds", "source_only", "folds", "min_segment_seconds",
                "max_segment_seconds", "warmup_seconds", "fade_seconds", "crossfade", "temperature", "seed", "backend", "chunk_samples",
                "soundfont", "program", "chunk_seconds")


def _name(cfg: Any) -> str:
    name = cfg.get("name", "source_filter")
    if name not in RENDERERS:
        raise StageError(f"synthesize.name={name!r}: choose one of {', '.join(RENDERERS)}")
    return name


def _render_settings(cfg: Any) -> dict[str, Any]:
    return {k: cfg[k] for k in _RENDER_KEYS if k in cfg and cfg[k] is not None}


def weights_file(cfg: Any) -> Path:
    """The renderer's weights file, or FluidSynth's soundfont: its hash goes into the sidecar, so new weights make outputs stale."""
    return _renderer_weights(_name(cfg), _render_settings(cfg))


def settings(cfg: Any) -> dict[str, Any]:
    """Everything that changes the audio."""
    name = _name(cfg)
    out = {"name": name, **{k: cfg[k] for k in _AUDIO_SETTINGS[name] if k in cfg}}
    if name == "fluidsynth":
        out["program"] = int(out.get("program", 0))
    if out.get("backend") == "auto":  # numba and torch may draw different samples from nearly equal logits
        out["backend"] = "torch" if str(cfg.get("device", "cpu")).startswith("cuda") else "numba"
    return out


@lru_cache(maxsize=2)
def _cached(name: str, frozen: tuple) -> Renderer:
    # one model load per process, whatever the number of pieces
    return load_renderer(name, dict(frozen))


def get_renderer(cfg: Any) -> Renderer:
    return _cached(_name(cfg), tuple(sorted(_render_settings(cfg).items())))


def prepare(cfg: Any) -> None:
    """Load the model (or find the soundfont) once before the batch; errors name the file."""
    get_renderer(cfg)


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
    from w2m2w.progress import progress_bar  # honours progress=false, and stays silent in worker processes

    return progress_bar(total=round(seconds, 2), desc=f"synthesize {piece}", unit="s",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")


def run(cfg: Any, job: StageJob, run_dir: Path) -> dict[str, Any]:
    """Render job.input (MIDI) into the WAV file job.output; returns note and speed stats."""
    import soundfile as sf

    name = _name(cfg)
    notes, warnings = read_notes(job.input)
    for w in warnings:
        log.warning("%s", w)
    stats: dict[str, Any] = {"notes": int(len(notes)), "synthesizer": name}
    if warnings:
        stats["warnings"] = warnings
    renderer = get_renderer(cfg) if len(notes) else None
    total = renderer.n_samples(notes) if renderer is not None else int(SILENT_SECONDS * SAMPLE_RATE)
    limit = cfg.get("max_seconds")
    if limit and total > float(limit) * SAMPLE_RATE:
        raise StageError(f"{job.input}: the music lasts {total / SAMPLE_RATE:.0f} s, over synthesize.max_seconds={float(limit):g}; "
                         "raise it to render this file")
    t0 = time.perf_counter()
    n = 0
    with sf.SoundFile(str(job.output), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="WAV") as out:
        if renderer is None:
            out.write(np.zeros(total, np.float32))
            stats["audio_seconds"] = SILENT_SECONDS
            return stats
        bar = _progress_bar(job.piece, total / SAMPLE_RATE)

        def advance(seconds: float) -> None:
            bar.update(min(seconds, bar.total - bar.n))  # float sums may overshoot the total by a hair

        try:
            for y in renderer.stream(notes, progress=advance):  # each renderer knows its own length (total is for the bar)
                out.write(np.clip(y, -1.0, 1.0))
                n += len(y)
        except Exception as exc:
            from w2m2w.data.render import RenderError

            if isinstance(exc, RenderError):
                raise StageError(f"{job.input}: {exc}") from None
            raise
        finally:
            bar.close()
    dt = time.perf_counter() - t0
    stats.update(renderer.describe())
    stats.update(audio_seconds=round(n / SAMPLE_RATE, 3), render_seconds=round(dt, 3), samples_per_second=round(n / dt) if dt > 0 else None)
    return stats
