"""The bundled demo: the opening bars of Bach's Prelude in C major (BWV 846, public domain),
written out in code and rendered with the project's FluidSynth renderer.

`python -m w2m2w.demo` rewrites assets/demo/bach_prelude_c.{flac,mid}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# five pitches per bar: two held bass notes, then three figuration notes played twice per half bar
BWV846_BARS = [
    (60, 64, 67, 72, 76),
    (60, 62, 69, 74, 77),
    (59, 62, 67, 74, 77),
    (60, 64, 67, 72, 76),
    (60, 64, 69, 76, 81),
    (60, 62, 66, 69, 74),
    (59, 62, 67, 74, 79),
    (59, 60, 64, 67, 72),
]


def bach_prelude_notes(bars: int = 8, bpm: float = 72.0, seed: int = 846) -> np.ndarray:
    """Note list (n, 4) of the first `bars` bars with a little human velocity variation."""
    rng = np.random.default_rng(seed)
    six = 60.0 / bpm / 4  # a sixteenth note, seconds
    notes = []
    for b, (p1, p2, p3, p4, p5) in enumerate(BWV846_BARS[:bars]):
        for half in range(2):
            t0 = (b * 16 + half * 8) * six
            end = t0 + 8 * six
            notes.append((t0, end, p1, 62))
            notes.append((t0 + six, end, p2, 58))
            for i, p in enumerate((p3, p4, p5, p3, p4, p5)):
                on = t0 + (2 + i) * six
                notes.append((on, on + six * 0.95, p, 70 + (8 if i % 3 == 0 else 0)))
    arr = np.array(notes, dtype=np.float64)
    arr[:, 3] = np.clip(arr[:, 3] + rng.integers(-5, 6, len(arr)), 1, 127)
    return arr


def make_demo(folder: str | Path, soundfont: str = "fluidr3") -> Path:
    """Render the demo recording (and its ground-truth MIDI) into `folder`; returns the FLAC path."""
    import soundfile as sf

    from w2m2w.constants import SAMPLE_RATE
    from w2m2w.midi import write_midi
    from w2m2w.render.fluidsynth import render_notes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    notes = bach_prelude_notes()
    y = render_notes(notes, soundfont)
    flac = folder / "bach_prelude_c.flac"
    sf.write(str(flac), y, SAMPLE_RATE)
    write_midi(folder / "bach_prelude_c.mid", notes)
    return flac


if __name__ == "__main__":
    from w2m2w.paths import DEMO_DIR

    print(make_demo(DEMO_DIR))
