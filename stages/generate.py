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
from dataclasses import dataclass
from typing import Any

import numpy as np

from w2m2w.beats import Beats, beat_stats, track_beats_of
from w2m2w.generation import (
    Continuation,
    GenerationConfig,
    SamplingConfig,
    continue_notes,
    load_music_transformer,
    read_midi_notes,
)
from w2m2w.midi import MidiError, write_midi
from w2m2w.musicxml import write_score
from w2m2w.run.stage import ModelStage, StageError, StageJob
from w2m2w.settings import NON_NEGATIVE, PROBABILITY_UPPER, THREADS, Range, carried, setting
from w2m2w.tempo_map import beats_in_midi, shift_beats, write_tempo_mapped_midi

log = logging.getLogger("w2m2w")
_GEN, _SAMPLING = GenerationConfig, SamplingConfig  # the library's dataclasses hold the defaults
# An hour of music: sampling runs one event at a time, so its time grows with the music's length, and max_events'
# default (300 per second) stops a model that never moves time only at 1.08 million events. Unbounded, a typo
# like seconds=1e9 would run for ever.
MAX_SECONDS = 3600.0
MAX_EVENTS = int(300 * MAX_SECONDS)
# When the cache fills, 3/4 of the context is read again at once: its attention scores grow with its square
# (8192 events: ~0.6 GB with the shipped model's 4 heads; 8x the context it was trained on).
MAX_CONTEXT = 8192


@dataclass
class GenerateSettings:
    """conf/generate/music_transformer.yaml; defaults from w2m2w.generation's GenerationConfig and SamplingConfig."""

    weights: str | None = setting(None, affects_output=False)  # its sha256 is in the sidecar on its own
    device: str | None = setting(None, device=True, affects_output=False)  # null: the top-level `device` (auto)
    threads: int = setting(1, range=THREADS, affects_output=False)
    primer_seconds: float = setting(_GEN.primer_seconds, range=NON_NEGATIVE)
    primer_events: int | None = setting(_GEN.primer_events, range=NON_NEGATIVE)
    seconds: float = setting(_GEN.seconds, range=Range(0, MAX_SECONDS, lo_open=True))
    context: int = setting(_GEN.context, range=Range(0, MAX_CONTEXT))
    include_primer: bool = setting(_GEN.include_primer)
    max_events: int = setting(_GEN.max_events, range=Range(0, MAX_EVENTS))
    temperature: float = setting(_SAMPLING.temperature, range=NON_NEGATIVE)  # 0: always the most likely event
    top_k: int = setting(_SAMPLING.top_k, range=NON_NEGATIVE)
    top_p: float = setting(_SAMPLING.top_p, range=PROBABILITY_UPPER)
    seed: int | None = setting(
        _SAMPLING.seed, range=Range(0, 2**64 - 1)
    )  # torch's generator takes 64 bits  # null: a fresh seed per piece (recorded)
    # the output's tempo map: the input's own where it has one (auto), else beats tracked from the input's notes,
    # carried on over the continuation at the last tempo and meter; off: a plain 120 bpm 4/4 file
    tempo_map: str = setting("auto", choices=("auto", "track", "off"))
    # also <piece>.musicxml of the output (see transcribe.score; out of the hash for the same reason)
    score: bool = setting(False, affects_output=False)


def generation_config(s: GenerateSettings) -> GenerationConfig:
    """The stage's settings as the library's dataclasses, each field by its name (settings.carried); seed null draws
    a fresh seed (the sidecar records it)."""
    seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
    return carried(GenerationConfig, s, sampling=carried(SamplingConfig, s, seed=seed))


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


class Generate(ModelStage):
    name = "generate"
    settings = GenerateSettings
    options = {"music_transformer": GenerateSettings}
    model = "music_transformer"
    loader = staticmethod(load_music_transformer)

    def run(self, s: GenerateSettings, job: StageJob) -> dict[str, Any]:
        """Continue the MIDI file job.input into job.output; returns primer, sampling and note stats."""
        gen = generation_config(s)
        model = self.load(s)
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
        result = continue_piece(model, notes, gen, s)
        beats, beats_from = output_beats(job.input, notes, result, s.tempo_map)
        if beats is None:
            write_midi(job.output, result.notes)
        else:
            write_tempo_mapped_midi(job.output, result.notes, beats)
        if ".musicxml" in job.extras:
            score_beats = beats if beats is not None else track_beats_of(result.notes)
            write_score(job.extras[".musicxml"], result.notes, score_beats, title=job.piece)
        stats = {"input_notes": int(len(notes)), **result.stats, **beat_stats(beats)}
        if beats_from:
            stats["tempo_map_from"] = beats_from
        if warning:
            stats["warning"] = warning
        if "warning" in result.stats:
            log.warning("[generate] %s: %s", job.piece, result.stats["warning"])
        return stats


def output_beats(midi: Any, notes: np.ndarray, result: Continuation, mode: str) -> tuple[Beats | None, str | None]:
    """The continuation's beats and where they came from ('input': the input's own tempo map; 'tracked': from
    the input's notes), in the output's time frame (it starts where the primer started in the input, or where
    it ended when the primer is left out), carried on to the output's end; (None, None) for a plain file.
    midi: the input, a MIDI file's path or a pretty_midi.PrettyMIDI (None: a bare note list, no map)."""
    if mode == "off":
        return None, None
    beats, source = None, "tracked"
    if mode == "auto" and midi is not None:
        import pretty_midi

        pm = midi if isinstance(midi, pretty_midi.PrettyMIDI) else pretty_midi.PrettyMIDI(str(midi))
        beats, source = beats_in_midi(pm), "input"
    if beats is None:
        beats, source = track_beats_of(notes), "tracked"
    if beats is None:
        return None, None
    offset = float(result.stats["primer_start_in_input_s"]) + (
        float(result.stats["primer_seconds"]) if result.stats["output"] == "continuation" else 0.0
    )
    end = float(result.notes[:, 1].max()) if len(result.notes) else 0.0
    shifted = shift_beats(beats, offset, end + 1.0)
    return (shifted, source) if len(shifted.times) >= 2 else (None, None)


def continue_piece(model: Any, notes: np.ndarray, gen: GenerationConfig, s: GenerateSettings) -> Continuation:
    """The continuation of `notes` (primer + new notes, or the new notes alone) on the stage's threads: the stage's
    work on one piece, also w2m2w.continue_midi's."""
    with _threads(s.threads):
        return continue_notes(model, notes, gen)


STAGE = Generate()
