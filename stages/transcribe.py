"""Stage 1: piano audio -> MIDI with Onsets and Frames."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from w2m2w import SAMPLE_RATE
from w2m2w.audio import AudioError, is_silent, load_audio
from w2m2w.midi import write_midi
from w2m2w.pipeline import StageError, StageJob
from w2m2w.transcription import DecodeConfig, load_transcriber, transcribe

NAME = "transcribe"
REPO = Path(__file__).resolve().parent.parent


def weights_file(cfg: Any) -> Path:
    """cfg.weights, or the shipped weights/onsets_frames.safetensors when it is null."""
    return Path(cfg.weights) if cfg.get("weights") else REPO / "weights" / "onsets_frames.safetensors"


def settings(cfg: Any) -> dict[str, Any]:
    """Everything that changes the transcription (device and batching do not)."""
    return {k: cfg[k] for k in ("onset_threshold", "frame_threshold", "min_duration", "chunk_seconds", "overlap_seconds", "silence_db")}


@lru_cache(maxsize=2)
def _model(path: str, device: str):
    # one load per process, whatever the number of pieces
    return load_transcriber(path, device)


def prepare(cfg: Any) -> None:
    """Load the model once before the batch (raises WeightsError naming a bad weights file)."""
    _model(str(weights_file(cfg)), cfg.get("device", "cpu"))


def run(cfg: Any, job: StageJob, run_dir: Path) -> dict[str, Any]:
    """Transcribe job.input into the MIDI file job.output; returns note and timing stats."""
    model = _model(str(weights_file(cfg)), cfg.get("device", "cpu"))
    try:
        audio = load_audio(job.input, max_seconds=cfg.get("max_seconds"))
    except AudioError as exc:
        raise StageError(str(exc)) from None
    seconds = len(audio) / SAMPLE_RATE
    if is_silent(audio, cfg.silence_db):
        raise StageError(f"{job.input}: silent recording (peak below {cfg.silence_db} dBFS), nothing to transcribe")
    decode = DecodeConfig(cfg.onset_threshold, cfg.frame_threshold, cfg.min_duration)
    notes = transcribe(model, audio, decode, cfg.chunk_seconds, cfg.overlap_seconds)
    write_midi(job.output, notes)
    return {"audio_seconds": round(seconds, 3), "notes": int(len(notes))}
