"""The README shows the installed command: its first command ends in `w2m2w`, and "Running it" uses it throughout."""

from __future__ import annotations

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_first_command_runs_the_demo_with_w2m2w():
    first = _blocks(README)[0].strip()
    assert first.endswith("&& w2m2w") and "pip install ." in first


def test_running_it_uses_the_command_throughout():
    section = README[README.index("## Running it") : README.index("### The run directory")]
    lines = [ln for block in _blocks(section) for ln in block.splitlines() if ln.strip()]
    assert len(lines) >= 10 and all(ln.startswith("w2m2w ") for ln in lines), [
        ln for ln in lines if not ln.startswith("w2m2w ")
    ]
