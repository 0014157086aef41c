"""The `w2m2w` command line made plain for Hydra: a bare path is the input, and path values are quoted for Hydra.

Hydra reads `key=value` overrides in a grammar of its own, where `( ) [ ] { } , = ' " ~ #` and spaces mean
something, so `input=waltz (take 2).ogg` was a grammar error unless quoted twice (for the shell, then for
Hydra). Here, before Hydra sees the command line:

- a bare argument (no `=`, not a flag) is the input: `w2m2w my_takes/waltz\\ \\(take\\ 2\\).ogg` is
  `input='my_takes/waltz (take 2).ogg'`; `w2m2w demo` is the bundled demo (as `w2m2w` alone);
- `input=` and `run_dir=` values that Hydra's grammar cannot read, or that it reads as something other
  than the path that exists (`input=a,b.wav` would be a sweep), are quoted for Hydra.

Everything else (sweeps, lists, other keys, flags) passes as it is, so Hydra's override syntax stays.
"""

from __future__ import annotations

import re
from pathlib import Path

# the keys whose values are paths: quoted for Hydra when its grammar would not read them as the path they are
PATH_KEYS = ("input", "run_dir")
DEMO = "demo"
# Hydra's flags that take a value (the value is not an input); --info takes one only from its choices
_VALUE_FLAGS = {
    "-c",
    "--cfg",
    "-p",
    "--package",
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "--experimental-rerun",
}
_INFO_FLAGS = {"-i", "--info"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def hydra_quoted(value: str) -> str:
    """`value` as a quoted string of Hydra's override grammar that reads back as exactly `value`.

    Inside quotes Hydra treats a backslash as an escape only before a quote (or the closing quote),
    so those runs of backslashes are doubled; quotes are escaped; `${` is escaped so that a file name
    holding it is not read as an interpolation.
    """
    out = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
    return "'" + out.replace("'", "\\'").replace("${", "\\${") + "'"


def _reads_as(override: str) -> object:
    """What Hydra's override grammar reads `key=value` as (its value), or an Exception it raises."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([override])[0]
        return parsed.value() if not parsed.is_sweep_override() else parsed
    except Exception as exc:  # noqa: BLE001 - Hydra's grammar errors are of several kinds
        return exc


def plain_path_override(arg: str) -> str:
    """`key=value` for a path key, quoted for Hydra where its grammar would not read `value` as that path; else `arg`."""
    key, _, value = arg.partition("=")
    if key not in PATH_KEYS or value == "":
        return arg
    read = _reads_as(arg)
    if isinstance(read, Exception) or (read != value and Path(value).exists()):
        return f"{key}={hydra_quoted(value)}"
    return arg


def plain_arguments(argv: list[str]) -> tuple[list[str], str | None]:
    """The command line with a bare path made `input=...` and path values quoted for Hydra; and one line on a problem.

    `demo` (when no file of that name is here) is the bundled demo: no input, run folder runs/demo.
    """
    flags: list[str] = []  # Hydra's flags first, then the overrides: argparse reads its positionals in one run
    out: list[str] = []
    bare: list[str] = []
    at = 0  # where the bare path stood among the overrides
    i = 0
    while i < len(argv):
        arg = argv[i]
        takes_value = arg in _VALUE_FLAGS or (arg in _INFO_FLAGS and i + 1 < len(argv) and argv[i + 1] in _INFO_CHOICES)
        if takes_value and i + 1 < len(argv):
            flags += [arg, argv[i + 1]]
            i += 2
            continue
        if arg.startswith("-"):
            flags.append(arg)
        elif "=" in arg:
            out.append(plain_path_override(arg))
        else:
            bare.append(arg)
            at = len(out)
        i += 1
    if len(bare) > 1:
        shown = ", ".join(repr(b) for b in bare)
        return (
            flags + out,
            f"one input please (a file, a folder, a glob or a list of paths), got {len(bare)}: {shown}; a name with spaces needs quotes: w2m2w 'my take.ogg'",
        )
    if bare and any(a.partition("=")[0].lstrip("+~") == "input" for a in out):
        return flags + out, f"two inputs: {bare[0]!r} and an input= setting; give one"
    if bare and not (bare[0] == DEMO and not Path(DEMO).exists()):
        out.insert(at, f"input={hydra_quoted(bare[0])}")
    return flags + out, None
