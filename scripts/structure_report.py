"""How the package is laid out, at one or more git revisions: the figures the four-wings move is judged by.

    python scripts/structure_report.py 55f32f0 HEAD

For each revision (exported with `git archive` into a temporary folder, so the working tree is not
touched): modules at the root of w2m2w/; import cycles among the library's modules and the stages
(strongly connected groups of the import graph that grimp builds, function-local imports included);
the imports of `stages/` by the two edges that hand the stages in (w2m2w.cli, w2m2w.api), as the
ignore_imports of pyproject's forbidden contract declare them at that revision; imports that close a
cycle or go from the library up into `stages/` undeclared (each cycle holds at least one import
against the floors, so these are the upward imports whatever the floors were then); lines
over 120 characters in w2m2w/, stages/ and run.py; the 10 longest functions; and the pairs of
places sharing six or more lines in the library (the `duplicates` command, where it is installed).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_GRAPH = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import grimp
pkgs = ["w2m2w"] + (["stages"] if __import__("os").path.isdir(sys.argv[1] + "/stages") else [])
g = grimp.build_graph(*pkgs, cache_dir=None)
edges = sorted({(a, b) for a in g.modules for b in g.find_modules_directly_imported_by(a)})
print(json.dumps(edges))
"""


def import_edges(tree: Path) -> list[tuple[str, str]]:
    """(importer, imported) module pairs inside w2m2w and stages, in a fresh process so that the
    exported tree, not the installed package, is what grimp reads."""
    out = subprocess.run(
        [sys.executable, "-c", _GRAPH, str(tree)], capture_output=True, text=True, check=True, cwd=tree
    )
    return [tuple(e) for e in json.loads(out.stdout)]


def cycles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm, iterative)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        group.append(m)
                        if m == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(groups)


def _top(module: str) -> str:
    return module.split(".")[0]


def declared_edges(tree: Path) -> list[tuple[str, str]]:
    """The ignore_imports of pyproject's forbidden contract on the stages ("w2m2w.cli -> stages", ...), as
    (importer, imported) patterns: the imports the edges are declared to make. None before the contract existed."""
    pyproject = tree / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    contracts = tomllib.loads(pyproject.read_text()).get("tool", {}).get("importlinter", {}).get("contracts", [])
    out = []
    for c in contracts:
        if c.get("type") == "forbidden" and "stages" in c.get("forbidden_modules", []):
            for rule in c.get("ignore_imports", []):
                a, _, b = rule.partition("->")
                out.append((a.strip(), b.strip()))
    return out


def _matches(module: str, pattern: str) -> bool:
    """import-linter's wildcards: `*` stands for one module name, `**` for one or more."""
    regex = ".".join(
        r"[^.]+(\.[^.]+)*" if part == "**" else r"[^.]+" if part == "*" else re.escape(part)
        for part in pattern.split(".")
    )
    return re.fullmatch(regex, module) is not None


def into_stages(edges: list[tuple[str, str]], declared: list[tuple[str, str]]) -> tuple[list, list]:
    """Imports from the library into stages/, split in two: those the forbidden contract declares (the edges
    handing the stages in) and the rest, which are upward imports."""
    declared_in, undeclared = [], []
    for a, b in edges:
        if _top(a) == "w2m2w" and _top(b) == "stages":
            ok = any(_matches(a, pa) and _matches(b, pb) for pa, pb in declared)
            (declared_in if ok else undeclared).append((a, b))
    return sorted(declared_in), sorted(undeclared)


def upward(edges: list[tuple[str, str]], groups: list[list[str]], declared: list[tuple[str, str]]) -> list:
    """Imports inside a cycle's group, and imports from the library into stages/ that the forbidden contract
    does not declare."""
    member = {m: i for i, g in enumerate(groups) for m in g}
    inside = [(a, b) for a, b in edges if a in member and member.get(b) == member[a]]
    return sorted(set(inside) | set(into_stages(edges, declared)[1]))


def long_lines(tree: Path, limit: int = 120) -> int:
    files = [*sorted((tree / "w2m2w").rglob("*.py")), *sorted((tree / "stages").rglob("*.py")), tree / "run.py"]
    return sum(1 for f in files if f.is_file() for line in f.read_text().splitlines() if len(line) > limit)


def longest_functions(tree: Path, n: int = 10) -> list[tuple[int, str]]:
    """(lines, module:function) of the n longest functions and methods in w2m2w/."""
    out = []
    for f in sorted((tree / "w2m2w").rglob("*.py")):
        mod = f.relative_to(tree).with_suffix("").as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append((node.end_lineno - node.lineno + 1, f"{mod}:{node.name}"))
    return sorted(out, reverse=True)[:n]


def repeated_blocks(tree: Path) -> str:
    """The `duplicates` command's count line over w2m2w/ ("N pairs ..."), or why there is none."""
    if shutil.which("duplicates") is None:
        return "duplicates not installed"
    out = subprocess.run(
        ["duplicates", "--repo", str(tree / "w2m2w"), "--seconds", "120"], capture_output=True, text=True
    )
    return out.stdout.splitlines()[0] if out.stdout else out.stderr.strip()


def report(rev: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        edges = import_edges(tree)
        groups = cycles(edges)
        declared = declared_edges(tree)
        return {
            "rev": subprocess.run(
                ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
            "root_modules": len([p for p in (tree / "w2m2w").glob("*.py") if p.name != "__init__.py"]),
            "cycles": groups,
            "edges_into_stages": into_stages(edges, declared)[0],
            "upward_imports": upward(edges, groups, declared),
            "lines_over_120": long_lines(tree),
            "longest_functions": longest_functions(tree),
            "repeated_blocks": repeated_blocks(tree),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("revs", nargs="+", help="git revisions, e.g. 55f32f0 HEAD")
    ap.add_argument("--json", action="store_true", help="print the full figures as JSON")
    args = ap.parse_args(argv)
    rows = [report(r) for r in args.revs]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| figure | " + " | ".join(r["rev"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    print("| root modules of w2m2w/ | " + " | ".join(str(r["root_modules"]) for r in rows) + " |")
    print("| import cycles (grimp, modules) | " + " | ".join(str(len(r["cycles"])) for r in rows) + " |")
    print(
        "| the edges' imports of stages/ (declared in pyproject's forbidden contract) | "
        + " | ".join(str(len(r["edges_into_stages"])) for r in rows)
        + " |"
    )
    print("| upward imports | " + " | ".join(str(len(r["upward_imports"])) for r in rows) + " |")
    print("| lines > 120 characters | " + " | ".join(str(r["lines_over_120"]) for r in rows) + " |")
    print("| pairs of places sharing 6+ lines (duplicates) | " + " | ".join(r["repeated_blocks"] for r in rows) + " |")
    for r in rows:
        print(f"\n{r['rev']}: cycles {r['cycles']}")
        print(f"{r['rev']}: the edges' imports of stages/ {r['edges_into_stages']}")
        print(f"{r['rev']}: upward imports {r['upward_imports']}")
        print(f"{r['rev']}: longest functions " + ", ".join(f"{name} {n}" for n, name in r["longest_functions"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
