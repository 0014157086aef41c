"""The log-mel distance between two FluidSynth pianos on the same MIDI: a scale for the WaveNet's figure.

    python scripts/soundfont_distance.py LIST_OR_FOLDER [--a fluidr3] [--b musescore] [--seconds 30]

Renders the first SECONDS of every MIDI file (a folder, a file or a .txt list, as
`evaluate task=synthesis` reads them) with soundfonts A and B and prints the mean
w2m2w.evaluate.synthesis.log_mel_distance between the two renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from w2m2w.data.transcription import crop_notes
    from w2m2w.evaluate.synthesis import log_mel_distance, midi_inputs
    from w2m2w.midi import load_midi_notes
    from w2m2w.render.fluidsynth import render_notes
    from w2m2w.render.wavenet import clean_notes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("--a", default="fluidr3")
    ap.add_argument("--b", default="musescore")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    dist = []
    for name, path in midi_inputs(args.input):
        notes = crop_notes(clean_notes(load_midi_notes(path))[0], 0.0, args.seconds)
        dist.append(log_mel_distance(render_notes(notes, args.a), render_notes(notes, args.b)))
        print(f"{name}: {dist[-1]:.3f}")
    print(
        f"{args.a} vs {args.b}: mean {np.mean(dist):.2f}, per file {min(dist):.2f}..{max(dist):.2f} ({len(dist)} files)"
    )


if __name__ == "__main__":
    main()
