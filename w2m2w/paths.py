"""Where things are: the package's data (Hydra configs, shipped weights, the demo recording), in one place.

The lookup rule: everything is found beside this file, inside the installed package. In a checkout,
w2m2w/conf, w2m2w/weights and w2m2w/assets are symlinks to the top-level conf/, weights/ and assets/ (the
files live once, where the design puts them); `pip install .` and a built wheel copy their contents into
the package (package data in pyproject.toml), so an installed w2m2w finds the same files with no checkout.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CONF = (
    PACKAGE / "conf"
)  # the Hydra configs of the `w2m2w` command, `python -m w2m2w.train` and `python -m w2m2w.evaluate`
WEIGHTS = PACKAGE / "weights"  # the shipped weights, their model card and SHA256SUMS
DEMO_DIR = PACKAGE / "assets" / "demo"
DEMO_INPUT = DEMO_DIR / "bach_prelude_c.flac"  # what `w2m2w` runs on with no input

# each model's default weights (a setting `weights=` overrides them)
DEFAULT_WEIGHTS = {
    "onsets_frames": WEIGHTS / "onsets_frames.safetensors",
    "music_transformer": WEIGHTS / "music_transformer.safetensors",
    "source_filter_wavenet": WEIGHTS
    / "source_filter_wavenet.safetensors",  # its target: MAPS's SptkBGCl software piano
    "source_filter_wavenet_real": WEIGHTS / "source_filter_wavenet_real.safetensors",  # a real Bosendorfer grand
    "wavenet": WEIGHTS / "wavenet.safetensors",
    "beat_tracker": WEIGHTS / "beat_tracker.safetensors",
}
