"""Graft one sub-network of a weights file onto another: the base file with the donor's tensors under --take.

A head with its own stack (the transcriber's pedal head: its own conv stack, BiLSTM and output,
nothing shared with the note heads) can be trained in a run of its own and then joined to note
heads trained elsewhere. Both files must hold the same model with the same config, so every
grafted tensor fits where it goes; the result's training metadata keeps the base's and records
the graft (donor file, its sha256, the prefixes and the donor's own training summary).

    python scripts/graft_weights.py --base weights/onsets_frames.safetensors \\
        --donor runs/tr_gpu2/last.safetensors --take pedal_stack --out /tmp/grafted.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2m2w.checkpoint import WeightsError, load_weights, save_weights
from w2m2w.files import sha256_file  # noqa: E402


def graft(
    base: dict[str, torch.Tensor], donor: dict[str, torch.Tensor], prefixes: list[str]
) -> dict[str, torch.Tensor]:
    """base's tensors, those whose names start with one of `prefixes` + "." taken from donor.

    Raises ValueError when a prefix names no tensor, or the two differ in names or shapes under it.
    """
    out = dict(base)
    for p in prefixes:
        mine = {k for k in base if k.startswith(p + ".")}
        theirs = {k for k in donor if k.startswith(p + ".")}
        if not mine:
            raise ValueError(f"{p}: no tensor of the base is under it")
        if mine != theirs:
            raise ValueError(f"{p}: base and donor hold different tensors under it ({sorted(mine ^ theirs)[:3]} ...)")
        for k in sorted(mine):
            if donor[k].shape != base[k].shape:
                raise ValueError(f"{k}: shape {tuple(donor[k].shape)} in the donor, {tuple(base[k].shape)} in the base")
            out[k] = donor[k]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, type=Path)
    ap.add_argument("--donor", required=True, type=Path)
    ap.add_argument(
        "--take", required=True, nargs="+", help="top-level module names to take from the donor (e.g. pedal_stack)"
    )
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument(
        "--model", default="onsets_frames", help="the model name both files must hold (default onsets_frames)"
    )
    args = ap.parse_args(argv)
    try:
        base, cfg, training = load_weights(args.base, args.model)
        donor, donor_cfg, donor_training = load_weights(args.donor, args.model)
        if donor_cfg != cfg:
            diff = sorted(k for k in set(cfg) | set(donor_cfg) if cfg.get(k) != donor_cfg.get(k))
            raise ValueError(f"{args.donor}: another config than {args.base} (differs in {diff})")
        tensors = graft(base, donor, args.take)
    except (WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = {
        "donor": str(args.donor),
        "donor_sha256": sha256_file(args.donor),
        "took": args.take,
        "donor_training": donor_training,
    }
    save_weights(args.out, args.model, tensors, cfg, {**training, "graft": record})
    print(f"{args.out}: {args.base} with {', '.join(args.take)} from {args.donor}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
