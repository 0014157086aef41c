"""run_piece's result, messages, events and log lines for each way a piece ends, and the one-line reasons of _reason
(mutation testing's survivors of run/piece.py: run_piece, _reason, _run_step, _step, summarize). Every expected message
is written out here by hand from the wording a user sees."""

from __future__ import annotations

import errno
import logging
import os
import socket
from pathlib import Path

import pytest

from stages.generate import GenerateSettings
from stages.transcribe import TranscribeSettings
from tests.unit import test_piece_stages as piece_stages
from w2m2w.run.piece import PieceResult, Plan, _reason, run_piece, summarize
from w2m2w.run.stage import Configured, Stage, StageError, StageJob
from w2m2w.run.stopping import Interrupted


class Copy(Stage):
    """Copies its input; raises what `raises` holds instead, when set."""

    def __init__(self) -> None:
        self.raises: BaseException | None = None
        self.inputs: list[Path] = []

    def weights_file(self, s) -> Path | None:
        return None

    def run(self, s, job: StageJob) -> dict:
        self.inputs.append(job.input)
        if self.raises is not None:
            raise self.raises
        job.output.write_bytes(job.input.read_bytes())
        return {"n": 1}


class CopyT(Copy, piece_stages.CopyT):
    """This file's Copy under test_piece_stages' transcribe stage name and settings."""


class CopyG(Copy, piece_stages.CopyG):
    """This file's Copy under test_piece_stages' generate stage name and settings."""


@pytest.fixture()
def two(tmp_path):
    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFFa")
    t, g = CopyT(), CopyG()
    plan = Plan([Configured(t, TranscribeSettings()), Configured(g, GenerateSettings())], tmp_path / "run")
    return src, plan, t, g


def events_of(piece, source, plan):
    seen: list[tuple] = []
    result = run_piece(piece, source, plan, on_event=lambda *a: seen.append(a))
    return result, seen


def messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_each_stage_is_an_event_and_the_piece_is_done_then_current(two, caplog):
    src, plan, t, g = two
    result, seen = events_of("a", src, plan)
    assert result.status == "done" and result.error is None
    assert [(p, s, i["status"], i["n"]) for p, s, i in seen] == [
        ("a", "transcribe", "done", 1),
        ("a", "generate", "done", 1),
    ]
    assert seen[0][2] is result.stages["transcribe"] and list(result.stages) == ["transcribe", "generate"]
    again, seen = events_of("a", src, plan)
    assert again.status == "current"
    assert seen == [
        ("a", "transcribe", {"status": "current", "n": 1}),
        ("a", "generate", {"status": "current", "n": 1}),
    ]
    # one stage current, the next recomputed: the piece counts as done
    (plan.run_dir.path / "2-generate" / "a.json").unlink()
    assert run_piece("a", src, plan).status == "done"


def test_each_piece_reads_its_own_earlier_output(two, tmp_path):
    src, plan, t, g = two
    other = tmp_path / "b.wav"
    other.write_bytes(b"RIFFbb")
    run_piece("a", src, plan)
    run_piece("b", other, plan)
    assert g.inputs == [plan.run_dir.path / "1-transcribe" / "a.mid", plan.run_dir.path / "1-transcribe" / "b.mid"]
    assert (plan.run_dir.path / "2-generate" / "b.mid").read_bytes() == b"RIFFbb"


def test_a_midi_input_with_only_transcribe_is_skipped(tmp_path):
    src = tmp_path / "a.mid"
    src.write_bytes(b"MThd")
    result, seen = events_of("a", src, Plan([Configured(CopyT(), TranscribeSettings())], tmp_path / "run"))
    assert result == PieceResult("a", str(src), "skipped", f"{src}: MIDI input, nothing to transcribe", {})
    assert seen == []


@pytest.mark.parametrize(("name", "shown"), [("a.txt", ".txt"), ("a", "none")])
def test_an_unknown_kind_of_file_fails_at_the_first_stage_and_stops_there(two, tmp_path, caplog, name, shown):
    _, plan, t, g = two
    src = tmp_path / name
    src.write_bytes(b"text")
    msg = f"{src}: not an audio or MIDI file (extension {shown})"
    result, seen = events_of("a", src, plan)
    assert result == PieceResult("a", str(src), "failed", msg, {"transcribe": {"status": "failed", "error": msg}})
    assert seen == [("a", "transcribe", {"status": "failed", "error": msg})], "no event for the stage never run"
    assert messages(caplog, logging.ERROR) == [f"[transcribe] {msg}"]
    assert t.inputs == [] and g.inputs == []


def test_a_piece_locked_by_another_holder_is_left_alone(two, caplog):
    src, plan, t, g = two
    msg = (
        f"a (transcribe): held by another process (pid {os.getpid()} on {socket.gethostname()}); "
        "skipped here, that run writes it"
    )
    with plan.run_dir.lock("transcribe", "a", "the other run"):
        result, seen = events_of("a", src, plan)
    assert result.status == "locked" and result.error == msg
    assert result.stages == {"transcribe": {"status": "locked", "error": msg}}
    assert seen == [("a", "transcribe", {"status": "locked", "error": msg})]
    assert messages(caplog, logging.WARNING) == [f"[transcribe] {msg}"]
    assert t.inputs == [] and g.inputs == []


@pytest.mark.parametrize("stop", [Interrupted(15), KeyboardInterrupt()])
def test_a_stop_ends_the_piece_at_its_stage(two, caplog, stop):
    src, plan, t, g = two
    run_piece("a", src, plan)
    g.raises = stop
    src.write_bytes(b"RIFF new")
    result, seen = events_of("a", src, plan)
    assert result.status == "interrupted" and result.error == f"{src}: interrupted during generate"
    assert result.stages["generate"] == {"status": "interrupted"} and result.stages["transcribe"]["status"] == "done"
    assert [s for _, s, _ in seen] == ["transcribe", "generate"]
    assert messages(caplog, logging.WARNING) == ["[generate] a: interrupted"]
    assert (plan.run_dir.path / "2-generate" / "a.mid").read_bytes() == b"RIFFa", "its old output stays as it was"


def test_a_failed_second_stage_is_logged_with_its_reason(two, caplog):
    src, plan, t, g = two
    g.raises = StageError("the model refused")
    result, seen = events_of("a", src, plan)
    msg = f"{src}: the model refused"
    assert result.status == "failed" and result.error == msg
    assert result.stages["generate"] == {"status": "failed", "error": msg}
    assert seen[-1] == ("a", "generate", {"status": "failed", "error": msg})
    assert messages(caplog, logging.ERROR) == [f"[generate] {msg}"]


def test_a_reused_output_is_logged_with_where_it_came_from(two, tmp_path, caplog):
    src, plan, t, g = two
    run_piece("a", src, plan)
    caplog.set_level("INFO", logger="w2m2w")
    other = Plan(plan.stages, tmp_path / "other", reuse_dirs=[tmp_path / "run"])
    assert run_piece("a", src, other).status == "done"
    infos = messages(caplog, logging.INFO)
    for stage in ("1-transcribe", "2-generate"):
        name = stage[2:]
        assert f"[{name}] a: reused {tmp_path / 'run' / stage / 'a.mid'}" in infos


def test_reason_names_the_source_once_and_a_full_disk_as_such(tmp_path, caplog):
    src, out = tmp_path / "in" / "a.wav", tmp_path / "run" / "1-transcribe" / "a.mid"
    out.parent.mkdir(parents=True)
    assert _reason(StageError("bad header"), src, out) == f"{src}: bad header"
    assert _reason(ValueError(f"{src}: too short"), src, out) == f"{src}: too short", "not named twice"
    assert _reason(ValueError(f"reading {src} gave nothing"), src, out) == f"reading {src} gave nothing"
    assert _reason(RuntimeError("first line\nsecond line"), src, out) == f"{src}: first line"
    assert _reason(KeyError(), src, out) == f"{src}: KeyError"
    full = OSError(errno.ENOSPC, "No space left on device", str(out.with_name(".a.mid.tmp")))
    assert _reason(full, src, out) == f"{src}: no space left on device while writing {out}"
    # the source unreadable is not a write failure of the run folder; its message names the source already
    unreadable = OSError(errno.EACCES, "Permission denied", str(src))
    assert _reason(unreadable, src, out) == f"[Errno 13] Permission denied: '{src}'"


def test_reason_logs_a_traceback_for_an_unexpected_error_only(tmp_path, caplog):
    caplog.set_level("DEBUG", logger="w2m2w")
    src, out = tmp_path / "a.wav", tmp_path / "a.mid"
    for expected in (StageError("x"), ValueError("x"), OSError("x"), RuntimeError("x")):
        try:
            raise expected
        except Exception as exc:
            _reason(exc, src, out)
    assert messages(caplog, logging.DEBUG) == []
    try:
        {}["missing"]
    except KeyError as exc:
        _reason(exc, src, out)
    (debug,) = messages(caplog, logging.DEBUG)
    assert debug.startswith("Traceback (most recent call last)") and "KeyError: 'missing'" in debug


def test_summarize_counts_and_lists_each_piece():
    results = [
        PieceResult("a", "/in/a.wav", "done", None, {"transcribe": {"status": "done"}}),
        PieceResult("b", "/in/b.wav", "failed", "/in/b.wav: bad", {}),
        PieceResult("c", "/in/c.mid", "done"),
    ]
    assert summarize(results) == {
        "counts": {"done": 2, "failed": 1},
        "failed": {"b": "/in/b.wav: bad"},
        "pieces": {
            "a": {"source": "/in/a.wav", "status": "done", "error": None, "stages": {"transcribe": {"status": "done"}}},
            "b": {"source": "/in/b.wav", "status": "failed", "error": "/in/b.wav: bad", "stages": {}},
            "c": {"source": "/in/c.mid", "status": "done", "error": None, "stages": {}},
        },
    }
