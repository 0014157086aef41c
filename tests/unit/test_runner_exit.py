"""The run's exit code and piece statuses, in this process, with a stage that needs no model: a locked piece alone makes
the exit code 1, a run with nothing wrong exits 0, and each piece's status is the one its own outcome gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stages.transcribe import TranscribeSettings
from w2m2w.files import file_lock
from w2m2w.run.rundir import lock_path
from w2m2w.run.runner import run
from w2m2w.run.settings import LocalExecutor, RunSettings
from w2m2w.run.stage import Stage, StageError, StageJob


class Copy(Stage):
    """The transcribe stage's name and settings; copies its input, and fails on an input that says 'bad'."""

    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}

    def run(self, s: TranscribeSettings, job: StageJob) -> dict:
        data = job.input.read_bytes()
        if data.startswith(b"bad"):
            raise StageError(f"{job.input}: bad input")
        job.output.write_bytes(data)
        return {"bytes": len(data)}


@pytest.fixture()
def inputs(tmp_path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.wav").write_bytes(b"RIFF" + name.encode())
    return root


def _run(inputs: Path, run_dir: Path) -> tuple[int, dict]:
    s = RunSettings(
        input=str(inputs),
        run_dir=str(run_dir),
        stages=["transcribe"],
        workers=1,
        progress=False,
        transcribe=TranscribeSettings(),
        executor=LocalExecutor(),
    )
    code = run(s, [Copy()], run_dir)
    return code, json.loads((run_dir / "summary.json").read_text())


def test_nothing_wrong_exits_0_and_a_rerun_finds_everything_current(inputs, tmp_path):
    code, summary = _run(inputs, tmp_path / "run")
    assert code == 0 and {p: v["status"] for p, v in summary["pieces"].items()} == {"a": "done", "b": "done"}
    code, summary = _run(inputs, tmp_path / "run")
    assert code == 0 and {p: v["status"] for p, v in summary["pieces"].items()} == {"a": "current", "b": "current"}
    assert summary["counts"] == {"current": 2}


def test_a_piece_held_by_another_run_alone_makes_the_exit_code_1(inputs, tmp_path):
    run_dir = tmp_path / "run"
    with file_lock(lock_path(run_dir, "transcribe", "a"), root=run_dir):  # as another run would hold it
        code, summary = _run(inputs, run_dir)
    assert code == 1, "nothing failed: the lock alone says the run is not complete"
    assert summary["pieces"]["a"]["status"] == "locked" and summary["pieces"]["b"]["status"] == "done"
    assert summary["counts"] == {"done": 1, "locked": 1}
    assert (
        not (run_dir / "1-transcribe" / "a.mid").exists()
        and (run_dir / "1-transcribe" / "b.mid").read_bytes() == b"RIFFb"
    )
    code, summary = _run(inputs, run_dir)  # released: done now, and the exit code is 0 again
    assert code == 0 and summary["pieces"]["a"]["status"] == "done" and summary["pieces"]["b"]["status"] == "current"


def test_a_failed_piece_makes_the_exit_code_1_and_is_reported_as_failed(inputs, tmp_path):
    (inputs / "c.wav").write_bytes(b"bad")
    code, summary = _run(inputs, tmp_path / "run")
    assert code == 1
    assert {p: v["status"] for p, v in summary["pieces"].items()} == {"a": "done", "b": "done", "c": "failed"}
    assert "bad input" in summary["failed"]["c"]
    (inputs / "c.wav").write_bytes(b"RIFFc")  # mended: the next run does it, exit 0
    code, summary = _run(inputs, tmp_path / "run")
    assert code == 0 and summary["pieces"]["c"]["status"] == "done"


def test_the_summary_table_goes_to_stdout_as_it_is_when_printed(inputs, tmp_path):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # a caller of the library capturing the run's table
        _run(inputs, tmp_path / "run")
    lines = buf.getvalue().splitlines()
    assert any(ln.startswith("a ") and "done" in ln for ln in lines) and lines[-1].startswith("2 pieces: 2 done")
