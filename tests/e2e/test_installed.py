"""A user's install: a wheel built from the checkout, installed into a fresh venv, run as `w2m2w` from another folder.

No network: the wheel is built without build isolation and installed without dependencies or an index; the venv
reaches this interpreter's packages (torch, hydra, ...) through a .pth file, so only w2m2w and stages come from the
wheel. The command runs with the shipped weights, so it proves that they travel as package data and pass their
SHA256SUMS check where no checkout is.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, piano_like


def _sh(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # nothing from the checkout
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def _clone(dest: Path) -> Path:
    """The checkout's files as a clone has them (tracked and new, not ignored), symlinks kept as symlinks."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src, dst = REPO / rel, dest / rel
        if not src.exists() and not src.is_symlink():  # deleted in the work tree
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding w2m2w installed from a wheel built from the checkout."""
    tmp = tmp_path_factory.mktemp("install")
    src = _clone(tmp / "clone")
    built = _sh(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        tmp / "dist",
        src,
        cwd=tmp,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("w2m2w-*.whl")
    venv = tmp / "venv"
    made = _sh(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp)
    assert made.returncode == 0, made.stderr
    (lib,) = (venv / "lib").glob("python*/site-packages")
    (lib / "_dependencies_from_the_test_interpreter.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = _sh(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
        cwd=tmp,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.rmtree(src)  # the installed package must not lean on the clone
    return venv / "bin"


def test_installed_command_runs_a_recording_from_another_folder(installed, tmp_path):
    work = tmp_path / "elsewhere"
    (work / "my_takes").mkdir(parents=True)
    notes = np.array([[0.2, 1.0, 60, 80], [0.6, 1.4, 64, 70], [1.0, 2.2, 67, 90]])
    sf.write(str(work / "my_takes" / "waltz (take 2).wav"), piano_like(notes, seconds=2.5), 16000)
    where = _sh(installed / "python", "-c", "import w2m2w.paths as p; print(p.WEIGHTS); print(p.CONF)", cwd=work)
    assert all(Path(line).is_relative_to(installed.parent) and Path(line).is_dir() for line in where.stdout.split()), (
        where.stdout + where.stderr
    )
    proc = _sh(
        installed / "w2m2w", "my_takes/waltz (take 2).wav", "generate.seconds=2", cwd=work
    )  # a plain path, parentheses and all
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = work / "runs" / "waltz (take 2)"
    for out in (
        "1-transcribe/waltz (take 2).mid",
        "2-generate/waltz (take 2).mid",
        "3-synthesize/waltz (take 2).wav",
        "report.html",
        "run.log",
    ):
        assert (run / out).is_file(), out
    sidecar = (run / "1-transcribe" / "waltz (take 2).json").read_text()
    sums = dict(line.split()[::-1] for line in (REPO / "weights" / "SHA256SUMS").read_text().splitlines())
    assert (
        sums["onsets_frames.safetensors"] in sidecar
    )  # the shipped weights, found and verified in the installed package
    # a pipe gets plain lines: no tqdm cursor codes
    assert "\x1b[" not in proc.stderr + proc.stdout and "\r" not in proc.stderr + proc.stdout


def test_installed_help_and_module(installed, tmp_path):
    proc = _sh(installed / "w2m2w", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and all(
        s in proc.stdout for s in ("transcribe", "generate", "synthesize", "examples:", "w2m2w my_takes/waltz.ogg")
    )
    assert "schema" not in proc.stdout
    module = _sh(installed / "python", "-m", "w2m2w", "--help", cwd=tmp_path)
    assert module.returncode == 0 and module.stdout == proc.stdout
