"""Recall by velocity, register and chord membership of transcriptions against references.

    python scripts/recall_breakdown.py --est DIR --ref DIR [--include GLOB ...] [--json OUT]

--est: transcriptions (*.mid, e.g. a run's 1-transcribe/ folder); --ref: same-named references
(.mid with the sustain pedal applied, or MAPS .tsv). Counts are pooled note by note over the
files (w2m2w.recall_breakdown), then printed as a table: group, matched, total, recall.
For the real validation set:
    python run.py input=../shared/data/audio/real_cc0 run_dir=runs/real_val stages=[transcribe]
    python scripts/recall_breakdown.py --est runs/real_val/1-transcribe --ref ~/.cache/w2m2w/teacher/real_cc0 \
        --include $(python -c "import json;print(' '.join(json.load(open('scripts/real_cc0_split.json'))['val']))")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from w2m2w.midi import load_notes  # noqa: E402
from w2m2w.recall_breakdown import add_counts, recall_breakdown  # noqa: E402


def pairs(est: Path, ref: Path, include: list[str]) -> list[tuple[Path, Path]]:
    """(transcription, reference) by file stem; --include keeps stems that contain one of its words."""
    refs = {p.stem: p for p in sorted(ref.iterdir()) if p.suffix in (".mid", ".midi", ".tsv")}
    found = [(e, refs[e.stem]) for e in sorted(est.glob("*.mid")) if e.stem in refs]
    return [(e, r) for e, r in found if not include or any(w in e.stem for w in include)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--est", type=Path, required=True)
    ap.add_argument("--ref", type=Path, required=True)
    ap.add_argument("--include", nargs="*", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    todo = pairs(args.est, args.ref.expanduser(), args.include)
    if not todo:
        print(f"error: no transcription in {args.est} has a same-named reference in {args.ref}", file=sys.stderr)
        return 2
    total: dict[str, tuple[int, int]] = {}
    for e, r in todo:
        total = add_counts(total, recall_breakdown(load_notes(r), load_notes(e)))
    print(f"{len(todo)} files")
    print(f"{'group':20s} {'matched':>8s} {'total':>7s} {'recall':>7s}")
    for name in sorted(total, key=lambda k: (k.split()[0], k)):
        hit, n = total[name]
        print(f"{name:20s} {hit:8d} {n:7d} {hit / n if n else float('nan'):7.3f}")
    if args.json:
        args.json.write_text(json.dumps({k: {"matched": h, "total": n} for k, (h, n) in total.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
