"""Stacked log-mel spectrograms of the renders of one piece, for the model card.

    python scripts/spectrograms.py AUDIO_DIR [AUDIO_DIR ...] OUT_DIR [--seconds 8] [--start 0] [--limit 3]

Each AUDIO_DIR is the `audio_out` folder of a `python -m w2m2w.evaluate task=synthesis ... audio_out=AUDIO_DIR`
run, holding NAME.SYSTEM.wav files (target, source_filter, source, fluidsynth, wavenet). Writes
OUT_DIR/NAME.png per piece: SECONDS from START of every render found for it, on one colour scale,
the target piano's recording first. Needs matplotlib (pip install 'w2m2w[report]').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from w2m2w.audio import load_audio
    from w2m2w.features import MelConfig, log_mel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", type=Path, nargs="+", help="audio folders, then the output folder")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--limit", type=int, default=3)
    args = ap.parse_args()
    *audio_dirs, out_dir = args.dirs
    if not audio_dirs:
        sys.exit("give at least one audio folder and the output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = MelConfig(hop_length=160)  # 10 ms frames: finer than the transcriber's 32 ms, for the eye
    order = ("target", "source_filter", "source", "wavenet", "fluidsynth")
    titles = {
        "target": "target piano's own recording (held out)",
        "source_filter": "source-filter WaveNet (shipped)",
        "source": "its source alone, unfiltered",
        "wavenet": "autoregressive WaveNet",
        "fluidsynth": "FluidSynth, FluidR3 piano",
    }
    renders: dict[str, dict[str, Path]] = {}
    for d in audio_dirs:
        for p in sorted(d.glob("*.*.wav")):
            stem, system = p.name[:-4].rsplit(".", 1)
            renders.setdefault(stem, {}).setdefault(system, p)
    if not renders:
        sys.exit(f"{', '.join(map(str, audio_dirs))}: no NAME.SYSTEM.wav files")
    a, b = int(args.start * 16000), int((args.start + args.seconds) * 16000)
    for stem in sorted(renders)[: args.limit]:
        systems = sorted(renders[stem], key=lambda k: order.index(k) if k in order else len(order))
        sigs = [load_audio(renders[stem][k])[a:b] for k in systems]
        mels = [
            log_mel(torch.from_numpy(s[None] / max(np.sqrt(np.mean(s**2)), 1e-8)).float(), cfg)[0].numpy() for s in sigs
        ]
        lo, hi = min(m.min() for m in mels), max(m.max() for m in mels)
        fig, axes = plt.subplots(
            len(systems), 1, figsize=(9, 1.9 * len(systems) + 0.6), sharex=True, constrained_layout=True, squeeze=False
        )
        for ax, m, k in zip(axes[:, 0], mels, systems):
            # m: (frames, n_mels); time runs along x
            im = ax.imshow(
                m.T,
                origin="lower",
                aspect="auto",
                vmin=lo,
                vmax=hi,
                cmap="magma",
                extent=(args.start, args.start + m.shape[0] * cfg.hop_length / 16000, 0, m.shape[1]),
            )
            ax.set_title(titles.get(k, k), fontsize=9)
            ax.set_ylabel("mel bin")
        axes[-1, 0].set_xlabel("seconds")
        fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.8, label="log mel (unit-RMS audio)")
        fig.suptitle(stem, fontsize=10)
        out = out_dir / f"{stem}.png"
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(out)


if __name__ == "__main__":
    main()
