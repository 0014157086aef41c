"""Side outputs (Stage.side_outputs: a score beside a stage's MIDI) follow the run-directory contract with their
output: written to a temporary name and renamed into place with it, current only while they exist, computed
when turned on or deleted, never deleted when turned off or when a rerun fails, copied along on reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stages.transcribe import TranscribeSettings
from w2m2w.run.runner import run
from w2m2w.run.settings import LocalExecutor, RunSettings
from w2m2w.run.stage import Stage, StageError, StageJob

CALLS: list[str] = []


class Scored(Stage):
    """The transcribe stage's name and settings: copies its input to the output and, with score=true, writes
    'score of <input>' beside it; an input starting with 'bad' fails after both files were half written."""

    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}

    def side_outputs(self, s: TranscribeSettings) -> tuple[str, ...]:
        return (".musicxml",) if s.score else ()

    def run(self, s: TranscribeSettings, job: StageJob) -> dict:
        CALLS.append(job.piece)
        data = job.input.read_bytes()
        job.output.write_bytes(data[:2])
        for path in job.extras.values():
            path.write_bytes(b"score of " + data[:2])
        if data.startswith(b"bad"):
            raise StageError(f"{job.input}: bad input")
        job.output.write_bytes(data)
        for path in job.extras.values():
            path.write_bytes(b"score of " + data)
        return {"bytes": len(data)}


def _run(inputs: Path, run_dir: Path, score: bool, reuse: list[Path] | None = None) -> tuple[int, dict]:
    CALLS.clear()
    s = RunSettings(
        input=str(inputs),
        run_dir=str(run_dir),
        stages=["transcribe"],
        workers=1,
        progress=False,
        transcribe=TranscribeSettings(score=score),
        executor=LocalExecutor(),
    )
    code = run(s, [Scored()], run_dir, reuse)
    return code, json.loads((run_dir / "summary.json").read_text())


@pytest.fixture()
def inputs(tmp_path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.wav").write_bytes(b"RIFFa")
    return root


def _files(run_dir: Path) -> dict[str, bytes]:
    """Every file of the stage's folder (temporaries included) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted((run_dir / "1-transcribe").iterdir()) if p.suffix != ".json"}


def test_turned_on_it_is_computed_and_then_current(inputs, tmp_path):
    rd = tmp_path / "run"
    assert _run(inputs, rd, score=False)[0] == 0 and _files(rd) == {"a.mid": b"RIFFa"}
    code, summary = _run(inputs, rd, score=True)  # the output was current, but its side output is missing
    assert code == 0 and CALLS == ["a"] and summary["pieces"]["a"]["status"] == "done"
    assert _files(rd) == {"a.mid": b"RIFFa", "a.musicxml": b"score of RIFFa"}
    assert _run(inputs, rd, score=True)[0] == 0 and CALLS == []  # both there: current


def test_deleted_by_the_user_it_comes_back(inputs, tmp_path):
    rd = tmp_path / "run"
    _run(inputs, rd, score=True)
    (rd / "1-transcribe" / "a.musicxml").unlink()
    assert _run(inputs, rd, score=True)[0] == 0 and CALLS == ["a"]
    assert _files(rd) == {"a.mid": b"RIFFa", "a.musicxml": b"score of RIFFa"}


def test_turned_off_nothing_is_deleted_or_recomputed(inputs, tmp_path):
    rd = tmp_path / "run"
    _run(inputs, rd, score=True)
    assert _run(inputs, rd, score=False)[0] == 0 and CALLS == []
    assert _files(rd) == {"a.mid": b"RIFFa", "a.musicxml": b"score of RIFFa"}


def test_a_failed_rerun_keeps_both_and_leaves_no_temporary(inputs, tmp_path):
    rd = tmp_path / "run"
    _run(inputs, rd, score=True)
    (inputs / "a.wav").write_bytes(b"bad input now")  # a changed input: recomputed, and this time it fails
    code, summary = _run(inputs, rd, score=True)
    assert code != 0 and CALLS == ["a"] and summary["pieces"]["a"]["status"] == "failed"
    assert _files(rd) == {"a.mid": b"RIFFa", "a.musicxml": b"score of RIFFa"}  # no half-written file, nothing lost


def test_a_new_output_replaces_both(inputs, tmp_path):
    rd = tmp_path / "run"
    _run(inputs, rd, score=True)
    (inputs / "a.wav").write_bytes(b"RIFFb")
    assert _run(inputs, rd, score=True)[0] == 0 and CALLS == ["a"]
    assert _files(rd) == {"a.mid": b"RIFFb", "a.musicxml": b"score of RIFFb"}


def test_reuse_copies_the_side_output_along(inputs, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _run(inputs, first, score=False)
    # the first run has no score: not reusable for a run that wants one, so it is computed
    assert _run(inputs, second, score=True, reuse=[first])[0] == 0 and CALLS == ["a"]
    third = tmp_path / "third"
    code, summary = _run(inputs, third, score=True, reuse=[second])
    assert code == 0 and CALLS == [] and summary["pieces"]["a"]["stages"]["transcribe"]["status"] == "reused"
    assert _files(third) == {"a.mid": b"RIFFa", "a.musicxml": b"score of RIFFa"}
