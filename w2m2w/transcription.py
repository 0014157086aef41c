"""Audio -> notes (and sustain pedal) with an Onsets and Frames model (model loading, prediction, decoding)."""

from __future__ import annotations

import os

import numpy as np

from w2m2w.checkpoint import load_model
from w2m2w.decoding import DecodeConfig, decode_notes
from w2m2w.models.onsets_frames import MODEL_NAME, PEDAL_HEADS, OnsetsFrames, OnsetsFramesConfig
from w2m2w.pedal import decode_pedal


def load_transcriber(path: str | os.PathLike, device: str = "cpu") -> OnsetsFrames:
    """An OnsetsFrames model from a weights file (WeightsError names the file if it is unusable)."""
    return load_model(path, MODEL_NAME, lambda config: OnsetsFrames(OnsetsFramesConfig(**config)), device)


def decode_probabilities(
    probs: dict[str, np.ndarray], frame_rate: float, decode: DecodeConfig = DecodeConfig()
) -> tuple[np.ndarray, np.ndarray | None]:
    """Notes (n, 4) and pedal intervals (m, 2) from model.predict's probabilities.

    probs: onset/frame/velocity (frames, 88) and, from a model with a pedal head,
    pedal_onset/pedal_offset/pedal_frame (frames,). The pedal is None when they are absent
    (the model cannot tell), an empty (0, 2) array when it says the pedal was never down.
    """
    notes = decode_notes(
        probs["onset"],
        probs["frame"],
        probs["velocity"],
        frame_rate,
        decode.onset_threshold,
        decode.frame_threshold,
        decode.min_duration,
        offset=probs.get("offset"),
        offset_threshold=decode.offset_threshold,
    )
    if not all(k in probs for k in PEDAL_HEADS):  # no pedal head (the shipped weights)
        return notes, None
    pedal = decode_pedal(
        probs["pedal_onset"],
        probs["pedal_offset"],
        probs["pedal_frame"],
        frame_rate,
        decode.pedal_onset_threshold,
        decode.pedal_offset_threshold,
        decode.pedal_frame_threshold,
        decode.pedal_min_duration,
        decode.pedal_change_gap,
    )
    return notes, pedal


def transcribe_with_pedal(
    model: OnsetsFrames,
    audio: np.ndarray,
    decode: DecodeConfig = DecodeConfig(),
    chunk_seconds: float = 20.0,
    overlap_seconds: float = 2.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Notes (n, 4) and pedal intervals (m, 2), or None without a pedal head, for 16 kHz mono `audio` of any length.

    The notes are decoded as transcribe() decodes them: the model's frame labels are already
    lengthened by the pedal (as MAESTRO's are), so the pedal is extra information, never applied to them.
    """
    probs = model.predict(audio, chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds)
    return decode_probabilities(probs, model.frame_rate, decode)


def transcribe(
    model: OnsetsFrames,
    audio: np.ndarray,
    decode: DecodeConfig = DecodeConfig(),
    chunk_seconds: float = 20.0,
    overlap_seconds: float = 2.0,
) -> np.ndarray:
    """Note list (n, 4) for 16 kHz mono `audio` of any length."""
    return transcribe_with_pedal(model, audio, decode, chunk_seconds, overlap_seconds)[0]
