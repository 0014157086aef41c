"""Every MAPS software-piano piece that may be used, in the MAPS layout the transcriber's training reads.

    python scripts/prepare_maps.py --src CLONE/data/MAPS --out DIR [--link]

CLONE is a clone of the onsets-and-frames PyTorch reimplementation (its data/MAPS holds
flac/ and tsv/matched/, all nine MAPS pianos). The rule (../shared/data/SOURCES.md): no
recording of the real Disklavier pianos (ENSTDkAm, ENSTDkCl) is ever read, and no piece
that was also recorded on them is used, whatever piano played it. The ENSTDk files are
recognised by name only, so their audio is never opened. Writes DIR/flac/ and DIR/tsv/
(copies, or hard links with --link) of the remaining pieces that have both audio and notes,
then prints pieces and minutes per piano. Train on it with `train.maps_root=DIR`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

REAL_PIANOS = ("ENSTDkAm", "ENSTDkCl")
_NAME = re.compile(r"^MAPS_MUS-(?P<piece>.+)_(?P<piano>[A-Za-z0-9]+)$")


def split_name(stem: str) -> tuple[str, str] | None:
    """('chpn-p19', 'AkPnBsdf') for 'MAPS_MUS-chpn-p19_AkPnBsdf'; None for any other name."""
    m = _NAME.match(stem)
    return (m.group("piece"), m.group("piano")) if m else None


def allowed(stems: list[str]) -> list[str]:
    """The stems of `stems` that may be used: not a real piano's, and not a piece a real piano also played."""
    parsed = {s: split_name(s) for s in stems}
    on_real = {p[0] for p in parsed.values() if p and p[1] in REAL_PIANOS}
    return sorted(s for s, p in parsed.items() if p and p[1] not in REAL_PIANOS and p[0] not in on_real)


def _tsv_folder(src: Path) -> Path:
    return src / "tsv" / "matched" if (src / "tsv" / "matched").is_dir() else src / "tsv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, required=True, help="data/MAPS of a clone of the reimplementation")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--link", action="store_true", help="hard links instead of copies")
    args = ap.parse_args(argv)
    flac, tsv = args.src / "flac", _tsv_folder(args.src)
    if not flac.is_dir() or not tsv.is_dir():
        print(
            f"error: {args.src}: no flac/ and tsv/ (or tsv/matched/) folders; give a clone's data/MAPS", file=sys.stderr
        )
        return 2
    # names only: the stems of both folders, so a piece known from its notes alone still counts as played on ENSTDk
    stems = sorted({p.stem for p in flac.glob("*.flac")} | {p.stem for p in tsv.glob("*.tsv")})
    use = [s for s in allowed(stems) if (flac / f"{s}.flac").is_file() and (tsv / f"{s}.tsv").is_file()]
    if not use:
        print(f"error: {args.src}: no usable piece", file=sys.stderr)
        return 2
    import soundfile as sf

    (args.out / "flac").mkdir(parents=True, exist_ok=True)
    (args.out / "tsv").mkdir(parents=True, exist_ok=True)
    put = os.link if args.link else shutil.copyfile
    pieces, minutes = Counter(), Counter()
    for s in use:
        for a, b in (
            (flac / f"{s}.flac", args.out / "flac" / f"{s}.flac"),
            (tsv / f"{s}.tsv", args.out / "tsv" / f"{s}.tsv"),
        ):
            if not b.exists():
                put(a, b)
        piano = split_name(s)[1]
        pieces[piano] += 1
        minutes[piano] += sf.info(str(args.out / "flac" / f"{s}.flac")).duration / 60
    skipped = len([s for s in stems if (p := split_name(s)) and p[1] not in REAL_PIANOS]) - len(use)
    for piano in sorted(pieces):
        print(f"{piano:10s} {pieces[piano]:4d} pieces {minutes[piano]:7.1f} min")
    print(
        f"{'all':10s} {sum(pieces.values()):4d} pieces {sum(minutes.values()):7.1f} min; {skipped} software-piano pieces left out (played on ENSTDk too, or missing audio or notes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
