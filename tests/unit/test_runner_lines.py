"""The runner's one-line refusals word for word, a forced rerun, the demo as the input of last resort, subfolders of an
input folder, and the report of a run whose summary the disk refused (mutation testing's survivors of run/runner.py
after test_runner_paths). Every expected line is written here by hand."""

from __future__ import annotations

import errno
from pathlib import Path

from tests.unit import test_runner_paths as paths
from tests.unit.test_runner_paths import Copy, _errors, _settings, _statuses, inputs  # noqa: F401 (a fixture)
from w2m2w.run import runner
from w2m2w.run.rundir import RunDir
from w2m2w.run.runner import resolve_inputs, run
from w2m2w.run.settings import RunSettings


def test_an_unwritable_run_dir_is_named_with_the_reason(inputs, tmp_path, caplog):  # noqa: F811
    (tmp_path / "run").write_text("a file where the folder should be")
    assert run(_settings(inputs, tmp_path / "run"), [Copy()], tmp_path / "run") == 2
    assert _errors(caplog) == [f"{tmp_path / 'run'}: run folder is not writable (File exists)"]


def test_a_run_json_that_cannot_be_written_is_named_with_the_reason(inputs, tmp_path, caplog):  # noqa: F811
    run_dir = tmp_path / "run"
    (run_dir / "run.json").mkdir(parents=True)  # a folder where the file should be
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 2
    assert _errors(caplog) == [f"{run_dir / 'run.json'}: cannot be updated (Is a directory)"]


def test_a_full_disk_at_run_json_is_named_as_such(inputs, tmp_path, caplog, monkeypatch):  # noqa: F811
    run_dir = tmp_path / "run"

    def full(self, path, update):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(RunDir, "update_json", full)
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 2
    assert _errors(caplog) == [f"no space left on device while writing {run_dir / 'run.json'}"]


def test_force_recomputes_what_is_current(inputs, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0
    assert _statuses(run_dir) == {"a": "current", "b": "current"}
    assert run(_settings(inputs, run_dir, force=True), [Copy()], run_dir) == 0
    assert _statuses(run_dir) == {"a": "done", "b": "done"}


def test_no_input_and_no_run_json_is_the_bundled_demo(tmp_path):
    demo = (Path(runner.__file__).parents[1] / "assets" / "demo" / "bach_prelude_c.flac").resolve()
    got = resolve_inputs(RunSettings(input=None), [tmp_path / "empty", tmp_path / "also empty"])
    assert {k: v.resolve() for k, v in got.items()} == {"bach_prelude_c": demo}


def test_subfolders_of_the_input_folder_are_searched_but_run_folders_are_not(inputs, tmp_path):  # noqa: F811
    (inputs / "more").mkdir()
    (inputs / "more" / "c.wav").write_bytes(b"RIFFc")
    run_dir = inputs / "run"
    (run_dir / "1-transcribe").mkdir(parents=True)
    (run_dir / "1-transcribe" / "z.wav").write_bytes(b"RIFFz")
    got = resolve_inputs(RunSettings(input=str(inputs)), [run_dir])
    assert sorted(v.name for v in got.values()) == ["a.wav", "b.wav", "c.wav"]


def test_the_report_shows_this_run_when_the_summary_could_not_be_written(inputs, tmp_path, monkeypatch):  # noqa: F811
    run_dir = tmp_path / "run"
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 0  # summary.json: both done
    (inputs / "b.wav").write_bytes(b"bad")  # test_runner_exit's stage fails on it
    real = RunDir.write_json

    def refuse_summary(self, path, data):
        if Path(path).name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(self, path, data)

    monkeypatch.setattr(RunDir, "write_json", refuse_summary)
    assert run(_settings(inputs, run_dir), [Copy()], run_dir) == 1
    assert paths._summary(run_dir)["pieces"]["b"]["status"] == "done", "the old summary, as the disk left it"
    report = (run_dir / "report.html").read_text()
    assert f"{inputs / 'b.wav'}: " in report, "this run's failure of b, which only the report could show"
