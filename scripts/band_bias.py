"""Band by band: how a synthesizer's spectrum differs from its target piano's on the same notes.

Each note file is rendered (first --seconds) and compared with the target's own
recording of it. Both are scaled to unit RMS; the long-term average spectrum
(power, 2048-point STFT) is summed per octave band (w2m2w.render.eq.BANDS_HZ)
and the model's level minus the target's is the band's bias, in dB, averaged
over the pieces; so is the mean of the log-mel difference per band (evaluate's
distance before its absolute value: the bias in it). --fit prints the EQ that
takes the log-mel bias out (synthesize.eq_db), to be measured on pieces it was
not fitted on.

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


def log_mel_bias(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(bands,) dB: the mean over frames and mel bins in each octave band of log mel(y) - log mel(ref), both at unit
    RMS (evaluate's log-mel distance before its absolute value: its bias, the part a fixed EQ can take out)."""
    import librosa
    import torch

    from w2m2w.features import MelConfig, log_mel

    cfg = MelConfig()
    n = min(len(y), len(ref))
    x = np.stack([y[:n], ref[:n]]).astype(np.float64)
    x = x / np.maximum(np.sqrt(np.mean(x**2, axis=1, keepdims=True)), 1e-8)
    mel = log_mel(
        torch.from_numpy(x.astype(np.float32)), cfg
    ).numpy()  # (2, frames, bins) or (2, bins, frames): natural log
    d = mel[0] - mel[1]
    centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
    axis = 1 if d.shape[1] == cfg.n_mels else 0
    per_bin = d.mean(axis=1 - axis) * 10 / np.log(10)  # nats of power -> dB
    lo, hi = np.array(BANDS_HZ) / np.sqrt(2), np.array(BANDS_HZ) * np.sqrt(2)
    return np.array(
        [
            per_bin[(centres >= a) & (centres < b)].mean() if ((centres >= a) & (centres < b)).any() else np.nan
            for a, b in zip(lo, hi)
        ]
    )


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
    ap.add_argument(
        "--set", nargs="*", default=[], help="renderer settings KEY=VALUE (weights=..., eq_db=[...], soundfont=...)"
    )
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fit", action="store_true", help="print the eq_db that takes the bias out (clipped to +-15 dB)")
    args = ap.parse_args()
    settings = {
        "threads": 2,
        "loudness_lufs": None,
        **{k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)},
    }
    renderer = load_renderer(args.synthesizer, settings)
    refs = reference_audio(args.reference)
    rows, mel_rows, dists = [], [], []
    for name, path in note_inputs(args.notes):
        notes, _ = clean_notes(load_notes(path))
        notes = crop_notes(notes, 0.0, args.seconds)
        if not len(notes) or path.stem not in refs:
            continue
        ref = load_audio(refs[path.stem])[: int(args.seconds * SR)]
        y = renderer.render(notes, len(ref))
        rows.append(band_levels(y) - band_levels(ref))
        mel_rows.append(log_mel_bias(y, ref))
        dists.append(log_mel_distance(y, ref))
        print(f"{name}: distance {dists[-1]:.3f}", flush=True)
    bias = np.mean(rows, 0)
    print(
        f"\n{args.synthesizer} {settings}: {len(rows)} pieces, {args.seconds:g} s each; log-mel distance {np.mean(dists):.3f}"
    )
    print("| band (Hz) | " + " | ".join(f"{b:g}" for b in BANDS_HZ) + " |")
    print("|---|" + "--:|" * len(BANDS_HZ))
    mel_bias = np.nanmean(mel_rows, 0)
    print("| long-term spectrum, dB (model - target) | " + " | ".join(f"{b:+.1f}" for b in bias) + " |")
    print("| its spread over pieces (sd) | " + " | ".join(f"{s:.1f}" for s in np.std(rows, 0)) + " |")
    print("| log-mel bias, dB (mean of model - target) | " + " | ".join(f"{b:+.1f}" for b in mel_bias) + " |")
    print("| its spread over pieces (sd) | " + " | ".join(f"{s:.1f}" for s in np.nanstd(mel_rows, 0)) + " |")
    if args.fit:  # the log-mel bias: what the distance counts (the long-term spectrum weighs the loud frames alone)
        gains = np.nan_to_num(-mel_bias, nan=0.0)
        print("eq_db=" + json.dumps([round(float(g), 1) for g in np.clip(gains, -15, 15)]))


if __name__ == "__main__":
    main()
