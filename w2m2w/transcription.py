"""Audio -> notes with an Onsets and Frames model (model loading, prediction, decoding)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .checkpoint import load_weights
from .decoding import decode_notes
from .models.onsets_frames import MODEL_NAME, OnsetsFrames, OnsetsFramesConfig


@dataclass
class DecodeConfig:
    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_duration: float = 0.0


def load_transcriber(path: str | os.PathLike, device: str = "cpu") -> OnsetsFrames:
    """An OnsetsFrames model from a weights file (WeightsError names the file if it is unusable)."""
    from .checkpoint import WeightsError

    state, config, _ = load_weights(path, MODEL_NAME)
    model = OnsetsFrames(OnsetsFramesConfig(**config))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the model config stored in it ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()


def transcribe(
    model: OnsetsFrames, audio: np.ndarray, decode: DecodeConfig = DecodeConfig(), chunk_seconds: float = 20.0, overlap_seconds: float = 2.0
) -> np.ndarray:
    """Note list (n, 4) for 16 kHz mono `audio` of any length."""
    probs = model.predict(audio, chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds)
    return decode_notes(
        probs["onset"], probs["frame"], probs["velocity"], model.frame_rate, decode.onset_threshold, decode.frame_threshold, decode.min_duration
    )


def validate(model: OnsetsFrames, pieces: list[tuple[str, np.ndarray, np.ndarray]], decode: DecodeConfig = DecodeConfig()) -> dict[str, float]:
    """Mean transcription metrics of `model` over (name, audio, reference notes) triples."""
    from .metrics import mean_metrics, transcription_metrics

    was_training = model.training
    rows = [transcription_metrics(ref, transcribe(model, y, decode)) for _, y, ref in pieces]
    model.train(was_training)
    return mean_metrics(rows)
