"""The settings of `python -m w2m2w.evaluate`: conf/evaluate.yaml's typed schema, checked before any work.

One dataclass for the command, as its keys are flat (`task=synthesis max_seconds=60`); each task reads its own
fields. Declared with `setting()` as the run's are: Hydra refuses a wrong type or an unknown key, settings.check a
value out of range, each with one line naming the key. The decode block is w2m2w.decoding.DecodeConfig itself,
so its defaults and ranges are the transcribe stage's. No torch here: a usage error need not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from w2m2w.decoding import DecodeConfig
from w2m2w.render.finish import LOUDNESS, LOUDNESS_LUFS
from w2m2w.render.registry import RENDERERS
from w2m2w.settings import NON_NEGATIVE, POSITIVE, PROBABILITY_UPPER, THREADS, Range, SettingsError, setting

TASKS = ("transcription", "generation", "synthesis")
SOURCES = ("auto", "midi", "audio")
SEEDS = Range(0, 2**64 - 1)  # torch's generator takes 64 bits


@dataclass
class ContinuationSettings:
    """task=generation: prime with each file's first primer_seconds, continue, compare with the real next seconds."""

    enabled: bool = setting(True)  # false: the NLL alone
    primer_seconds: float = setting(20.0, range=POSITIVE)  # the primer: the piece's first this-many seconds
    seconds: float = setting(
        20.0, range=POSITIVE
    )  # continue this long, and compare with the real next this-many seconds
    seed: int = setting(0, range=SEEDS)  # piece i samples with seed + i: reruns give the same figures
    temperature: float = setting(1.0, range=POSITIVE)
    top_k: int = setting(0, range=NON_NEGATIVE)  # 0: every event
    top_p: float = setting(1.0, range=PROBABILITY_UPPER)  # the generate stage's default
    max_files: int = setting(
        0, range=NON_NEGATIVE
    )  # 0: every input file long enough (each costs `seconds` of sampling)


@dataclass
class EvaluateSettings:
    """conf/evaluate.yaml: what to score (task, input, reference) and each task's own settings."""

    task: str = setting("transcription", choices=TASKS)
    input: str | None = setting(None)  # a file or a folder (searched recursively)
    # transcription: same-named .mid/.midi or MAPS .tsv files; synthesis: the target piano's recordings
    reference: str | None = setting(None)
    include: Any = setting(None)  # a glob or a list of globs on the relative path or file name
    exclude: Any = setting(None)
    weights: str | None = setting(None)  # null: the task's shipped model (synthesis: the synthesizer's)
    device: str = setting("cpu", device=True)
    threads: int = setting(0, range=THREADS)  # torch threads; 0: torch's default
    output: str | None = setting(None)  # a JSON file for the per-file rows and the summary
    # task=transcription
    source: str = setting("auto", choices=SOURCES)  # auto: MIDI if the input holds any, else audio
    onset_tolerance: float = setting(0.05, range=POSITIVE)  # seconds (mir_eval's default)
    frame_rate: float = setting(100.0, range=POSITIVE)  # frames per second of the frame metric's piano rolls
    apply_pedal: bool = setting(True)  # sustain pedal lengthens notes of MIDI inputs and references
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # the transcriber's decoding, for audio inputs
    # task=generation
    continuation: ContinuationSettings = field(default_factory=ContinuationSettings)
    # task=synthesis
    synthesizer: str = setting("source_filter", choices=RENDERERS)
    transcriber: str | None = setting(None)  # the round trip's transcriber (null: the shipped one)
    basic_pitch: str = setting("auto")  # auto (when installed) | true | false
    soundfont: Any = setting("fluidr3")  # FluidSynth through this soundfont beside it, or each of a list; null: not
    # mappings typed Any: OmegaConf merges an override into neither a null nor a struct-mode mapping node
    also: Any = setting(None)  # label -> other weights of the synthesizer, beside it
    settings: Any = setting(None)  # synthesize settings of the synthesizer under test (the renderer checks them)
    loudness_lufs: float | None = setting(
        LOUDNESS_LUFS, range=LOUDNESS
    )  # every system brought to it; null: as rendered
    source_alone: bool = setting(True)  # the source-filter model's source, unfiltered, beside it
    max_seconds: float | None = setting(30.0, range=NON_NEGATIVE)  # of each note file; 0 or null: all of it
    temperature: float = setting(1.0, range=POSITIVE)  # the autoregressive WaveNet's (as synthesize.temperature)
    audio_out: str | None = setting(None)  # a folder to keep the rendered WAVs in (NAME.SYSTEM.wav, NAME.target.wav)

    def check_more(self, prefix: str = "") -> None:
        """The shapes Hydra cannot check on the fields typed Any: a name or a list of names; a mapping."""
        for key in ("include", "exclude", "soundfont"):
            value = getattr(self, key)
            if not (value is None or isinstance(value, (str, list))):
                raise SettingsError(_key(prefix, key), value, "a name or a list of names")
        for key in ("also", "settings"):
            value = getattr(self, key)
            if not (value is None or isinstance(value, dict)):
                raise SettingsError(_key(prefix, key), value, "a mapping, e.g. '{key: value}'")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
