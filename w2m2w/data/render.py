"""Render note lists to piano audio with FluidSynth (PyPI pyfluidsynth) and Debian soundfonts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import SAMPLE_RATE
from ..midi import notes_to_pretty_midi

# Debian packages: fluid-soundfont-gm, timgm6mb-soundfont, musescore-general-soundfont, csound-soundfont
SOUNDFONTS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "csound": "/usr/share/sounds/sf2/sf_GMbank.sf2",
}


class RenderError(RuntimeError):
    pass


def soundfont_path(name_or_path: str) -> str:
    """Resolve a soundfont short name (see SOUNDFONTS) or a path; RenderError if it is not installed."""
    path = SOUNDFONTS.get(name_or_path, name_or_path)
    if not os.path.isfile(path):
        if name_or_path == "timgm6mb":  # pretty_midi's wheel ships this one
            import pretty_midi

            path = str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2")
        if not os.path.isfile(path):
            raise RenderError(f"soundfont {name_or_path!r} not found at {path}; install it (apt-get install fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont csound-soundfont)")
    return path


def render_notes(notes: np.ndarray, soundfont: str = "fluidr3", sr: int = SAMPLE_RATE, program: int = 0) -> np.ndarray:
    """FluidSynth render of a note list on a General MIDI piano program, float32 (samples,) in [-1, 1].

    Durations should already include the sustain pedal (midi.apply_sustain).
    """
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth)
    except Exception as exc:
        raise RenderError(f"pyfluidsynth is not usable ({exc}); pip install 'w2m2w[render]' and apt-get install fluidsynth") from None
    pm = notes_to_pretty_midi(notes, program=program)
    if len(notes) == 0:
        return np.zeros(int(sr * 0.5), dtype=np.float32)
    y = pm.fluidsynth(fs=sr, sf2_path=soundfont_path(soundfont))
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0:
        y = y / peak * 0.9  # FluidSynth's level depends on polyphony; normalise peaks
    return y.astype(np.float32)
