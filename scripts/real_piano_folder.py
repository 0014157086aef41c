"""A folder of the real recordings beside their teacher labels, as training's `audio_dirs` reads it.

    python scripts/real_piano_folder.py --part train --out ~/.cache/w2m2w/real_cc0_train
        [--audio ../shared/data/audio/real_cc0] [--labels ~/.cache/w2m2w/teacher/real_cc0] [--split scripts/real_cc0_split.json]

For each piece of the split's part (train, val or all): OUT/<piece>.<ext> is a symbolic link to
the recording and OUT/<piece>.mid a copy of its teacher label (scripts/label_real_teacher.py).
Nothing is copied into the repository; a piece without a label is named and left out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("train", "val", "all"), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "data" / "audio" / "real_cc0")
    ap.add_argument("--labels", type=Path, default=Path("~/.cache/w2m2w/teacher/real_cc0"))
    ap.add_argument("--split", type=Path, default=ROOT / "scripts" / "real_cc0_split.json")
    args = ap.parse_args(argv)
    split = json.loads(args.split.read_text())
    stems = split["train"] + split["val"] if args.part == "all" else split[args.part]
    labels, out = args.labels.expanduser(), args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    missing = 0
    for stem in stems:
        audio = next(iter(sorted(args.audio.glob(f"{stem}.*"))), None)
        label = labels / f"{stem}.mid"
        if audio is None or not label.is_file():
            print(f"{stem}: no {'recording' if audio is None else 'teacher label'}; left out", file=sys.stderr)
            missing += 1
            continue
        link = out / audio.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(audio.resolve())
        shutil.copyfile(label, out / f"{stem}.mid")
    print(f"{len(stems) - missing} pieces in {out}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
