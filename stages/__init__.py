"""The pipeline's stages, in order: each implements w2m2w.run.stage.Stage (name, settings, load once, run one piece)."""

from __future__ import annotations

from stages import generate, synthesize, transcribe
from w2m2w.run.stage import Stage, register

STAGES: tuple[Stage, ...] = (transcribe.STAGE, generate.STAGE, synthesize.STAGE)
_BY_NAME = {s.name: s for s in STAGES}
register(*STAGES)  # what a stage unpickles to in worker processes and Ray actors


def get(name: str) -> Stage:
    """The registered stage called `name` (KeyError for any other)."""
    return _BY_NAME[name]


def names() -> list[str]:
    return [s.name for s in STAGES]
