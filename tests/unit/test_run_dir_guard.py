"""Writes and deletes stay inside the run folder (files.inside_run_dir), cleanup never raises, and a failed write says why (io_errors)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from w2m2w.files import OutsideRunDirError, atomic_path, file_lock, inside_run_dir, remove_file, write_json
from w2m2w.run.io_errors import write_failure
from w2m2w.run.piece_ids import UnsafePieceIdError
from w2m2w.run.rundir import output_path


def test_paths_inside_pass_and_outside_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert inside_run_dir(run, run / "1-transcribe" / "a.mid") == run / "1-transcribe" / "a.mid"
    for bad in (tmp_path / "victim.mid", run / ".." / "victim.mid", Path("/etc/passwd"), run / "x" / ".." / ".." / "v"):
        with pytest.raises(OutsideRunDirError):
            inside_run_dir(run, bad)


def test_a_symlinked_folder_leading_out_is_refused(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    (run / "1-transcribe").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, run / "1-transcribe" / "sub")
    with pytest.raises(OutsideRunDirError):
        write_json(run / "1-transcribe" / "sub" / "a.json", {}, root=run)
    assert list(outside.iterdir()) == []


def test_a_lock_file_planted_as_a_symlink_is_not_followed(tmp_path):
    run, target = tmp_path / "run", tmp_path / "precious"
    target.write_text("keep me")
    (run / ".locks").mkdir(parents=True)
    os.symlink(target, run / ".locks" / "p.lock")
    with pytest.raises(OSError) as err:
        with file_lock(run / ".locks" / "p.lock", root=run):
            pass
    assert err.value.errno == errno.ELOOP and target.read_text() == "keep me"


def test_an_unsafe_piece_id_makes_no_path():
    with pytest.raises(UnsafePieceIdError):
        output_path("run", "transcribe", "../../victim")


def test_cleanup_never_raises(tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / "a.mid").write_bytes(b"x")
    assert remove_file(run / "missing", root=run) is False
    assert remove_file(tmp_path / "outside", root=run) is False

    def read_only(path, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "unlink", read_only)
    assert remove_file(run / "a.mid", root=run) is False
    assert "a.mid: not deleted (Read-only file system)" in caplog.text
    with pytest.raises(RuntimeError, match="the first failure"):  # not hidden by the failing cleanup after it
        with atomic_path(run / "b.txt", root=run) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the first failure")
    assert f"{tmp}: not deleted (Read-only file system)" in caplog.text


def test_write_failure_names_a_full_disk_and_the_file(tmp_path):
    out = tmp_path / "3-synthesize" / "x.wav"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert write_failure(full, out) == f"no space left on device while writing {out}"
    ro = OSError(errno.EROFS, "Read-only file system", str(out.parent / ".x.wav.tmp-1-0123abcd.wav"))
    assert write_failure(ro, out) == f"read-only file system while writing {out}"
    denied_input = PermissionError(errno.EACCES, "Permission denied", "/home/me/take.wav")
    assert write_failure(denied_input, out) is None, "a failure to read the input is not a failure to write"
    assert write_failure(ValueError("bad MIDI"), out) is None


def test_write_failure_sees_through_libsndfile_system_error(tmp_path):
    sf = pytest.importorskip("soundfile")
    tmp = tmp_path / "x.wav"
    os.symlink("/dev/full", tmp)  # the kernel's own ENOSPC
    with pytest.raises(sf.LibsndfileError) as err:
        with sf.SoundFile(str(tmp), "w", samplerate=16000, channels=1, subtype="PCM_16", format="WAV") as f:
            f.write(np.zeros(16000, np.float32))
    assert "System error" in str(err.value)
    assert (
        write_failure(err.value, tmp_path / "final.wav")
        == f"no space left on device while writing {tmp_path / 'final.wav'}"
    )


def test_a_run_dir_is_a_path_like_of_its_folder(tmp_path):
    import os

    from w2m2w.run.rundir import RunDir

    rd = RunDir(tmp_path / "run")
    assert os.fspath(rd) == str(tmp_path / "run") and rd / "run.json" == tmp_path / "run" / "run.json"


def test_run_dir_methods_act_on_its_own_folder(tmp_path):
    from w2m2w.files import LockedError, OutsideRunDirError, file_lock
    from w2m2w.run.rundir import RunDir

    rd = RunDir(str(tmp_path / "run"))  # a str is made a Path
    assert rd.path == tmp_path / "run" and type(rd.path).__name__.endswith("Path")
    # the input of a stage: the nearest earlier output in this folder, by hand
    src = tmp_path / "take.wav"
    src.write_bytes(b"RIFF")
    assert rd.stage_input("transcribe", "take", src) == src
    (tmp_path / "run" / "1-transcribe").mkdir(parents=True)
    (tmp_path / "run" / "1-transcribe" / "take.mid").write_bytes(b"MThd")
    assert rd.stage_input("synthesize", "take", src) == tmp_path / "run" / "1-transcribe" / "take.mid"
    # its lock is the piece's lock file, and names what it locks when another process holds it
    with file_lock(tmp_path / "run" / ".locks" / "2-generate" / "take.lock", root=tmp_path / "run"):
        with pytest.raises(LockedError, match=r"^take \(generate\): held by another process \(pid "):
            with rd.lock("generate", "take", "take (generate)"):
                pass
    # its atomic writes stay inside it
    with rd.atomic(tmp_path / "run" / "x.json") as tmp:
        tmp.write_text("{}")
    assert (tmp_path / "run" / "x.json").read_text() == "{}"
    with pytest.raises(OutsideRunDirError):
        with rd.atomic(tmp_path / "elsewhere.json"):
            pass


def test_stage_input_when_nothing_earlier_exists(tmp_path):
    from w2m2w.run.rundir import MissingInputError, stage_input

    run = tmp_path / "run"
    notes = tmp_path / "notes.txt"  # no input kind at all: no stage can enter from it
    notes.write_text("x")
    with pytest.raises(
        MissingInputError, match=r"no transcribe output at .*1-transcribe/p\.mid; run stages=\[transcribe\] first"
    ):
        stage_input(run, "generate", "p", notes)
    # the first stage over a MIDI file: there is no earlier stage to name, so it names itself
    with pytest.raises(MissingInputError, match=r"no transcribe output at .*1-transcribe/p\.mid"):
        stage_input(run, "transcribe", "p", tmp_path / "x.mid")


def test_writable_problem_creates_nested_folders_and_leaves_no_probe(tmp_path):
    from w2m2w.run.rundir import writable_problem

    nested = tmp_path / "a" / "b" / "run"
    assert writable_problem(nested) is None and nested.is_dir() and list(nested.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the folder should be: not writable, with the system's reason
    assert writable_problem(blocker / "run") == f"{blocker / 'run'}: run folder is not writable (Not a directory)"
