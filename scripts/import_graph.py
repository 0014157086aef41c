"""The picture of docs/ARCHITECTURE.md: the real import graph of w2m2w, stages/ and run.py, one box per wing.

    python scripts/import_graph.py [OUT.svg]      (default docs/import_graph.svg)

grimp reads every import (function-local ones too); modules are collapsed to their wing (w2m2w.run.*
-> run, w2m2w.models.* -> models; each ground-floor module stays itself), drawn floor by floor as the
layers contract in pyproject.toml orders them, the edges labelled with how many imports they stand for.
Graphviz's `dot` draws it where it is installed (apt-get install graphviz); else a plain SVG is drawn here.
Also prints any import cycle between modules (there should be none).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def floors() -> list[list[str]]:
    """The layers contract's floors, top first, each a list of wing names."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in conf if c["type"] == "layers")["layers"]
    return [[n.strip() for n in layer.replace("|", ":").split(":")] for layer in layers]


def wing(module: str) -> str:
    """w2m2w.run.rundir -> run; w2m2w.midi -> midi; stages.transcribe -> stages."""
    parts = module.split(".")
    if parts[0] == "stages":
        return "stages"
    return parts[1] if len(parts) > 1 else "w2m2w"


def edges() -> Counter:
    import grimp

    graph = grimp.build_graph("w2m2w", "stages", include_external_packages=False, cache_dir=None)
    found: Counter = Counter()
    for mod in graph.modules:
        for dep in graph.find_modules_directly_imported_by(mod):
            a, b = wing(mod), wing(dep)
            if a != b and b != "w2m2w":  # the package's __init__ (SAMPLE_RATE, __version__) is everyone's
                found[(a, b)] += 1
    for node in ast.walk(ast.parse((REPO / "run.py").read_text())):  # run.py is a script, not a package
        names = (
            [node.module]
            if isinstance(node, ast.ImportFrom) and node.module
            else [a.name for a in getattr(node, "names", [])]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            if name.split(".")[0] in ("w2m2w", "stages") and wing(name) != "w2m2w":
                found[("run.py", wing(name))] += 1
    cycles = [
        m
        for m in graph.modules
        if any(graph.find_shortest_chain(importer=d, imported=m) for d in graph.find_modules_directly_imported_by(m))
    ]
    print(f"modules in an import cycle: {sorted(cycles) or 'none'}")
    return found


def to_dot(found: Counter, rows: list[list[str]]) -> str:
    lines = [
        "digraph w2m2w {",
        '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica", fontsize=11];',
    ]
    lines.append('  edge [color="#888888", fontname="Helvetica", fontsize=8, arrowsize=0.6];')
    lines.append('  "run.py" [fillcolor="#ffe8c8"]; "stages" [fillcolor="#ffe8c8"];')
    for row in [["run.py"], ["stages"], *rows]:
        lines.append("  { rank=same; " + " ".join(f'"{n}";' for n in row) + " }")
    for (a, b), n in sorted(found.items()):
        lines.append(f'  "{a}" -> "{b}" [label="{n}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def plain_svg(found: Counter, rows: list[list[str]]) -> str:
    """Floors as rows of boxes, imports as lines from the lower edge of a box to the upper edge of another."""
    rows = [["run.py"], ["stages"], *rows]
    w, h, gap_x, gap_y = 120, 28, 20, 60
    width = max(len(r) for r in rows) * (w + gap_x) + gap_x
    pos = {}
    for i, row in enumerate(rows):
        x0 = (width - len(row) * (w + gap_x) + gap_x) / 2
        for j, name in enumerate(row):
            pos[name] = (x0 + j * (w + gap_x), 20 + i * (h + gap_y))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{20 + len(rows) * (h + gap_y)}" font-family="Helvetica" font-size="11">'
    ]
    for (a, b), _ in sorted(found.items()):
        if a in pos and b in pos:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            out.append(
                f'<line x1="{xa + w / 2}" y1="{ya + h}" x2="{xb + w / 2}" y2="{yb}" stroke="#999" stroke-width="0.8"/>'
            )
    for name, (x, y) in pos.items():
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="#f4f4f4" stroke="#444"/>')
        out.append(f'<text x="{x + w / 2}" y="{y + h / 2 + 4}" text-anchor="middle">{name}</text>')
    return "\n".join([*out, "</svg>"]) + "\n"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "import_graph.svg"
    found, rows = edges(), floors()
    up = [
        (a, b)
        for a, b in found
        if any(a in r for r in rows) and any(b in r for r in rows) and _floor(rows, a) > _floor(rows, b)
    ]
    print(f"imports up a floor: {up or 'none'}")
    if shutil.which("dot"):
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=to_dot(found, rows), capture_output=True, text=True, check=True
        ).stdout
    else:
        svg = plain_svg(found, rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg)
    print(f"{out}: {len(found)} edges between {len({n for e in found for n in e})} wings")


def _floor(rows: list[list[str]], name: str) -> int:
    """0 for the top floor; larger further down."""
    return next(i for i, r in enumerate(rows) if name in r)


if __name__ == "__main__":
    main()
