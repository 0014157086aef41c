"""Band by band: how a synthesizer's spectrum differs from its target piano's on the same notes.

Each note file is rendered (first --seconds) and compared with the target's own
recording of it. Both are scaled to unit RMS; the long-term average spectrum
(power, 2048-point STFT) is summed per octave band (w2m2w.render.eq.BANDS_HZ)
and the model's level minus the target's is the band's bias, in dB, averaged
over the pieces. --fit prints the EQ that takes it out (synthesize.eq_db), to be
measured on pieces it was not fitted on.

    python scripts/band_bias.py --notes NOTES --reference AUDIO [--set synthesize-key=value ...] [--fit]

NOTES and AUDIO as evaluate takes them (folders or .txt lists, matched by file stem).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from w2m2w.render.eq import BANDS_HZ

SR, N_FFT = 16000, 2048


def band_levels(y: np.ndarray) -> np.ndarray:
    """(bands,) dB of the unit-RMS signal's average power per octave band (the last band ends at Nyquist)."""
    import librosa

    y = y / max(float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))), 1e-12)
    p = (np.abs(librosa.stft(y.astype(np.float32), n_fft=N_FFT, hop_length=N_FFT // 4)) ** 2).mean(1)
    f = librosa.fft_frequencies(sr=SR, n_fft=N_FFT)
    lo = np.array(BANDS_HZ) / np.sqrt(2)
    hi = np.minimum(np.array(BANDS_HZ) * np.sqrt(2), SR / 2 + 1)
    return np.array([10 * np.log10(p[(f >= a) & (f < b)].sum() + 1e-20) for a, b in zip(lo, hi)])


def parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def main() -> None:
    from w2m2w.audio import load_audio
    from w2m2w.data.transcription import crop_notes
    from w2m2w.evaluate.synthesis import log_mel_distance, note_inputs, reference_audio
    from w2m2w.midi import load_notes
    from w2m2w.render.registry import load_renderer
    from w2m2w.render.wavenet import clean_notes

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--synthesizer", default="source_filter")
    ap.add_argument("--set", nargs="*", default=[], help="renderer settings KEY=VALUE (weights=..., eq_db=[...], soundfont=...)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fit", action="store_true", help="print the eq_db that takes the bias out (clipped to +-15 dB)")
    args = ap.parse_args()
    settings = {"threads": 2, "loudness_lufs": None, **{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}}
    renderer = load_renderer(args.synthesizer, settings)
    refs = reference_audio(args.reference)
    rows, dists = [], []
    for name, path in note_inputs(args.notes):
        notes, _ = clean_notes(load_notes(path))
        notes = crop_notes(notes, 0.0, args.seconds)
        if not len(notes) or path.stem not in refs:
            continue
        ref = load_audio(refs[path.stem])[: int(args.seconds * SR)]
        y = renderer.render(notes, len(ref))
        rows.append(band_levels(y) - band_levels(ref))
        dists.append(log_mel_distance(y, ref))
        print(f"{name}: distance {dists[-1]:.3f}", flush=True)
    bias = np.mean(rows, 0)
    print(f"\n{args.synthesizer} {settings}: {len(rows)} pieces, {args.seconds:g} s each; log-mel distance {np.mean(dists):.3f}")
    print("| band (Hz) | " + " | ".join(f"{b:g}" for b in BANDS_HZ) + " |")
    print("|---|" + "--:|" * len(BANDS_HZ))
    print("| bias dB (model - target) | " + " | ".join(f"{b:+.1f}" for b in bias) + " |")
    print("| spread over pieces (sd) | " + " | ".join(f"{s:.1f}" for s in np.std(rows, 0)) + " |")
    if args.fit:
        print("eq_db=" + json.dumps([round(float(g), 1) for g in np.clip(-bias, -15, 15)]))


if __name__ == "__main__":
    main()
