"""Fixtures of the run-folder e2e tests (the rerun matrix and the no-loss faults)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def weights(tiny_transcriber, tiny_music_transformer, tiny_source_filter) -> list[str]:
    """run.py arguments that run every stage with the tiny test models, fast."""
    return [
        f"transcribe.weights={tiny_transcriber}",
        f"generate.weights={tiny_music_transformer}",
        "generate.seconds=1",
        "generate.context=128",
        f"synthesize.weights={tiny_source_filter}",
        "progress=false",
    ]
