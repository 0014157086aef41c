"""The one interface every pipeline stage implements, and a stage paired with its settings.

A stage has a name (its run-directory folder, after the number), a settings
dataclass (its Hydra structured config; fields declared with w2m2w.settings.setting),
a weights file whose hash goes into the sidecar, `load` (models loaded once per
process, before any piece) and `run` (one piece: read job.input, write job.output,
return stats). The stages themselves live in the top-level `stages/` package, which
lists them in order (stages.STAGES) and registers them here (register): the library
never imports `stages`; the edges (cli.py, api.py) hand the stages to the runner.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar

from w2m2w.paths import DEFAULT_WEIGHTS
from w2m2w.settings import output_settings, settings_hash


class StageError(RuntimeError):
    """A piece cannot go through a stage; the message is the one line the user sees."""


@dataclass
class StageJob:
    piece: str
    source: Path  # the user's input file
    input: Path  # the file this stage reads (source or an earlier stage's output)
    output: Path  # temporary path the stage writes; renamed into place on success
    # side outputs (Stage.side_outputs): suffix -> temporary path the stage writes, renamed into place with the output
    extras: dict[str, Path] = field(default_factory=dict)


class Stage:
    """Base of the three stages. Subclasses set `name`, `settings` and `options` and implement weights_file, load and run."""

    name: ClassVar[str]
    settings: ClassVar[type]  # the settings dataclass of its default config
    options: ClassVar[
        dict[str, type]
    ]  # its config group's options (conf/<name>/<option>.yaml) -> their settings dataclass

    def weights_file(self, s: Any) -> Path | None:
        """The file whose sha256 makes outputs stale when it changes (model weights, a soundfont); None if none."""
        return None

    def resolve(self, s: Any) -> Any:
        """`s` with automatic values made explicit where they change the output (what the sidecar records)."""
        return s

    def load(self, s: Any) -> Any:
        """Load what `run` needs once per process (cached); errors name the file. Called before any piece."""
        return None

    def side_outputs(self, s: Any) -> tuple[str, ...]:
        """Suffixes of the files written beside the output under these settings (a score: '.musicxml'); each is
        written to job.extras[suffix] and renamed into place with the output. They share its sidecar: the
        output is current only while they exist too."""
        return ()

    def run(self, s: Any, job: StageJob) -> dict[str, Any]:
        """Turn job.input into job.output (a temporary path) for one piece; returns stats for the sidecar."""
        raise NotImplementedError

    def __reduce__(self) -> tuple:
        # a stage travels to worker processes and Ray actors by name: each process uses its own registered instance
        return registered, (self.name, type(self).__module__)

    def __repr__(self) -> str:
        return f"<stage {self.name}>"


class ModelStage(Stage):
    """A stage that runs one model (transcribe, generate): its weights are the `weights` setting, or the shipped
    file when that is null; loaded once per process (`loader`) on the settings' `device`;
    and, with the `score` setting, a MusicXML score beside the output. Subclasses set `model` and `loader`."""

    model: ClassVar[str]  # its shipped weights: w2m2w.paths.DEFAULT_WEIGHTS[model]
    loader: ClassVar[Callable[[str, str], Any]]  # (weights path, device) -> model; a staticmethod

    def weights_file(self, s: Any) -> Path:
        """s.weights, or the shipped weights/<model>.safetensors when it is null."""
        return Path(s.weights) if s.weights else DEFAULT_WEIGHTS[self.model]

    def load(self, s: Any) -> Any:
        # a run fills in the device (resolve_devices)
        return _loaded(self.loader, str(self.weights_file(s)), s.device or "cpu")

    def side_outputs(self, s: Any) -> tuple[str, ...]:
        return (".musicxml",) if s.score else ()


@lru_cache(maxsize=4)
def _loaded(loader: Callable[[str, str], Any], path: str, device: str) -> Any:
    # one load per process, whatever the number of pieces
    return loader(path, device)


_REGISTRY: dict[str, Stage] = {}


def register(*stages: Stage) -> None:
    """Make `stages` the instances a stage of their name unpickles to (stages/__init__.py registers its stages)."""
    _REGISTRY.update({stage.name: stage for stage in stages})


def registered(name: str, module: str) -> Stage:
    """The registered stage called `name`; a process that has not registered it yet imports the module that defines it
    (by name: its package registers its stages when imported), so the library never imports `stages` itself."""
    if name not in _REGISTRY:
        importlib.import_module(module)
    return _REGISTRY[name]


@dataclass(frozen=True)
class Configured:
    """A stage with its settings: what a runner loads once and then runs piece after piece."""

    stage: Stage
    settings: Any

    @property
    def name(self) -> str:
        return self.stage.name

    @cached_property
    def output_settings(self) -> dict[str, Any]:
        """The settings that change the output, as the sidecar records them."""
        return output_settings(self.stage.resolve(self.settings))

    @cached_property
    def settings_hash(self) -> str:
        return settings_hash(self.stage.resolve(self.settings))

    def weights_file(self) -> Path | None:
        return self.stage.weights_file(self.settings)

    def side_outputs(self) -> tuple[str, ...]:
        return self.stage.side_outputs(self.settings)

    def load(self) -> Any:
        return self.stage.load(self.settings)

    def run(self, job: StageJob) -> dict[str, Any]:
        return self.stage.run(self.settings, job)

    def with_settings(self, **changes: Any) -> Configured:
        """A copy with some settings changed (e.g. device=cuda on a GPU worker)."""
        return Configured(self.stage, dataclasses.replace(self.settings, **changes))
