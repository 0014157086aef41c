"""Import a file under scripts/ as a module, for the tests of the scripts' functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as module `_NAME` (registered in sys.modules, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(f"_{name}", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"_{name}"] = mod
    spec.loader.exec_module(mod)
    return mod
