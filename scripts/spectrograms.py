"""Side-by-side log-mel spectrograms of WaveNet and FluidSynth renders, for the model card.

    python scripts/spectrograms.py AUDIO_DIR OUT_DIR [--seconds 8] [--limit 3]

AUDIO_DIR is the `audio_out` folder of `python -m w2m2w.evaluate task=synthesis ... audio_out=AUDIO_DIR`,
holding NAME.wavenet.wav and NAME.fluidsynth.wav pairs. Writes OUT_DIR/NAME.png per pair:
the first SECONDS of each render, same colour scale, FluidSynth above, WaveNet below.
Needs matplotlib (pip install 'w2m2w[report]').
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
    ap.add_argument("audio_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--limit", type=int, default=3)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cfg = MelConfig(hop_length=160)  # 10 ms frames: finer than the transcriber's 32 ms, for the eye
    pairs = sorted(args.audio_dir.glob("*.wavenet.wav"))[: args.limit]
    if not pairs:
        sys.exit(f"{args.audio_dir}: no *.wavenet.wav files")
    for wn in pairs:
        stem = wn.name[: -len(".wavenet.wav")]
        fs = wn.with_name(f"{stem}.fluidsynth.wav")
        sigs = [load_audio(p)[: int(args.seconds * 16000)] for p in (fs, wn)]
        mels = [log_mel(torch.from_numpy(s[None] / max(np.sqrt(np.mean(s ** 2)), 1e-8)).float(), cfg)[0].numpy() for s in sigs]
        lo, hi = min(m.min() for m in mels), max(m.max() for m in mels)
        fig, axes = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True, constrained_layout=True)
        for ax, m, title in zip(axes, mels, ("FluidSynth (FluidR3 piano, the reference)", "WaveNet (weights/wavenet.safetensors)")):
            # m: (frames, n_mels); time runs along x
            im = ax.imshow(m.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                           extent=(0, m.shape[0] * cfg.hop_length / 16000, 0, m.shape[1]))
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("mel bin")
        axes[-1].set_xlabel("seconds")
        fig.colorbar(im, ax=axes, shrink=0.8, label="log mel (unit-RMS audio)")
        fig.suptitle(stem, fontsize=10)
        out = args.out_dir / f"{stem}.png"
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(out)


if __name__ == "__main__":
    main()
