"""Stage 2: MIDI -> MIDI, the end of the input continued by a Music Transformer.

The output holds the primer (the end of the input, from where it starts) and
the continuation, or the continuation alone (include_primer=false); the
sidecar's stats say where the primer ends, in seconds and events, and the
seed and sampling settings used.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from w2m2w.generation import GenerationConfig, SamplingConfig, continue_notes, load_music_transformer, read_midi_notes
from w2m2w.midi import MidiError, write_midi
from w2m2w.pipeline import StageError, StageJob

NAME = "generate"
REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("w2m2w")

# what changes the output; device and threads do not
_SETTINGS = ("primer_seconds", "primer_events", "seconds", "context", "include_primer", "max_events", "temperature", "top_k", "top_p", "seed")


def weights_file(cfg: Any) -> Path:
    """cfg.weights, or the shipped weights/music_transformer.safetensors when it is null."""
    return Path(cfg.weights) if cfg.get("weights") else REPO / "weights" / "music_transformer.safetensors"


def settings(cfg: Any) -> dict[str, Any]:
    return {k: cfg.get(k) for k in _SETTINGS}


def generation_config(cfg: Any) -> GenerationConfig:
    """The stage's config group as plain dataclasses; seed null draws a fresh seed (the sidecar records it)."""
    seed = int(cfg.seed) if cfg.get("seed") is not None else int.from_bytes(os.urandom(4), "little") >> 1
    sampling = SamplingConfig(temperature=float(cfg.temperature), top_k=int(cfg.top_k), top_p=float(cfg.top_p), seed=seed)
    return GenerationConfig(
        primer_seconds=float(cfg.primer_seconds), primer_events=None if cfg.get("primer_events") is None else int(cfg.primer_events),
        seconds=float(cfg.seconds), context=int(cfg.get("context") or 0), include_primer=bool(cfg.include_primer),
        max_events=int(cfg.get("max_events") or 0), sampling=sampling,
    )


@lru_cache(maxsize=2)
def _model(path: str, device: str):
    # one load per process, whatever the number of pieces
    return load_music_transformer(path, device)


def _load(cfg: Any):
    return _model(str(weights_file(cfg)), cfg.get("device", "cpu"))


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch threads for this stage only; the other stages in the process keep theirs."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prepare(cfg: Any) -> None:
    """Load the model once before the batch (raises WeightsError naming a bad weights file)."""
    generation_config(cfg)
    _load(cfg)


def run(cfg: Any, job: StageJob, run_dir: Path) -> dict[str, Any]:
    """Continue the MIDI file job.input into job.output; returns primer, sampling and note stats."""
    gen = generation_config(cfg)
    model = _load(cfg)
    from_transcription = job.input.resolve() != job.source.resolve()
    try:
        # a transcription may be empty (a recording with no notes found); a user's MIDI file may not
        notes = read_midi_notes(job.input, allow_empty=from_transcription)
    except MidiError as exc:
        raise StageError(str(exc)) from None
    warning = None
    if len(notes) == 0:
        warning = f"{job.input}: transcription holds no notes; continuing from an empty start"
        log.warning("[generate] %s", warning)
    with _threads(int(cfg.get("threads") or 0)):
        result = continue_notes(model, notes, gen)
    write_midi(job.output, result.notes)
    stats = {"input_notes": int(len(notes)), **result.stats}
    if warning:
        stats["warning"] = warning
    if "warning" in result.stats:
        log.warning("[generate] %s: %s", job.piece, result.stats["warning"])
    return stats
