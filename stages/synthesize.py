"""Stage 3: MIDI -> mono audio through a renderer (w2m2w.render.registry), written at 16 kHz or synthesize.sample_rate.

`synthesize=source_filter` (the default: the source-filter WaveNet),
`synthesize=wavenet` (the autoregressive WaveNet of Wave2Midi2Wave) or
`synthesize=fluidsynth` (reference and quick preview). Audio is written to the
WAV file as it is rendered, so memory stays bounded for any length; a
progress bar counts seconds rendered. Every renderer makes 16 kHz audio;
`sample_rate` (44100, 48000, ...) resamples what is written with soxr, for
players and editors that want those rates: it adds no sound above 8 kHz, where
the models' band ends.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from w2m2w.audio import StreamResampler
from w2m2w.constants import SAMPLE_RATE
from w2m2w.midi import MidiError, load_midi_notes
from w2m2w.render.finish import LOUDNESS, LOUDNESS_LUFS
from w2m2w.render.registry import FluidSynthConfig, Renderer, load_renderer
from w2m2w.render.registry import weights_file as _renderer_weights
from w2m2w.render.source_filter import SourceFilterRenderConfig
from w2m2w.render.wavenet import SynthesisConfig, clean_notes
from w2m2w.run.stage import Stage, StageError, StageJob
from w2m2w.settings import NON_NEGATIVE, POSITIVE, THREADS, Range, SettingsError, setting

SILENT_SECONDS = 0.5
log = logging.getLogger("w2m2w")
_SF, _AR, _FS = (
    SourceFilterRenderConfig,
    SynthesisConfig,
    FluidSynthConfig,
)  # the renderers' dataclasses hold the defaults

# A day of audio: the WAV file (16 kHz PCM_16) holds at most 4 GiB, about 37 hours; 24 h is 2.8 GB.
MAX_SECONDS = Range(0, 86400, lo_open=True)
# source_filter: a block's memory grows with its seconds (measured: weights/README.md, source_filter_wavenet,
# "Figures behind the code's choices"); a minute bounds it.
BLOCK_SECONDS = Range(0, 60, lo_open=True)
FOLDS = Range(1, 1024)
# wavenet: a window holds folds x (segment + warmup + fade) seconds of streams, each sample at least 5 bytes
# (a uniform draw and the class), more with an excitation (8 bytes per harmonic): 4096 stream-seconds is
# ~330 MB for the shipped model (the default is 16 x 4.2 = 67), ~4.5 GB with 8 harmonics.
MAX_STREAM_SECONDS = 4096.0
# fluidsynth: a chunk is float64 samples; 600 s is 77 MB.
FLUIDSYNTH_CHUNK_SECONDS = Range(0, 600, lo_open=True)
# the written WAV's rate: telephone-band 8 kHz up to 192 kHz studio files (a 24 h piece at 192 kHz is 33 GB)
SAMPLE_RATES = Range(8000, 192000)
BAND_NOTE = "the models' band ends at 8 kHz (they make 16 kHz audio): a higher rate adds no sound above it"

# Settings that change how fast or in what pieces the audio is made, not the audio itself, are affects_output=False:
# device, threads, block and chunk sizes (the numba streams are independent of their threads; source-filter
# blocks join exactly), max_seconds (it refuses, never changes a result) and weights (hashed on their own).


@dataclass
class SourceFilterSettings:
    """conf/synthesize/source_filter.yaml: the source-filter WaveNet (the default)."""

    name: str = setting("source_filter", choices=("source_filter",))
    weights: str | None = setting(None, affects_output=False)
    device: str | None = setting(None, device=True, affects_output=False)  # null: the top-level `device` (auto)
    threads: int = setting(_SF.threads, range=THREADS, affects_output=False)
    block_seconds: float = setting(_SF.block_seconds, range=BLOCK_SECONDS, affects_output=False)
    tail_seconds: float = setting(_SF.tail_seconds, range=NON_NEGATIVE)
    source_only: bool = setting(_SF.source_only)
    eq_db: list[float] | None = setting(
        None
    )  # gains (dB) at the octave centres 63..8000 Hz (render/eq.py), measured by scripts/band_bias.py
    # samples the gate opens before an onset, and its ramp (render/source_filter.py says why 0 and 16); null: the
    # weights' own (256, 160)
    gate_margin: int | None = setting(_SF.gate_margin, range=Range(0, 4096))
    gate_ramp: int | None = setting(_SF.gate_ramp, range=Range(1, 4096))
    release: str = setting(
        _SF.release, choices=("model", "measured")
    )  # the dampers: the weights' own, or the real piano's (weights/README.md)
    # corner (Hz) of the DC blocker on the WaveNet's output (render/source_filter.py says why); 0: none
    dc_block_hz: float = setting(_SF.dc_block_hz, range=Range(0, 20))
    loudness_lufs: float | None = setting(LOUDNESS_LUFS, range=LOUDNESS)  # null: as rendered
    max_seconds: float | None = setting(7200.0, range=MAX_SECONDS, affects_output=False)
    sample_rate: int = setting(
        SAMPLE_RATE, range=SAMPLE_RATES
    )  # Hz of the WAV written; other than 16000: resampled (soxr; BAND_NOTE)


@dataclass
class WaveNetSettings:
    """conf/synthesize/wavenet.yaml: the autoregressive WaveNet of Wave2Midi2Wave."""

    name: str = setting("wavenet", choices=("wavenet",))
    weights: str | None = setting(None, affects_output=False)
    device: str | None = setting(None, device=True, affects_output=False)  # null: the top-level `device` (auto)
    backend: str = setting(
        _AR.backend, choices=("auto", "numba", "torch")
    )  # numba and torch may draw different samples
    threads: int = setting(_AR.threads, range=THREADS, affects_output=False)
    folds: int = setting(_AR.folds, range=FOLDS)
    min_segment_seconds: float = setting(_AR.min_segment_seconds, range=POSITIVE)
    max_segment_seconds: float = setting(_AR.max_segment_seconds, range=POSITIVE)
    warmup_seconds: float = setting(_AR.warmup_seconds, range=NON_NEGATIVE)
    fade_seconds: float = setting(_AR.fade_seconds, range=NON_NEGATIVE)
    crossfade: str = setting(_AR.crossfade, choices=("equal_power", "linear"))
    tail_seconds: float = setting(_AR.tail_seconds, range=NON_NEGATIVE)
    temperature: float = setting(_AR.temperature, range=POSITIVE)
    seed: int = setting(_AR.seed, range=NON_NEGATIVE)
    chunk_samples: int = setting(
        _AR.chunk_samples, range=Range(1, 16000 * 60), affects_output=False
    )  # a minute; never more than a segment
    loudness_lufs: float | None = setting(LOUDNESS_LUFS, range=LOUDNESS)  # null: as rendered
    max_seconds: float | None = setting(7200.0, range=MAX_SECONDS, affects_output=False)
    sample_rate: int = setting(
        SAMPLE_RATE, range=SAMPLE_RATES
    )  # Hz of the WAV written; other than 16000: resampled (soxr; BAND_NOTE)

    def check_more(self, prefix: str = "") -> None:
        """A window of streams is in memory at once: folds x the longest segment with its warm-up and fade."""
        stream = max(self.min_segment_seconds, self.max_segment_seconds) + self.warmup_seconds + self.fade_seconds
        if self.folds * stream > MAX_STREAM_SECONDS:
            key = f"{prefix}.folds" if prefix else "folds"
            allowed = f"at most {MAX_STREAM_SECONDS:g} stream-seconds: folds x (max(min_segment_seconds, max_segment_seconds) + warmup_seconds + fade_seconds) <= {MAX_STREAM_SECONDS:g}, here {self.folds} x {stream:g} s"
            raise SettingsError(key, self.folds, allowed)


@dataclass
class FluidSynthSettings:
    """conf/synthesize/fluidsynth.yaml: FluidSynth through a soundfont (previews, the reference)."""

    name: str = setting("fluidsynth", choices=("fluidsynth",))
    soundfont: str = setting(_FS.soundfont)  # a short name or a path; its file's sha256 is in the sidecar too
    program: int = setting(_FS.program, range=Range(0, 127))
    chunk_seconds: float = setting(_FS.chunk_seconds, range=FLUIDSYNTH_CHUNK_SECONDS, affects_output=False)
    tail_seconds: float = setting(_FS.tail_seconds, range=NON_NEGATIVE)
    loudness_lufs: float | None = setting(LOUDNESS_LUFS, range=LOUDNESS)  # null: as rendered
    max_seconds: float | None = setting(7200.0, range=MAX_SECONDS, affects_output=False)
    sample_rate: int = setting(
        SAMPLE_RATE, range=SAMPLE_RATES
    )  # Hz of the WAV written; other than 16000: resampled (soxr; BAND_NOTE)


SynthesizeSettings = SourceFilterSettings | WaveNetSettings | FluidSynthSettings


class _Keyed:
    """Settings as a cache key: hashed and compared by their JSON (a list setting such as eq_db included), while the
    renderer is loaded from the typed settings themselves."""

    def __init__(self, s: SynthesizeSettings) -> None:
        self.settings = s
        self.key = json.dumps(dataclasses.asdict(s), sort_keys=True)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and self.key == other.key


@lru_cache(maxsize=2)
def _cached(keyed: _Keyed) -> Renderer:
    # one model load per process, whatever the number of pieces
    return load_renderer(keyed.settings.name, keyed.settings)


class Synthesize(Stage):
    name = "synthesize"
    settings = SourceFilterSettings  # the default
    options = {"source_filter": SourceFilterSettings, "wavenet": WaveNetSettings, "fluidsynth": FluidSynthSettings}

    def weights_file(self, s: SynthesizeSettings) -> Path:
        """The renderer's weights file, or FluidSynth's soundfont: its hash goes into the sidecar, so new weights make outputs stale."""
        return _renderer_weights(s.name, s)

    def resolve(self, s: SynthesizeSettings) -> SynthesizeSettings:
        if getattr(s, "backend", None) == "auto":  # the backend auto picks changes the audio, so the sidecar names it
            return dataclasses.replace(s, backend="torch" if str(s.device).startswith("cuda") else "numba")
        return s

    def load(self, s: SynthesizeSettings) -> Renderer:
        """The renderer, its model loaded (or soundfont found) once per process; errors name the file."""
        if s.sample_rate != SAMPLE_RATE:
            log.info(
                "synthesize.sample_rate=%d: audio made at %d Hz is resampled with soxr; %s",
                s.sample_rate,
                SAMPLE_RATE,
                BAND_NOTE,
            )
        return _cached(_Keyed(s))

    def run(self, s: SynthesizeSettings, job: StageJob) -> dict[str, Any]:
        return render(s, job, self.load(s))


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
    from w2m2w.run.progress import progress_bar  # honours progress=false, and stays silent in worker processes

    return progress_bar(
        total=round(seconds, 2),
        desc=f"synthesize {piece}",
        unit="s",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]",
    )


def render(s: SynthesizeSettings, job: StageJob, loaded: Renderer) -> dict[str, Any]:
    """Render job.input (MIDI) into the WAV file job.output with `loaded`; returns note and speed stats."""
    import soundfile as sf

    name = s.name
    notes, warnings = read_notes(job.input)
    for w in warnings:
        log.warning("%s", w)
    rate = getattr(s, "sample_rate", SAMPLE_RATE)
    stats: dict[str, Any] = {"notes": int(len(notes)), "synthesizer": name, "sample_rate": rate}
    if rate != SAMPLE_RATE:
        stats["resampled"] = f"from {SAMPLE_RATE} Hz with soxr (HQ); {BAND_NOTE}"
    if warnings:
        stats["warnings"] = warnings
    renderer = loaded if len(notes) else None
    total = renderer.n_samples(notes) if renderer is not None else int(SILENT_SECONDS * SAMPLE_RATE)
    limit = s.max_seconds
    if limit and total > float(limit) * SAMPLE_RATE:
        raise StageError(
            f"{job.input}: the music lasts {total / SAMPLE_RATE:.0f} s, over synthesize.max_seconds={float(limit):g}; raise it to render this file"
        )
    t0 = time.perf_counter()
    n = 0
    with sf.SoundFile(str(job.output), "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as out:
        if renderer is None:
            for y, _ in audio_chunks(s, notes, None):
                out.write(y)
            stats["audio_seconds"] = SILENT_SECONDS
            return stats
        bar = _progress_bar(job.piece, total / SAMPLE_RATE)

        def advance(seconds: float) -> None:
            bar.update(min(seconds, bar.total - bar.n))  # float sums may overshoot the total by a hair

        try:
            for y, made in audio_chunks(s, notes, renderer, advance, str(job.input)):
                out.write(y)
                n += made
        finally:
            bar.close()
    dt = time.perf_counter() - t0
    stats.update(renderer.describe())
    stats.update(
        audio_seconds=round(n / SAMPLE_RATE, 3),
        render_seconds=round(dt, 3),
        samples_per_second=round(n / dt) if dt > 0 else None,
    )
    return stats


def audio_chunks(
    s: SynthesizeSettings,
    notes: np.ndarray,
    renderer: Renderer | None,
    progress: Callable[[float], None] | None = None,
    name: str = "MIDI",
) -> Iterator[tuple[np.ndarray, int]]:
    """The audio of `notes` as it is written: chunks at s.sample_rate, clipped to [-1, 1], each with the number of 16 kHz
    samples it was made from. The stage's work on one piece, also w2m2w.synthesize's. No notes (or no renderer):
    SILENT_SECONDS of silence. A renderer's RenderError is a StageError naming `name`."""
    rate = getattr(s, "sample_rate", SAMPLE_RATE)
    if renderer is None or not len(notes):
        silent = int(SILENT_SECONDS * SAMPLE_RATE)
        yield np.zeros(round(silent * rate / SAMPLE_RATE), np.float32), silent
        return
    from w2m2w.render.fluidsynth import RenderError

    resample = StreamResampler(SAMPLE_RATE, rate)
    try:
        for y in renderer.stream(notes, progress=progress):  # each renderer knows its own length
            yield np.clip(resample(y), -1.0, 1.0), len(y)
        yield (
            np.clip(resample(np.zeros(0, np.float32), last=True), -1.0, 1.0),
            0,
        )  # what the resampler's filter still holds
    except RenderError as exc:
        raise StageError(f"{name}: {exc}") from None


STAGE = Synthesize()
