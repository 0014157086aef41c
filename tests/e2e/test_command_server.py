"""The tests' warm command server (tests/command_server.py) against a fresh `python run.py`: the same exit code,
the same words and the same files, so the e2e tests that go through it test the command a user runs."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import REPO, run_command


def _both(monkeypatch, *args: str, **kw) -> dict[str, subprocess.CompletedProcess]:
    out = {}
    for m in ("warm", "cold"):
        monkeypatch.setenv(conftest.COLD, "1" if m == "cold" else "0")
        out[m] = run_command(args, **kw)
    return out


def _words(text: str) -> list[str]:
    """Log lines without their clock and the temporary paths that differ between the two runs."""
    return [re.sub(r"^\[?[\d\-: ,]+\]?\s*", "", line) for line in text.splitlines() if line.strip()]


def test_a_refusal_reads_the_same_warm_and_cold(monkeypatch, tmp_path):
    res = _both(monkeypatch, "input=/nonexistent.wav", f"run_dir={tmp_path / 'r'}", "transcribe.onset_threshold=7")
    assert res["warm"].returncode == res["cold"].returncode == 2
    assert _words(res["warm"].stderr) == _words(res["cold"].stderr) and "onset_threshold" in res["warm"].stderr
    assert res["warm"].stdout == res["cold"].stdout


def test_a_transcription_writes_the_same_bytes_warm_and_cold(monkeypatch, tmp_path, example_audio, tiny_transcriber):
    digests = {}
    for m in ("warm", "cold"):
        monkeypatch.setenv(conftest.COLD, "1" if m == "cold" else "0")
        run_dir = tmp_path / m
        # a relative input, resolved against the command's folder: the server's child must work there
        rel = Path("audio") / example_audio.name
        (tmp_path / "audio").mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(example_audio.read_bytes())
        res = run_command(
            [f"input={rel}", f"run_dir={run_dir}", "stages=[transcribe]", f"transcribe.weights={tiny_transcriber}"],
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        digests[m] = hashlib.sha256((run_dir / "1-transcribe" / "notes.mid").read_bytes()).hexdigest()
    assert digests["warm"] == digests["cold"]


def test_the_environment_reaches_the_command_and_a_timeout_kills_it(monkeypatch, tmp_path, example_audio):
    """The child sees the environment it is given, not the server's (Hydra resolves ${oc.env:...} when the
    command runs), and a command past its timeout is killed with TimeoutExpired, as subprocess.run does; the
    server then takes the next command."""
    monkeypatch.setenv(conftest.COLD, "0")
    env = dict(conftest.os.environ, W2M2W_TEST_MARKER="7.5")
    res = run_command(["input=/nonexistent.wav", "transcribe.onset_threshold=${oc.env:W2M2W_TEST_MARKER}"], env=env)
    assert res.returncode == 2 and "transcribe.onset_threshold=7.5 is not allowed" in res.stderr
    with pytest.raises(subprocess.TimeoutExpired):
        run_command([f"input={example_audio}", f"run_dir={tmp_path / 'slow'}"], env=env, timeout=0.5)
    res = run_command(["--help"], env=env)
    assert res.returncode == 0 and "w2m2w" in res.stdout


def test_the_server_is_used_only_where_a_fresh_process_would_read_the_same_start(monkeypatch):
    server = conftest._CommandServer()
    monkeypatch.setenv(conftest.COLD, "0")
    base = dict(conftest.os.environ)
    assert server.takes(base)
    assert server.takes({**base, "W2M2W_LOCK_WAIT_S": "1"})  # read when used, not at start
    assert not server.takes({**base, "W2M2W_FAULTS": "{}"})  # the fault injector is a sitecustomize
    assert not server.takes({**base, "PYTHONPATH": str(REPO / "tests")})
    assert not server.takes({**base, "OMP_NUM_THREADS": "7"})
    monkeypatch.setenv(conftest.COLD, "1")
    assert not server.takes(base)
