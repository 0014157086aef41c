"""Unit tests of the batch machinery's pure parts: locks, merged JSON, summaries, the table, shards."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from w2m2w.files import LockedError, file_lock, update_json
from w2m2w.run.piece import PieceResult, merge_summaries, summarize
from w2m2w.run.progress import BatchProgress, print_summary
from w2m2w.run.rundir import lock_path


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    path = lock_path(tmp_path, "transcribe", "set a/piece")
    assert path == tmp_path / ".locks" / "1-transcribe" / "set a" / "piece.lock"
    with file_lock(path, "set a/piece (transcribe)", root=tmp_path):
        with pytest.raises(LockedError) as err:  # a second open file description conflicts even in one process
            with file_lock(path, "set a/piece (transcribe)", root=tmp_path):
                pass
        assert "set a/piece (transcribe)" in str(err.value) and "pid " in str(err.value)
    with file_lock(path, root=tmp_path):  # released on leaving the block
        pass


def _append(path: str, key: str) -> None:
    update_json(path, lambda d: {**d, key: True}, root=Path(path).parent)


def test_update_json_merges_from_many_processes(tmp_path):
    path = tmp_path / "run.json"
    procs = [mp.get_context("spawn").Process(target=_append, args=(str(path), f"k{i}")) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert json.loads(path.read_text()) == {f"k{i}": True for i in range(6)}


def results() -> list[PieceResult]:
    return [
        PieceResult(
            "a",
            "in/a.wav",
            "done",
            None,
            {
                "transcribe": {"status": "done", "seconds": 1.5, "audio_seconds": 30.0},
                "generate": {"status": "done", "seconds": 2.0, "continuation_seconds": 20.0},
            },
        ),
        PieceResult(
            "b",
            "in/b.wav",
            "failed",
            "in/b.wav: not readable as audio",
            {"transcribe": {"status": "failed", "error": "x"}},
        ),
        PieceResult(
            "c",
            "in/c.wav",
            "locked",
            "c (transcribe): held by another process (pid 7 on h)",
            {"transcribe": {"status": "locked"}},
        ),
    ]


def test_summary_and_merge():
    s = summarize(results())
    assert s["counts"] == {"done": 1, "failed": 1, "locked": 1} and s["failed"] == {
        "b": "in/b.wav: not readable as audio"
    }
    later = summarize([PieceResult("b", "in/b.wav", "done"), PieceResult("d", "in/d.wav", "done")])
    m = merge_summaries(s, later)
    assert m["counts"] == {"done": 3, "locked": 1} and m["failed"] == {} and set(m["pieces"]) == {"a", "b", "c", "d"}


def test_summary_table_lists_pieces_timings_and_reasons():
    out = io.StringIO()
    print_summary(summarize(results()), ["transcribe", "generate"], out)
    lines = out.getvalue().splitlines()
    header = next(ln for ln in lines if ln.startswith("piece"))
    assert "input s" in header and "transcribe time" in header and "generate time" in header
    row_a = next(ln for ln in lines if ln.startswith("a "))
    assert row_a.split()[1:] == ["done", "30.0", "20.0", "-", "1.5", "2.0"]
    assert "b: failed: in/b.wav: not readable as audio" in lines
    assert any(ln.startswith("c: locked: ") and "held by another process" in ln for ln in lines)
    assert lines[-1].startswith("3 pieces: 1 done, 1 failed, 1 locked")


def test_progress_counts_each_stage_once_whatever_the_order():
    bp = BatchProgress(["a", "b"], ["transcribe", "generate"], enabled=False)
    r = results()
    bp.piece_done(r[1])  # the piece's result may arrive before its stage events
    bp.stage_done("b", "transcribe", {"status": "failed"})
    bp.stage_done("a", "transcribe", {"status": "done"})
    bp.piece_done(r[0])
    bp.stage_done("a", "generate", {})
    assert bp.counts == {"transcribe": 2, "generate": 2} and bp.pieces_done == 2
    assert bp.failed == 1 and bp.audio_s == 30.0


def test_shards_cover_the_input_once():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_module", Path(__file__).resolve().parents[2] / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    pieces = {f"p{i:02d}": Path(f"p{i}.wav") for i in range(11)}
    parts = [run.shard_of(pieces, i, 3) for i in range(3)]
    assert sorted(k for p in parts for k in p) == sorted(pieces) and [len(p) for p in parts] == [4, 4, 3]
    with pytest.raises(ValueError, match="shard"):
        run.shard_of(pieces, 3, 3)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_on_a_terminal_plain_lines_in_a_pipe(caplog):
    """A terminal gets tqdm's bars; a pipe or a log file gets one plain line per piece and no cursor codes."""
    result = PieceResult("a", "a.wav", "done", stages={"transcribe": {"status": "done", "audio_seconds": 12.0}})
    tty = _Terminal()
    bp = BatchProgress(["a"], ["transcribe"], stream=tty)
    bp.piece_done(result)
    bp.close()
    assert "all stages" in tty.getvalue() and "\r" in tty.getvalue() and not bp.lines
    pipe = io.StringIO()
    with caplog.at_level("INFO", logger="w2m2w"):
        bp = BatchProgress(["a"], ["transcribe"], stream=pipe)
        bp.piece_done(result)
        bp.close()
    assert pipe.getvalue() == "" and bp.lines
    assert [r.getMessage() for r in caplog.records] == ["1/1 pieces: a done (12 s audio in, 0 failed)"]
    assert BatchProgress(["a"], ["transcribe"], enabled=False, stream=pipe).lines is False  # progress=false: neither
