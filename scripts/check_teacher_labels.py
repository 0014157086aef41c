"""How well the teacher's labels of the real recordings fit the audio: onsets against the attacks, velocities
against loudness. Prints markdown tables.

    python scripts/check_teacher_labels.py ~/.cache/w2m2w/real_cc0_all [--max-seconds 120]
    python scripts/check_teacher_labels.py ../shared/data/audio/maps_synth/tsv --audio ../shared/data/audio/maps_synth/flac \
        --include '*SptkBGCl*' --max-seconds 120     # the yardstick: labels exact by construction

The folder holds labels, NAME.mid or NAME.tsv, with their recordings, NAME.ogg/.flac/.wav, beside them or in
--audio (scripts/real_piano_folder.py writes the real recordings' pairs from Transkun's labels). Run on a set
whose labels are exact (MAPS's renders) it measures the measure itself: what it reads there is the method's
own offset, to subtract from what it reads on the teacher's labels.

- Onsets: each onset (notes starting within 10 ms of each other are one onset) is compared with the peak of the
  recording's spectral flux (librosa's onset strength, 2 ms hops, 512-point frames) within +-40 ms of it. Only
  onsets with no other onset within 80 ms are used, so that the peak found is theirs. The table gives the
  offsets (peak minus label) in ms: a systematic lead or lag would show as a median away from 0.
- Velocities: for onsets of one note with no other onset within 150 ms, the rise in level (dB, RMS over 20 ms
  after the onset minus 20 ms before) against the label's MIDI velocity, per velocity band, and Spearman's rank
  correlation between the two: velocities that follow loudness rise with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOP = 32  # samples at 16 kHz: 2 ms


def onset_groups(notes: np.ndarray, join: float = 0.010) -> list[np.ndarray]:
    """Notes (n, 4) sorted by onset, grouped where consecutive onsets lie within `join` seconds."""
    notes = notes[np.argsort(notes[:, 0], kind="stable")]
    groups, start = [], 0
    for i in range(1, len(notes) + 1):
        if i == len(notes) or notes[i, 0] - notes[i - 1, 0] > join:
            groups.append(notes[start:i])
            start = i
    return groups


def isolated(times: np.ndarray, gap: float) -> np.ndarray:
    """(n,) bool: True where no other time lies within `gap` seconds (times sorted)."""
    before = np.diff(times, prepend=-np.inf) > gap
    after = np.diff(times, append=np.inf) > gap
    return before & after


def main() -> None:
    import librosa
    from scipy.stats import spearmanr

    from w2m2w.audio import load_audio
    from w2m2w.midi import load_notes

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--audio", type=Path, default=None, help="where the recordings are (default: beside the labels)")
    ap.add_argument("--include", default="*", help="only labels whose file name matches this glob")
    ap.add_argument("--max-seconds", type=float, default=None, help="read only the first N seconds of each piece")
    args = ap.parse_args()
    sr = 16000
    offsets, rises, vels = [], [], []

    def recording(label: Path) -> Path | None:
        for suffix in (".ogg", ".flac", ".wav"):
            path = (args.audio or label.parent) / (label.stem + suffix)
            if path.is_file():
                return path
        return None

    labels = [p for p in sorted(args.folder.glob(args.include)) if p.suffix in (".mid", ".tsv")]
    pieces = [(p, recording(p)) for p in labels if recording(p) is not None]
    if not pieces:
        sys.exit(f"{args.folder}: no NAME.mid or NAME.tsv with its recording (NAME.ogg, .flac or .wav)")
    for label, audio in pieces:
        y = load_audio(audio, max_seconds=None)
        if args.max_seconds:
            y = y[: int(args.max_seconds * sr)]
        notes = load_notes(label, apply_pedal=False)
        notes = notes[notes[:, 0] < len(y) / sr - 0.1]
        flux = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP, n_fft=512, center=True)
        groups = onset_groups(notes)
        times = np.array([g[0, 0] for g in groups])
        lone = isolated(times, 0.080)
        for t in times[lone]:
            c = int(round(t * sr / HOP))
            lo, hi = max(c - 20, 0), min(c + 21, len(flux))  # +-40 ms
            if hi - lo < 41:
                continue
            offsets.append((lo + int(np.argmax(flux[lo:hi])) - c) * HOP / sr * 1000)
        single = isolated(times, 0.150)
        for g, ok in zip(groups, single, strict=True):
            if not ok or len(g) != 1:
                continue
            i = int(round(g[0, 0] * sr))
            pre, post = y[max(i - 320, 0) : i], y[i : i + 320]
            if len(pre) < 320 or len(post) < 320:
                continue
            db = 20 * np.log10((np.sqrt(np.mean(post**2)) + 1e-9) / (np.sqrt(np.mean(pre**2)) + 1e-9))
            rises.append(db)
            vels.append(g[0, 3])
    offsets, rises, vels = np.array(offsets), np.array(rises), np.array(vels)
    print(f"{len(pieces)} pieces; {len(offsets)} isolated onsets; {len(rises)} lone single notes\n")
    print("| onset offset (flux peak - label), ms | median | quartiles | within +-5 ms | within +-10 ms |")
    print("|---|--:|--:|--:|--:|")
    q1, q3 = np.percentile(offsets, [25, 75])
    print(
        f"| all isolated onsets | {np.median(offsets):+.1f} | {q1:+.1f} / {q3:+.1f} | "
        f"{np.mean(np.abs(offsets) <= 5):.0%} | {np.mean(np.abs(offsets) <= 10):.0%} |"
    )
    print("\n| label velocity | notes | level rise dB (median) |\n|---|--:|--:|")
    for lo, hi in ((1, 40), (40, 55), (55, 70), (70, 85), (85, 128)):
        sel = (vels >= lo) & (vels < hi)
        if sel.any():
            print(f"| {lo}-{hi - 1} | {int(sel.sum())} | {np.median(rises[sel]):+.1f} |")
    rho = spearmanr(vels, rises).statistic if len(vels) > 2 else float("nan")
    print(f"\nSpearman's rho, label velocity against level rise: {rho:.2f}")


if __name__ == "__main__":
    main()
