"""The files of a training corpus setting (folders, files or glob patterns), found by finding.find_corpus."""

from __future__ import annotations

from w2m2w.finding import MIDI_EXTENSIONS, InputError, find_corpus
from w2m2w.train.loop import TrainingError


def midi_files(specs: list[str], key: str) -> list[str]:
    """The MIDI files that `specs` find, sorted; a spec that finds none is a TrainingError naming `key` and the spec."""
    try:
        return [str(f) for f in find_corpus(specs, MIDI_EXTENSIONS, "MIDI")]
    except InputError as e:
        raise TrainingError(f"{key}: {e}") from None
