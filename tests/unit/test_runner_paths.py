"""The runner's own decisions, in this process with a stage that needs no model (mutation testing's survivors of
run/runner.py): which pieces a call takes (its input, a rerun's run.json, a shard), what run.json records, the
one-line refusals (exit code 2) before any piece runs, a stop's exit code and summary, the shards' merged summary,
and a summary or report the disk refuses. Every expected value is written here by hand."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import warnings
from pathlib import Path

import pytest

from stages.transcribe import TranscribeSettings
from tests.unit import test_runner_exit as exit_tests
from w2m2w.constants import __version__
from w2m2w.files import file_lock, host_tag
from w2m2w.finding import InputError
from w2m2w.run import runner
from w2m2w.run.piece import Hashes
from w2m2w.run.runner import read_run_json, run, shard_of
from w2m2w.run.settings import LocalExecutor, RunSettings
from w2m2w.run.stage import StageJob


class Copy(exit_tests.Copy):
    """test_runner_exit's stage (copies its input, fails on 'bad'), which also sends itself SIGTERM on 'stop'."""

    def run(self, s: TranscribeSettings, job: StageJob) -> dict:
        if job.input.read_bytes().startswith(b"stop"):
            os.kill(os.getpid(), signal.SIGTERM)  # as a user's kill would arrive mid-piece
        return super().run(s, job)


class Unloadable(Copy):
    def __init__(self, exc: BaseException | None = None) -> None:
        self.exc = exc

    def load(self, s: TranscribeSettings) -> None:
        if self.exc is None:
            os.kill(os.getpid(), signal.SIGTERM)  # stopped while the models load
        raise self.exc


@pytest.fixture()
def inputs(tmp_path) -> Path:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a", "b"):
        (root / f"{name}.wav").write_bytes(b"RIFF" + name.encode())
    return root


def _settings(inputs: Path | None, run_dir: Path, **kw) -> RunSettings:
    kw = {"workers": 1, "progress": False, "transcribe": TranscribeSettings(), "executor": LocalExecutor(), **kw}
    return RunSettings(input=None if inputs is None else str(inputs), run_dir=str(run_dir), stages=["transcribe"], **kw)


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _statuses(run_dir: Path) -> dict[str, str]:
    return {p: v["status"] for p, v in _summary(run_dir)["pieces"].items()}


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_bad_settings_exit_2_with_the_one_line_naming_the_key(inputs, tmp_path, caplog):
    code = run(_settings(inputs, tmp_path / "run", shard=2, num_shards=2), [Copy()], tmp_path / "run")
    assert code == 2
    assert _errors(caplog) == ["shard=2 is not allowed: it must be in [0, num_shards - 1] = [0, 1]"]
    assert not (tmp_path / "run").exists()


def test_the_log_level_and_library_warnings_go_to_the_w2m2w_log(inputs, tmp_path, caplog):
    logger = logging.getLogger("w2m2w")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logging.captureWarnings(False)  # a capture left on by an earlier run would hide a run that turns it on no more
    try:
        assert run(_settings(inputs, tmp_path / "run", log_level="WARNING"), [Copy()], tmp_path / "run") == 0
        assert logger.level == logging.WARNING
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a library's warning", UserWarning, stacklevel=1)
        assert any(r.name == "py.warnings" and "a library's warning" in r.getMessage() for r in caplog.records)
    finally:
        logger.setLevel(old)
        logging.captureWarnings(False)


def test_without_a_run_dir_argument_the_settings_run_dir_is_used(inputs, tmp_path):
    assert run(_settings(inputs, tmp_path / "run"), [Copy()]) == 0
    assert _statuses(tmp_path / "run") == {"a": "done", "b": "done"}


def test_an_unwritable_run_dir_is_refused_in_one_line(inputs, tmp_path, caplog):
    (tmp_path / "run").write_text("a file where the folder should be")
    assert run(_settings(inputs, tmp_path / "run"), [Copy()], tmp_path / "run") == 2
    (msg,) = _errors(caplog)
    assert str(tmp_path / "run") in msg and "\n" not in msg


def test_a_missing_input_is_refused_in_one_line(tmp_path, caplog):
    assert run(_settings(tmp_path / "nowhere", tmp_path / "run"), [Copy()], tmp_path / "run") == 2
    assert _errors(caplog) == [f"{tmp_path / 'nowhere'}: no such file or folder"]
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_stage_that_cannot_load_is_refused_by_its_first_line(inputs, tmp_path, caplog):
    bad = RuntimeError("weights.safetensors: not a weights file\n  details")
    assert run(_settings(inputs, tmp_path / "run"), [Unloadable(bad)], tmp_path / "run") == 2
    assert _errors(caplog) == ["weights.safetensors: not a weights file"]
    caplog.clear()
    assert run(_settings(inputs, tmp_path / "run"), [Unloadable(RuntimeError())], tmp_path / "run") == 2
    assert _errors(caplog) == ["RuntimeError"]  # no words: its type
    assert not (tmp_path / "run" / "run.json").exists(), "nothing ran"


def test_stopped_while_loading_exits_143_and_runs_nothing(inputs, tmp_path, caplog):
    assert run(_settings(inputs, tmp_path / "run"), [Unloadable()], tmp_path / "run") == 128 + 15
    assert _warnings(caplog) == ["stopped by SIGTERM before any piece ran"]
    assert not (tmp_path / "run" / "run.json").exists()


def test_stopped_during_a_piece_the_summary_says_what_was_not_started(inputs, tmp_path, caplog):
    (inputs / "b.wav").write_bytes(b"stop")
    (inputs / "c.wav").write_bytes(b"RIFFc")
    assert run(_settings(inputs, tmp_path / "run"), [Copy()], tmp_path / "run") == 128 + 15
    summary = _summary(tmp_path / "run")
    assert summary["stopped"] == "SIGTERM: 1 of 3 pieces not started"
    assert summary["counts"] == {"done": 1, "interrupted": 1} and list(summary["pieces"]) == ["a", "b"]
    assert _warnings(caplog)[-1] == (
        "stopped by SIGTERM: 1 done, 1 interrupted; 1 of 3 pieces not started; summary and report written"
    )
    assert (tmp_path / "run" / "report.html").is_file()


def test_stopped_before_the_first_piece_no_piece_finished(inputs, tmp_path, caplog, monkeypatch):
    class Signalled(Hashes):
        def __init__(self) -> None:  # made after the models loaded, before the first piece
            super().__init__()
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(runner, "Hashes", Signalled)
    assert run(_settings(inputs, tmp_path / "run"), [Copy()], tmp_path / "run") == 128 + 15
    summary = _summary(tmp_path / "run")
    assert summary["stopped"] == "SIGTERM: 2 of 2 pieces not started" and summary["pieces"] == {}
    assert _warnings(caplog)[-1] == (
        "stopped by SIGTERM: no piece finished; 2 of 2 pieces not started; summary and report written"
    )


def test_stale_temporaries_of_dead_processes_are_removed_before_the_run(inputs, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = tmp_path / "run" / "1-transcribe"
    folder.mkdir(parents=True)
    stale = folder / f".a.mid.tmp-{host_tag()}-{dead.pid}-0123abcd.mid"
    stale.write_bytes(b"half")
    assert run(_settings(inputs, tmp_path / "run"), [Copy()], tmp_path / "run") == 0
    assert not stale.exists()


def test_run_json_records_each_source_its_kind_and_sha256(inputs, tmp_path):
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    data = json.loads((run_dir / "run.json").read_text())
    assert data["w2m2w_version"] == __version__
    assert data["inputs"] == {
        p: {"source": str(inputs.resolve() / f"{p}.wav"), "kind": "audio", "sha256": hashlib.sha256(b).hexdigest()}
        for p, b in (("a", b"RIFFa"), ("b", b"RIFFb"))
    }
    summary = _summary(run_dir)
    assert summary["stages"] == ["transcribe"] and summary["run_dir"] == str(run_dir)
    assert summary["config"]["stages"] == ["transcribe"] and summary["config"]["run_dir"] == str(run_dir)
    assert summary["stale"] == {} and summary["seconds"] >= 0


def test_another_file_of_the_same_id_is_kept_apart_with_a_warning(inputs, tmp_path, caplog):
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.wav").write_bytes(b"RIFF another a")
    assert run(_settings(other, run_dir), [Copy()], run_dir) == 0
    known = json.loads((run_dir / "run.json").read_text())["inputs"]
    (new_id,) = set(known) - {"a", "b"}
    assert new_id.startswith("a~") and known[new_id]["source"] == str(other.resolve() / "a.wav")
    assert known["a"]["source"] == str(inputs.resolve() / "a.wav"), "the first file keeps its id"
    assert (
        f"{other.resolve() / 'a.wav'}: run.json's piece 'a' is {inputs.resolve() / 'a.wav'}; "
        f"this file is kept apart as '{new_id}'"
    ) in _warnings(caplog)
    assert (run_dir / "1-transcribe" / f"{new_id}.mid").read_bytes() == b"RIFF another a"


def test_run_json_held_by_another_process_is_refused(inputs, tmp_path, caplog, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("W2M2W_LOCK_WAIT_S", "0")
    with file_lock(run_dir / ".run.json.lock", root=run_dir):
        assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 2
    (msg,) = _errors(caplog)
    assert msg.startswith(f"{run_dir / 'run.json'}: locked by another process")
    assert not (run_dir / "1-transcribe").exists()


def test_a_run_json_that_cannot_be_written_is_refused(inputs, tmp_path, caplog):
    run_dir = tmp_path / "run"
    (run_dir / "run.json").mkdir(parents=True)  # a folder where the file should be
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 2
    (msg,) = _errors(caplog)
    assert str(run_dir / "run.json") in msg
    assert not (run_dir / "1-transcribe").exists()


def test_a_rerun_without_input_takes_run_json_s_pieces_also_from_a_reuse_dir(inputs, tmp_path):
    first = tmp_path / "first"
    assert run(_settings(inputs, first), [Copy()], first) == 0
    assert run(_settings(None, first), [Copy()], first) == 0
    assert _statuses(first) == {"a": "current", "b": "current"}
    second = tmp_path / "second"  # no run.json of its own: the pieces of the reuse dir's
    assert run(_settings(None, second), [Copy()], second, [first]) == 0
    assert {p: v["stages"]["transcribe"]["status"] for p, v in _summary(second)["pieces"].items()} == {
        "a": "reused",
        "b": "reused",
    }


def test_run_folders_inside_the_input_folder_are_not_searched(inputs, tmp_path):
    old = inputs / "old_run"  # another run folder: run.json beside a stage folder
    (old / "1-transcribe").mkdir(parents=True)
    (old / "run.json").write_text("{}")
    (old / "1-transcribe" / "x.mid").write_bytes(b"MThd")
    run_dir = inputs / "run"  # this run's folder, its run.json lost: known by its path alone
    (run_dir / "1-transcribe").mkdir(parents=True)
    (run_dir / "1-transcribe" / "z.mid").write_bytes(b"MThd")
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    assert _statuses(run_dir) == {"a": "done", "b": "done"}
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0  # its own outputs (a.mid, b.mid) are not inputs
    assert _statuses(run_dir) == {"a": "current", "b": "current"}


def test_read_run_json_refuses_a_damaged_file_in_one_line(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"inputs": {"a": {"source": "/in/a.wav"}}}))
    assert read_run_json(path) == {"a": Path("/in/a.wav")}
    path.write_text("{}")
    assert read_run_json(path) == {}
    for data, words in [
        ({"inputs": ["a"]}, "(ValueError: 'inputs' is not an object)"),
        ({"inputs": {"a": {}}}, "(KeyError: 'source')"),
        ({"inputs": {"a": "/in/a.wav"}}, "(TypeError: string indices must be integers, not 'str')"),
    ]:
        path.write_text(json.dumps(data))
        with pytest.raises(InputError) as info:
            read_run_json(path)
        assert str(info.value) == f"{path}: not a readable run.json {words}"
    path.write_text("not json")
    with pytest.raises(InputError, match=r"not a readable run\.json \(JSONDecodeError"):
        read_run_json(path)
    path.write_text(json.dumps({"inputs": {"../a": {"source": "/in/a.wav"}}}))
    with pytest.raises(InputError) as info:
        read_run_json(path)
    assert str(info.value).startswith(f"{path}: ") and str(info.value).endswith(
        "; the file is damaged or was edited by hand, fix or remove that entry"
    )


def test_shard_numbers_outside_the_range_are_refused():
    pieces = {"a": Path("a.wav"), "b": Path("b.wav")}
    assert shard_of(pieces, 0, 1) == pieces
    assert shard_of(pieces, 1, 2) == {"b": Path("b.wav")}
    for shard, n in [(-1, 2), (2, 2)]:
        with pytest.raises(ValueError) as info:
            shard_of(pieces, shard, n)
        assert str(info.value) == f"shard must be in 0..num_shards-1, got shard={shard} num_shards={n}"


def test_shards_merge_their_summaries_and_each_exit_code_counts_its_own_pieces(inputs, tmp_path):
    (inputs / "b.wav").write_bytes(b"bad")  # sorted a, b: shard 0 takes a, shard 1 takes b
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir, shard=1, num_shards=2), [Copy()], run_dir) == 1
    assert run(_settings(inputs, run_dir, shard=0, num_shards=2), [Copy()], run_dir) == 0, "b is not shard 0's"
    summary = _summary(run_dir)
    assert summary["shard"] == "0 of 2" and _statuses(run_dir) == {"a": "done", "b": "failed"}
    assert summary["counts"] == {"done": 1, "failed": 1}


def test_a_summary_the_disk_refuses_exits_1_in_one_line(inputs, tmp_path, caplog):
    run_dir = tmp_path / "run"
    (run_dir / "summary.json").mkdir(parents=True)
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 1
    (msg,) = _errors(caplog)
    assert str(run_dir / "summary.json") in msg and "\n" not in msg


def test_a_report_the_disk_refuses_is_a_warning_only(inputs, tmp_path, caplog):
    run_dir = tmp_path / "run"
    (run_dir / "report.html").mkdir(parents=True)
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    assert any(m.startswith(f"{run_dir / 'report.html'}: report not written: ") for m in _warnings(caplog))


def test_a_failed_rerun_leaves_the_old_output_listed_as_stale(inputs, tmp_path):
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    (inputs / "a.wav").write_bytes(b"bad now")
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 1
    stale = _summary(run_dir)["stale"]
    assert list(stale) == ["a"] and list(stale["a"]) == ["transcribe"]


def test_progress_lines_only_when_asked_for(inputs, tmp_path, caplog):
    """Not on a terminal (pytest's stderr), progress=true is one plain line per piece; progress=false none."""
    assert run(_settings(inputs, tmp_path / "quiet"), [Copy()], tmp_path / "quiet") == 0
    assert not [r for r in caplog.records if " pieces: " in r.getMessage()]
    assert run(_settings(inputs, tmp_path / "run", progress=True), [Copy()], tmp_path / "run") == 0
    assert [r.getMessage() for r in caplog.records if " pieces: " in r.getMessage()] == [
        "1/2 pieces: a done (0 s audio in, 0 failed)",
        "2/2 pieces: b done (0 s audio in, 0 failed)",
    ]


def test_the_ray_executor_gets_the_pieces_the_plan_and_its_settings(inputs, tmp_path, monkeypatch):
    from w2m2w.run import ray as ray_module
    from w2m2w.run.piece import PieceResult
    from w2m2w.run.progress import BatchProgress
    from w2m2w.run.settings import RayExecutor
    from w2m2w.run.stopping import StopSignals

    seen = {}

    def fake_run_ray(pieces, plan, executor, progress, stop):
        seen.update(pieces=pieces, plan=plan, executor=executor, progress=progress, stop=stop)
        return [PieceResult(p, str(src), "failed", "no cluster here") for p, src in pieces.items()]

    monkeypatch.setattr(ray_module, "run_ray", fake_run_ray)
    executor = RayExecutor(address="auto")
    s = _settings(inputs, tmp_path / "run")
    s.executor = executor
    assert run(s, [Copy()], tmp_path / "run") == 1
    assert seen["pieces"] == {"a": inputs / "a.wav", "b": inputs / "b.wav"}
    assert seen["plan"].run_dir.path == (tmp_path / "run").resolve() and seen["executor"] == executor
    assert isinstance(seen["progress"], BatchProgress) and isinstance(seen["stop"], StopSignals)
    assert _statuses(tmp_path / "run") == {"a": "failed", "b": "failed"}


def test_a_run_json_damaged_during_the_run_leaves_stale_unchecked_with_a_warning(inputs, tmp_path, caplog):
    class Damaging(Copy):
        def run(self, s: TranscribeSettings, job: StageJob) -> dict:
            (job.output.parent.parent / "run.json").write_text("damaged")  # as an editor would, mid-run
            return super().run(s, job)

    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Damaging()], run_dir) == 0
    assert _summary(run_dir)["stale"] == {}
    assert any(
        m.startswith(f"{run_dir}: stale outputs not checked ({run_dir / 'run.json'}: not a readable run.json (")
        for m in _warnings(caplog)
    )


def test_the_summary_times_the_run_in_seconds_to_the_millisecond_and_names_the_report(inputs, tmp_path, caplog):
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    seconds = _summary(run_dir)["seconds"]
    assert isinstance(seconds, float) and 0 < seconds < 600 and round(seconds, 3) == seconds
    assert f"report: {run_dir / 'report.html'}" in [r.getMessage() for r in caplog.records]
    assert (run_dir / "report.html").is_file()
    assert not [m for m in _warnings(caplog) if "report not written" in m]


def test_a_full_disk_is_named_for_the_report_and_the_summary(inputs, tmp_path, caplog, monkeypatch):
    import errno

    from w2m2w.run.rundir import RunDir

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    run_dir = tmp_path / "run"
    monkeypatch.setattr(runner, "write_report", full)
    real_write_json = RunDir.write_json
    monkeypatch.setattr(
        RunDir,
        "write_json",
        lambda rd, path, data: full() if Path(path).name == "summary.json" else real_write_json(rd, path, data),
    )
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 1
    assert (
        f"{run_dir / 'report.html'}: report not written: no space left on device while writing {run_dir / 'report.html'}"
        in _warnings(caplog)
    )
    assert _errors(caplog) == [f"no space left on device while writing {run_dir / 'summary.json'}"]


def test_an_unsharded_run_writes_its_own_summary_over_the_last(inputs, tmp_path):
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    assert run(_settings(inputs / "a.wav", run_dir), [Copy()], run_dir) == 0
    summary = _summary(run_dir)
    assert _statuses(run_dir) == {"a": "current"} and "shard" not in summary


def test_keep_apart_refuses_only_when_the_tagged_id_is_another_file_s():
    from w2m2w.run.runner import keep_apart

    tagged = "take~" + hashlib.sha256(b"/b/take.wav").hexdigest()[:8]
    entry = {"source": "/b/take.wav", "sha256": "3" * 64}
    first = {"source": "/a/take.wav", "sha256": "1" * 64}
    assert keep_apart("take", entry, {"take": first, tagged: {"source": "/b/take.wav"}}) == tagged  # its own, again
    assert keep_apart("take", entry, {"take": first, tagged: {"sha256": "4" * 64}}) == tagged  # no source: not taken
    with pytest.raises(InputError) as info:
        keep_apart("take", entry, {"take": first, tagged: {"source": "/c/other.wav"}})
    assert str(info.value) == (
        f"/b/take.wav: cannot give it an id of its own in run.json ({tagged} is taken); use another run_dir"
    )
