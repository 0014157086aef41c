"""What run_piece records and reports for one piece (mutation testing's survivors of run/piece.py): the sidecar's
fields, the stage's result and log line, a weights file the stage itself creates, a rerun that finds the output
current, a reuse that says where from, a failure's one line, and settle_locked's view of a piece another run
finished. Every expected value is written here by hand (hashes by hashlib)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from stages.transcribe import TranscribeSettings
from w2m2w.constants import __version__
from w2m2w.run.piece import PieceResult, Plan, run_piece, settle_locked
from w2m2w.run.stage import Configured, Stage, StageJob


class Copy(Stage):
    """The transcribe stage's name; copies its input, creating its 'weights' file on first use (as a soundfont)."""

    name = "transcribe"
    settings = TranscribeSettings
    options = {"onsets_frames": TranscribeSettings}

    def __init__(self, weights: Path) -> None:
        self.weights = weights

    def weights_file(self, s: TranscribeSettings) -> Path | None:
        return self.weights

    def run(self, s: TranscribeSettings, job: StageJob) -> dict:
        data = job.input.read_bytes()
        if data.startswith(b"boom"):
            raise KeyError("no such key")  # not a StageError: a bug in a stage
        if data.startswith(b"empty"):
            raise ValueError()
        self.weights.write_bytes(b"weights v1") if not self.weights.exists() else None
        job.output.write_bytes(data)
        return {"bytes": len(data), "kind": "copy", "notes": [1, 2]}


@pytest.fixture()
def setup(tmp_path):
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFFa")
    plan = Plan([Configured(Copy(tmp_path / "w.bin"), TranscribeSettings())], tmp_path / "run")
    return src, plan


def test_the_sidecar_records_where_from_what_with_and_when(setup, tmp_path, caplog):
    src, plan = setup
    caplog.set_level("INFO", logger="w2m2w")
    result = run_piece("a", src, plan)
    info = result.stages["transcribe"]
    assert result.status == "done" and info["status"] == "done" and info["bytes"] == 5 and info["kind"] == "copy"
    side = json.loads((tmp_path / "run" / "1-transcribe" / "a.json").read_text())
    assert {k: side[k] for k in ("stage", "piece", "source", "input", "weights", "w2m2w_version", "stats")} == {
        "stage": "transcribe",
        "piece": "a",
        "source": str(src),
        "input": str(src),
        "weights": str(tmp_path / "w.bin"),
        "w2m2w_version": __version__,
        "stats": {"bytes": 5, "kind": "copy", "notes": [1, 2]},
    }
    assert side["input_sha256"] == hashlib.sha256(b"RIFFa").hexdigest()
    assert side["weights_sha256"] == hashlib.sha256(b"weights v1").hexdigest(), "created by the stage: hashed after"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", side["created"])
    seconds = side["timings"]["seconds"]
    assert isinstance(seconds, float) and 0 <= seconds < 60 and round(seconds, 3) == seconds
    assert info["seconds"] == seconds
    assert "[transcribe] a: bytes=5, kind=copy" in [r.getMessage() for r in caplog.records]
    caplog.clear()
    again = run_piece("a", src, plan)
    assert again.status == "current"
    assert again.stages["transcribe"] == {"status": "current", "bytes": 5, "kind": "copy", "notes": [1, 2]}
    assert "[transcribe] a: current, skipped" in [r.getMessage() for r in caplog.records]


def test_a_reused_output_says_where_from(setup, tmp_path):
    src, plan = setup
    run_piece("a", src, plan)
    other = Plan(plan.stages, tmp_path / "other", reuse_dirs=[tmp_path / "nothing here", tmp_path / "run"])
    result = run_piece("a", src, other)
    cand = tmp_path / "run" / "1-transcribe" / "a.mid"
    assert result.stages["transcribe"] == {
        "status": "reused",
        "from": str(cand),
        "bytes": 5,
        "kind": "copy",
        "notes": [1, 2],
    }
    side = json.loads((tmp_path / "other" / "1-transcribe" / "a.json").read_text())
    assert side["reused_from"] == str(cand) and side["stage"] == "transcribe" and side["stats"]["bytes"] == 5
    assert (tmp_path / "other" / "1-transcribe" / "a.mid").read_bytes() == b"RIFFa"


def test_a_failure_is_one_line_starting_with_the_source(setup, tmp_path):
    src, plan = setup
    src.write_bytes(b"boom")
    result = run_piece("a", src, plan)
    assert result.status == "failed" and result.error == f"{src}: 'no such key'"
    src.write_bytes(b"empty")
    result = run_piece("a", src, plan)
    assert result.error == f"{src}: ValueError"  # no words: its type
    assert not (tmp_path / "run" / "1-transcribe" / "a.mid").exists()


def test_settle_locked_counts_a_piece_another_run_finished(setup, tmp_path):
    src, plan = setup
    done = PieceResult("a", str(src), "done")
    assert settle_locked(done, plan) is done
    locked = PieceResult("a", str(src), "locked", "held", {"transcribe": {"status": "locked"}})
    assert settle_locked(locked, plan) is locked, "nothing written yet: still locked"
    first = run_piece("a", src, plan)  # as the other run would have
    settled = settle_locked(locked, plan)
    assert settled == PieceResult(
        "a",
        str(src),
        "done",
        None,
        {
            "transcribe": {
                "status": "done",
                "by": "another run",
                "seconds": first.stages["transcribe"]["seconds"],
                "bytes": 5,
                "kind": "copy",
                "notes": [1, 2],
            }
        },
    )
    src.write_bytes(b"RIFF changed")  # the output is no longer current for this source
    assert settle_locked(locked, plan) is locked
