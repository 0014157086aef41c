"""Where things are: the repository's folders and each model's shipped weights, in one place."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"  # the Hydra configs of run.py, `python -m w2m2w.train` and `python -m w2m2w.evaluate`
WEIGHTS = REPO / "weights"  # the shipped weights, their model card and SHA256SUMS
DEMO_DIR = REPO / "assets" / "demo"
DEMO_INPUT = DEMO_DIR / "bach_prelude_c.flac"  # what `python run.py` runs on with no input

# each model's default weights (a setting `weights=` overrides them)
DEFAULT_WEIGHTS = {
    "onsets_frames": WEIGHTS / "onsets_frames.safetensors",
    "music_transformer": WEIGHTS / "music_transformer.safetensors",
    "source_filter_wavenet": WEIGHTS / "source_filter_wavenet.safetensors",
    "wavenet": WEIGHTS / "wavenet.safetensors",
    "beat_tracker": WEIGHTS / "beat_tracker.safetensors",
}
