"""Stage 1: piano audio -> MIDI with Onsets and Frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from w2m2w.audio import AudioError, is_silent, load_audio
from w2m2w.beats import Beats, beat_stats, track_beats_of
from w2m2w.constants import SAMPLE_RATE
from w2m2w.decoding import DecodeConfig
from w2m2w.midi import write_midi
from w2m2w.musicxml import write_score
from w2m2w.run.stage import ModelStage, StageError, StageJob
from w2m2w.settings import NON_NEGATIVE, Range, SettingsError, carried, declared, setting
from w2m2w.tempo_map import write_tempo_mapped_midi
from w2m2w.transcription import load_transcriber, transcribe_with_pedal

# A batch of 4 chunks, each with its overlap on both sides, is in memory at once, its size growing with the seconds
# in it (measured per second: weights/README.md, onsets_frames, "Figures behind the code's choices"). Chunks up to
# 120 s and an overlap under the chunk bound a batch at 4 x 3 x 120 s of audio; an overlap of thousands of seconds
# took tens of GB, and every chunk recomputes it.
MAX_CHUNK_SECONDS = 120.0
# A day of audio: the recording is in memory whole (16 kHz float32: 5.5 GB for 24 h), its probabilities too.
MAX_SECONDS = 86400.0


@dataclass
class TranscribeSettings:
    """conf/transcribe/onsets_frames.yaml; decoding settings are declared in w2m2w.decoding.DecodeConfig."""

    weights: str | None = setting(None, affects_output=False)  # its sha256 is in the sidecar on its own
    device: str | None = setting(None, device=True, affects_output=False)  # null: the top-level `device` (auto)
    onset_threshold: float = declared(DecodeConfig, "onset_threshold")
    frame_threshold: float = declared(DecodeConfig, "frame_threshold")
    min_duration: float = declared(DecodeConfig, "min_duration")
    offset_threshold: float = declared(DecodeConfig, "offset_threshold")  # 1.0: the offset head never ends a note
    # sustain pedal: written as CC64 when the model has a pedal head (the shipped weights have one)
    pedal: bool = setting(True)
    pedal_onset_threshold: float = declared(DecodeConfig, "pedal_onset_threshold")
    pedal_offset_threshold: float = declared(DecodeConfig, "pedal_offset_threshold")
    pedal_frame_threshold: float = declared(DecodeConfig, "pedal_frame_threshold")
    pedal_min_duration: float = declared(DecodeConfig, "pedal_min_duration")
    pedal_change_gap: float = declared(
        DecodeConfig, "pedal_change_gap"
    )  # s; 0: a pedal change must show in the frame head
    chunk_seconds: float = setting(20.0, range=Range(0, MAX_CHUNK_SECONDS, lo_open=True))
    overlap_seconds: float = setting(2.0, range=NON_NEGATIVE)  # below chunk_seconds (check_more)
    silence_db: float = setting(-60.0, range=Range(None, 0))  # dBFS: a peak never exceeds 0
    max_seconds: float | None = setting(
        14400.0, range=Range(0, MAX_SECONDS, lo_open=True), affects_output=False
    )  # refuses, never changes a result
    # beats, bars and meter tracked from the notes, written as the MIDI's tempo map and time signatures so a
    # DAW's bar lines fall on the music's; the notes keep their times in seconds. false: a plain 120 bpm 4/4 file
    tempo_map: bool = setting(True)
    # also <piece>.musicxml beside the MIDI: notes quantized to the beats, key, two staves, pedal marks, tempo.
    # Out of the hash: it changes no byte of the MIDI; the file is a side output (Stage.side_outputs), so turning
    # it on computes what is missing and turning it off deletes nothing
    score: bool = setting(False, affects_output=False)

    def check_more(self, prefix: str = "") -> None:
        """The overlap is context on each side of a chunk: at or above the chunk it costs memory and time for nothing."""
        if self.overlap_seconds >= self.chunk_seconds:
            key = f"{prefix}.overlap_seconds" if prefix else "overlap_seconds"
            raise SettingsError(key, self.overlap_seconds, f"in [0, chunk_seconds) = [0, {self.chunk_seconds:g})")


class Transcribe(ModelStage):
    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}
    model = "onsets_frames"
    loader = staticmethod(load_transcriber)

    def run(self, s: TranscribeSettings, job: StageJob) -> dict[str, Any]:
        """Transcribe job.input into the MIDI file job.output (notes, and the pedal as CC64); returns note, pedal and timing stats."""
        model = self.load(s)
        try:
            audio = load_audio(job.input, max_seconds=s.max_seconds)
        except AudioError as exc:
            raise StageError(str(exc)) from None
        seconds = len(audio) / SAMPLE_RATE
        notes, pedal = transcribe_audio(model, audio, s, str(job.input))
        # The notes are written as decoded, already lengthened by the pedal (the frame labels are, as
        # MAESTRO's); a reader applying the CC64 again (midi.load_notes, the generate stage) lengthens
        # only notes the model ended while its decoded pedal was still down.
        beats = write_transcription(job.output, notes, pedal, s.tempo_map)
        if ".musicxml" in job.extras:
            write_score(job.extras[".musicxml"], notes, beats or track_beats_of(notes), pedal, title=job.piece)
        # pedal_intervals: None where no pedal was written (no pedal head, or pedal=false)
        return {
            "audio_seconds": round(seconds, 3),
            "notes": int(len(notes)),
            "pedal_intervals": None if pedal is None else int(len(pedal)),
            **beat_stats(beats),
        }


def write_transcription(path: Path, notes: np.ndarray, pedal: np.ndarray | None, tempo_map: bool) -> Beats | None:
    """Write the MIDI file: with the tracked beats as its tempo map (None where tempo_map is off or too few
    notes give no beats: then a plain 120 bpm file); returns the beats written."""
    beats = track_beats_of(notes) if tempo_map else None
    if beats is None:
        write_midi(path, notes, pedal=pedal)
    else:
        write_tempo_mapped_midi(path, notes, beats, pedal)
    return beats


def transcribe_audio(
    model: Any, audio: np.ndarray, s: TranscribeSettings, name: str = "audio"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Notes (n, 4) and pedal intervals (None: no pedal head, or pedal=false) of 16 kHz mono `audio`: the stage's
    work on one recording, also w2m2w.transcribe's. StageError for a silent recording (`name` in the message)."""
    if is_silent(audio, s.silence_db):
        raise StageError(f"{name}: silent recording (peak below {s.silence_db} dBFS), nothing to transcribe")
    notes, pedal = transcribe_with_pedal(model, audio, carried(DecodeConfig, s), s.chunk_seconds, s.overlap_seconds)
    return notes, (pedal if s.pedal else None)


STAGE = Transcribe()
