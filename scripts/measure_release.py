"""How fast a real piano's notes die away after their release, per register: the source's damping law.

For every labelled note (the teacher's notes, sustain pedal applied, so the
offset is where the damper falls) that no other note sounding from 0.3 s before
its offset to 0.5 s after has a harmonic (up to the 8th) within 0.7 semitones
of its fundamental, the level of the STFT bins around its fundamental is read from 0.3 s
before the offset to 0.5 s after; a line fitted to that level (dB) from 20 to
250 ms after the offset is the release decay, and one from 300 to 50 ms before
it the free decay. The median per octave is printed: the e-folding time of the
amplitude (tau = 20 log10(e) / (dB per second)).

    python scripts/measure_release.py ~/.cache/w2m2w/real_cc0_train

Other notes ring on under the measured one (Bach's counterpoint leaves few
notes alone), so the release measured is an upper bound on tau: the true
damping is at least this fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from w2m2w.audio import load_audio
from w2m2w.midi import load_notes

SR, N_FFT, HOP = 16000, 4096, 80
DB_E = 20.0 * math.log10(math.e)  # dB per e-folding of an amplitude


def fit_slope(t: np.ndarray, db: np.ndarray) -> float:
    """dB per second of a least-squares line through (t, db)."""
    return float(np.polyfit(t, db, 1)[0])


def note_decays(audio: np.ndarray, notes: np.ndarray) -> list[tuple[int, float, float]]:
    """(pitch, release tau s, free tau s) of the notes that can be measured in one recording."""
    import librosa

    S = np.abs(librosa.stft(audio, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2
    freqs = librosa.fft_frequencies(sr=SR, n_fft=N_FFT)
    out = []
    for on, off, p, _ in notes:
        if p < 33 or off - on < 0.4 or off + 0.5 > len(audio) / SR:
            continue  # below A1 the fundamental's bins hold neighbours too; too short to see a free decay
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        others = notes[
            (notes[:, 0] < off + 0.5) & (notes[:, 1] > off - 0.3) & ((notes[:, 0] != on) | (notes[:, 2] != p))
        ]
        partials = 440.0 * 2 ** ((others[:, 2:3] - 69) / 12) * np.arange(1, 9)  # (others, 8): harmonics up to the 8th
        if np.any(np.abs(12 * np.log2(partials / f0)) < 0.7):
            continue  # another note sounds in the fundamental's bins
        band = (freqs > f0 * 2 ** (-0.5 / 12)) & (freqs < f0 * 2 ** (0.5 / 12))
        if not band.any():
            continue
        level = 10 * np.log10(S[band].sum(0) + 1e-12)
        t = np.arange(S.shape[1]) * HOP / SR - off
        rel, free = (t > 0.02) & (t < 0.25), (t > -0.3) & (t < -0.05)
        if rel.sum() < 10 or free.sum() < 10:
            continue
        s_rel, s_free = fit_slope(t[rel], level[rel]), fit_slope(t[free], level[free])
        if s_rel >= 0:
            continue
        out.append((int(p), DB_E / -s_rel, DB_E / -s_free if s_free < 0 else math.inf))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="recordings (.ogg/.flac/.wav) beside same-named .mid labels")
    args = ap.parse_args()
    rows: list[tuple[int, float, float]] = []
    for mid in sorted(args.folder.glob("*.mid")):
        audio = next((mid.with_suffix(s) for s in (".ogg", ".flac", ".wav") if mid.with_suffix(s).is_file()), None)
        if audio is None:
            continue
        rows += note_decays(load_audio(audio), load_notes(mid))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
    print("| octave (MIDI) | notes | release tau s (median, IQR) | release T60 s | free tau s (median) |")
    print("|---|--:|---|--:|--:|")
    for lo in range(24, 108, 12):
        m = (arr[:, 0] >= lo) & (arr[:, 0] < lo + 12)
        if m.sum() < 5:
            continue
        r = arr[m, 1]
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        print(
            f"| {lo}-{lo + 11} | {int(m.sum())} | {med:.3f} ({q1:.3f}-{q3:.3f}) | {med * 60 / DB_E:.2f} | {np.median(arr[m, 2]):.2f} |"
        )


if __name__ == "__main__":
    main()
