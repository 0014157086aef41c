"""One interface for everything that turns notes into audio, and the registry of implementations.

The synthesize stage, `evaluate task=synthesis` and the benchmarks see only
this interface; which renderer runs is a name and its settings:

- `source_filter`: the source-filter WaveNet (w2m2w.models.source_filter), the default;
- `wavenet`: the autoregressive WaveNet of Wave2Midi2Wave (w2m2w.models.wavenet);
- `fluidsynth`: FluidSynth with a soundfont, the reference and a quick preview.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from w2m2w import paths
from w2m2w.constants import SAMPLE_RATE
from w2m2w.settings import carried

RENDERERS = ("source_filter", "wavenet", "fluidsynth")
# The source-filter WaveNet's shipped pianos by short name (`synthesize.weights=sptkbgcl`): the same architecture
# trained on two targets, so two files of one model (weights/README.md says why the real one is the default)
PIANOS = {
    "real": paths.DEFAULT_WEIGHTS["source_filter_wavenet_real"],
    "sptkbgcl": paths.DEFAULT_WEIGHTS["source_filter_wavenet"],
}
DEFAULT_WEIGHTS = {
    "source_filter": PIANOS["real"],
    "wavenet": paths.DEFAULT_WEIGHTS["wavenet"],
}


class Renderer(Protocol):
    """Notes (n, 4: onset s, offset s, MIDI pitch, velocity; pedal applied, inside the 88 keys) -> 16 kHz mono audio."""

    name: str
    sample_rate: int
    backend: str

    def n_samples(self, notes: np.ndarray) -> int:
        """Samples a render of `notes` lasts by default (the last note's release included)."""

    def stream(
        self, notes: np.ndarray, n_samples: int | None = None, progress: Callable[[float], None] | None = None
    ) -> Iterator[np.ndarray]:
        """float32 chunks in order, n_samples in all; progress receives seconds rendered."""

    def render(self, notes: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        """The whole render in memory (short pieces, tests, evaluation)."""

    def describe(self) -> dict[str, Any]:
        """Facts for the sidecar (backend, ...)."""


@dataclass
class FluidSynthConfig:
    """FluidSynth's settings, as the source-filter and autoregressive renderers have theirs."""

    soundfont: str = "fluidr3"  # a short name (fluidsynth.SOUNDFONTS) or a path
    program: int = 0  # General MIDI program: 0, the acoustic grand
    chunk_seconds: float = 10.0  # rendered at a time
    tail_seconds: float = 5.0  # at most this long after the last note-off (finish ends it where the sound has died)


class FluidSynthRenderer:
    """FluidSynth through a soundfont (w2m2w.render.fluidsynth): peaks normalised to 0.9, ringing up to tail_seconds
    after the last note-off (w2m2w.render.finish ends it where the sound has died away), its +-1 LSB dither removed
    (stream_notes' undither) so that silence is exact."""

    name = "fluidsynth"
    backend = "fluidsynth"

    def __init__(self, config: FluidSynthConfig | None = None, sample_rate: int = SAMPLE_RATE):
        from w2m2w.render.fluidsynth import soundfont_path

        config = config or FluidSynthConfig()
        self.soundfont_file = soundfont_path(config.soundfont)  # RenderError names it when it is not installed
        self.soundfont, self.program, self.sample_rate = config.soundfont, int(config.program), sample_rate
        self.chunk_seconds, self.tail_seconds = float(config.chunk_seconds), float(config.tail_seconds)

    def n_samples(self, notes: np.ndarray) -> int:
        end = float(notes[:, 1].max()) if len(notes) else 0.0
        return max(1, math.ceil((end + self.tail_seconds) * self.sample_rate))

    def stream(
        self, notes: np.ndarray, n_samples: int | None = None, progress: Callable[[float], None] | None = None
    ) -> Iterator[np.ndarray]:
        from w2m2w.render.fluidsynth import stream_notes

        left = None if n_samples is None else int(n_samples)
        for y in stream_notes(
            notes, self.soundfont, self.sample_rate, self.program, self.chunk_seconds, self.tail_seconds, undither=True
        ):
            if left is not None:
                y = y[:left]
                left -= len(y)
            if progress is not None:
                progress(len(y) / self.sample_rate)
            if len(y):
                yield y
        if left:  # asked for more than FluidSynth rendered: silence
            yield np.zeros(left, np.float32)

    def render(self, notes: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        parts = list(self.stream(notes, n_samples))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "soundfont": self.soundfont}


def weights_file(name: str, settings: Mapping[str, Any] | Any) -> Path:
    """What identifies the renderer's sound: the weights file, or FluidSynth's soundfont file."""
    if name == "fluidsynth":
        from w2m2w.render.fluidsynth import SOUNDFONTS, RenderError, soundfont_path

        soundfont = render_config(name, settings).soundfont
        try:
            return Path(soundfont_path(soundfont))
        except RenderError:
            return Path(SOUNDFONTS.get(soundfont, soundfont))
    if name not in RENDERERS:
        raise ValueError(f"unknown synthesizer {name!r}: choose one of {', '.join(RENDERERS)}")
    weights = _setting(settings, "weights")
    if name == "source_filter" and weights in PIANOS:
        return PIANOS[weights]
    return Path(weights) if weights else DEFAULT_WEIGHTS[name]


def load_renderer(name: str, settings: Mapping[str, Any] | Any) -> Renderer:
    """A ready renderer (model loaded once) from its name and settings (a synthesize stage's settings dataclass, or a
    mapping of its keys), finished (w2m2w.render.finish): its output ends where its sound has decayed, goes through
    eq_db (gains per octave band) if given and, with loudness_lufs, is brought to that loudness.

    Raises ValueError for an unknown name, WeightsError or RenderError (one line naming the file) when
    the weights or soundfont are unusable.
    """
    from w2m2w.render.finish import Finished

    return Finished(_load(name, settings), _setting(settings, "loudness_lufs"), _setting(settings, "eq_db"))


def render_config(name: str, settings: Mapping[str, Any] | Any) -> Any:
    """The config dataclass renderer `name` is built with: its fields taken by name from `settings` (the synthesize
    stage's settings dataclass or a mapping of its keys; settings.carried), the others at their defaults, as is a
    device set to None (automatic: the stage's device before a run fills it in). Other settings keep a None: it has
    a meaning of its own (the source-filter gate's: the weights' own). The one place settings become a renderer's."""
    cls = _config_class(name)
    config = carried(cls, settings)
    if getattr(config, "device", "") is None:
        config = dataclasses.replace(config, device=cls().device)
    return config


def _setting(settings: Mapping[str, Any] | Any, key: str) -> Any:
    """One setting by name from a mapping or a settings dataclass; None where it has none."""
    return settings.get(key) if isinstance(settings, Mapping) else getattr(settings, key, None)


def _config_class(name: str) -> type:
    if name == "fluidsynth":
        return FluidSynthConfig
    if name == "source_filter":
        from w2m2w.render.source_filter import SourceFilterRenderConfig

        return SourceFilterRenderConfig
    if name == "wavenet":
        from w2m2w.render.wavenet import SynthesisConfig

        return SynthesisConfig
    raise ValueError(f"unknown synthesizer {name!r}: choose one of {', '.join(RENDERERS)}")


def _load(name: str, settings: Mapping[str, Any] | Any) -> Renderer:
    """The renderer itself, as it renders."""
    config = render_config(name, settings)
    if name == "fluidsynth":
        return FluidSynthRenderer(config)
    path = weights_file(name, settings)
    device = str(_setting(settings, "device") or "cpu")
    if name == "source_filter":
        from w2m2w.render.source_filter import SourceFilterRenderer, load_source_filter

        return SourceFilterRenderer(load_source_filter(path, device), config)
    from w2m2w.render.wavenet import Synthesizer, load_wavenet

    return Synthesizer(load_wavenet(path, device), config)
