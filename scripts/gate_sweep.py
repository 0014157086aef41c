"""Silence and distance of a source-filter model against its output gate's lead and ramp.

    python scripts/gate_sweep.py --weights weights/source_filter_wavenet_real.safetensors \
        --notes runs/sf_real/validation_notes.txt --audio runs/sf_real/validation_audio.txt

Each piece's first --seconds of notes is rendered as the synthesize stage renders it (its end and -20 LUFS level
included) with the gate at the weights' own lead and ramp and at lead 0 with shorter ramps; the silence is
`evaluate`'s (RMS where no note sounds: before the first onset and over 1 s after every offset), the distance
`evaluate`'s log-mel distance to the recording's first --seconds + 2.5 s. "Away from onsets" counts the 50 ms
before each onset as sounding: what it still reads is not the filter's pre-echo. The filter is non-causal, so whatever
the gate lets through before a note's onset is its pre-echo; the table shows what each setting leaves of it.
Prints a markdown table of the means over the pieces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

GATES = [(None, None), (0, None), (0, 64), (0, 32), (0, 16)]  # (gate_margin, gate_ramp); None: the weights' own


def main() -> None:
    from stages.synthesize import SourceFilterSettings
    from w2m2w.audio import load_audio
    from w2m2w.constants import SAMPLE_RATE as SR
    from w2m2w.evaluate.synthesis import TAIL_SECONDS, log_mel_distance, silence_dbfs
    from w2m2w.midi import load_midi_notes
    from w2m2w.render.registry import load_renderer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--notes", required=True, help="a text file listing MIDI files, one per line")
    ap.add_argument("--audio", required=True, help="a text file listing their recordings, in the same order")
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    notes_files = Path(args.notes).read_text().split()
    audio_files = Path(args.audio).read_text().split()
    n = int((args.seconds + TAIL_SECONDS) * SR)
    rows = {g: [] for g in GATES}
    for midi, audio in zip(notes_files, audio_files, strict=True):
        notes = load_midi_notes(midi)
        notes = notes[notes[:, 0] < args.seconds]
        notes[:, 1] = np.minimum(notes[:, 1], args.seconds)
        target = load_audio(audio)[:n]
        for margin, ramp in GATES:
            s = SourceFilterSettings(weights=args.weights, gate_margin=margin, gate_ramp=ramp, threads=1)
            y = load_renderer("source_filter", s).render(notes, n)
            # the silence again with the 50 ms before every onset counted as sounding: what is left is not pre-echo
            early = notes.copy()
            early[:, 0] -= 0.05
            row = (silence_dbfs(y, notes), silence_dbfs(y, early), log_mel_distance(y, target))
            rows[(margin, ramp)].append(row)
            print(f"{Path(midi).stem}: gate_margin={margin} gate_ramp={ramp}: silence {row[0]:.1f} dBFS "
                  f"({row[1]:.1f} away from onsets), distance {row[2]:.4f}", flush=True)  # fmt: skip
    print("\n| gate_margin | gate_ramp | silence dBFS (mean) | silence away from onsets | distance (mean) |")
    print("|---|---|--:|--:|--:|")
    for (margin, ramp), vals in rows.items():
        sil, away, dist = np.mean(vals, axis=0)
        own = "the weights' own"
        print(
            f"| {own if margin is None else margin} | {own if ramp is None else ramp} | {sil:.1f} | {away:.1f} | {dist:.4f} |"
        )


if __name__ == "__main__":
    main()
