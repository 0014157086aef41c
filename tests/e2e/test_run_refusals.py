"""Through the real run.py: what would lose work, write outside the run folder or exhaust the machine is one line,
exit code 2, before anything is written in the run folder; control characters in file names reach no output raw."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.conftest import run_pipeline

FAST = ("stages=[synthesize]", "synthesize=fluidsynth", "progress=false")  # no model to load


@pytest.fixture
def tiny_midi(tmp_path):
    from w2m2w.midi import write_midi

    path = tmp_path / "in" / "tiny.mid"
    path.parent.mkdir()
    write_midi(path, np.array([[0.0, 0.2, 60, 80]], dtype=np.float64))
    return path


def _one_error_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, (res.returncode, res.stderr[-3000:])
    return lines[0]


def _snapshot(folder):
    return (
        sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))
        if folder.exists()
        else None
    )


def _outside(tmp_path):
    target_file = tmp_path / "outside" / "victim.log"
    target_dir = tmp_path / "outside" / "victim_dir"
    target_dir.mkdir(parents=True)
    target_file.write_bytes(b"someone else's log\n")
    os.utime(target_file, ns=(1_000_000_000, 1_000_000_000))
    return target_file, target_dir


def _untouched(target_file, target_dir) -> None:
    assert target_file.read_bytes() == b"someone else's log\n" and target_file.stat().st_mtime_ns == 1_000_000_000
    assert list(target_dir.iterdir()) == []


@pytest.mark.parametrize("link", ["run.log", ".hydra"])
def test_symlinked_hydra_record_is_refused_and_nothing_outside_is_written(tmp_path, tiny_midi, link):
    target_file, target_dir = _outside(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.log").symlink_to(target_file)
    (run_dir / ".hydra").symlink_to(target_dir, target_is_directory=True)
    if link == "run.log":  # one link at a time: the other is made a plain file/folder
        (run_dir / ".hydra").unlink()
        (run_dir / ".hydra").mkdir()
    else:
        (run_dir / "run.log").unlink()
        (run_dir / "run.log").write_text("")
    before = _snapshot(run_dir)
    line = _one_error_line(run_pipeline(f"input={tiny_midi}", f"run_dir={run_dir}", *FAST))
    assert str(run_dir / link) in line and "symlink" in line
    _untouched(target_file, target_dir)
    assert _snapshot(run_dir) == before


def test_symlink_in_a_sweeps_job_folder_is_refused(tmp_path, tiny_midi):
    target_file, target_dir = _outside(tmp_path)
    job = tmp_path / "run" / "synthesize.program=1"  # run.py names a job's folder for what it sweeps
    job.mkdir(parents=True)
    (job / ".hydra").symlink_to(target_dir, target_is_directory=True)
    line = _one_error_line(
        run_pipeline("-m", f"input={tiny_midi}", f"run_dir={tmp_path / 'run'}", *FAST, "synthesize.program=0,1")
    )
    assert str(job / ".hydra") in line
    _untouched(target_file, target_dir)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["synthesize.program=1"]


BAD = [  # override, what the line must say besides the key
    ("transcribe.overlap_seconds=20", "chunk_seconds"),
    ("transcribe.device=quantum", "'cpu', 'cuda' or 'cuda:N'"),
    ("generate.device=quantum", "'cpu', 'cuda' or 'cuda:N'"),
    ("synthesize.device=quantum", "'cpu', 'cuda' or 'cuda:N'"),
    ("generate.seconds=3601", "3600"),
]


@pytest.mark.parametrize("override, says", BAD, ids=[o for o, _ in BAD])
def test_bad_setting_is_one_line_and_the_run_folder_is_not_made(tmp_path, override, says):
    run_dir = tmp_path / "run"
    line = _one_error_line(run_pipeline(f"run_dir={run_dir}", override))
    assert override.split("=")[0] in line and says in line, line
    assert not run_dir.exists()


@pytest.mark.parametrize("setting, key", [("transcribe.device=cuda", "transcribe.device"), ("device=cuda", "device")])
def test_cuda_on_a_torch_without_cuda_names_the_key(tmp_path, setting, key):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    run_dir = tmp_path / "run"
    line = _one_error_line(run_pipeline(f"run_dir={run_dir}", setting))
    assert line.startswith(f"error: {key}='cuda'") and "no usable CUDA" in line and "Torch not compiled" not in line
    assert not run_dir.exists()


def test_missing_soundfont_names_the_key_and_the_path(tmp_path, tiny_midi):
    run_dir, missing = tmp_path / "run", tmp_path / "no" / "such.sf2"
    line = _one_error_line(
        run_pipeline(f"input={tiny_midi}", f"run_dir={run_dir}", *FAST, f"synthesize.soundfont={missing}")
    )
    assert "synthesize.soundfont" in line and str(missing) in line
    assert not run_dir.exists()


FORGED = "FAKE ERROR line"


@pytest.fixture
def hostile_input(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / f"a\x1b[31mb\n{FORGED}.mid").write_bytes(b"not a MIDI file")  # fails to read: its path goes into the log
    return folder


def _clean(text: str) -> None:
    assert "\x1b" not in text
    assert not any(ln.startswith(FORGED) for ln in text.splitlines()), text


def test_control_characters_in_a_file_name_reach_neither_the_log_nor_stderr(tmp_path, hostile_input):
    run_dir = tmp_path / "run"
    res = run_pipeline(f"input={hostile_input}", f"run_dir={run_dir}", *FAST)
    log = (run_dir / "run.log").read_text()
    assert "\\x1b[31mb\\n" + FORGED in log  # the name is there, escaped
    _clean(log)
    _clean(res.stderr)
    _clean(
        "\n".join(ln for ln in res.stdout.splitlines() if ln[:8].count(":") == 2)
    )  # the log's lines on stdout (HH:MM:SS ...)


def test_control_characters_in_a_file_name_reach_no_line_of_stdout(tmp_path, hostile_input):
    res = run_pipeline(f"input={hostile_input}", f"run_dir={tmp_path / 'run'}", *FAST)
    _clean(res.stdout)
