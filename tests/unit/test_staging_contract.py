"""The run-directory contract (w2m2w/run/rundir.py): when an output is current, sidecars, atomic
writes, stale temporaries, locks and run.json merges. Expected values are written out by hand."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from w2m2w import files
from w2m2w.files import (
    LockedError,
    atomic_path,
    file_lock,
    file_sha256,
    remove_stale_temps,
    temp_name,
    update_json,
    write_json,
)
from w2m2w.run.rundir import is_current, lock_path, output_path, read_sidecar, sidecar_path, stage_dir

HERE = socket.gethostname().replace("-", "_")  # this host as temporary names spell it
IN, CFG, W = "a" * 64, "b" * 64, "c" * 64  # stand-ins for the three sha256 digests of a sidecar


# ---- is_current: the output exists, its sidecar exists, and all three hashes match ----


@pytest.fixture()
def current(tmp_path) -> Path:
    out = tmp_path / "1-transcribe" / "piece.mid"
    out.parent.mkdir()
    out.write_bytes(b"MThd")
    (tmp_path / "1-transcribe" / "piece.json").write_text(
        json.dumps({"input_sha256": IN, "config_hash": CFG, "weights_sha256": W})
    )
    return out


def test_is_current_when_all_three_hashes_match(current):
    assert is_current(current, IN, CFG, W) is True


@pytest.mark.parametrize("changed", ["input", "settings", "weights"])
def test_a_changed_hash_makes_the_output_stale(current, changed):
    args = {"input": IN, "settings": CFG, "weights": W}
    args[changed] = "d" * 64
    assert is_current(current, args["input"], args["settings"], args["weights"]) is False


def test_weights_none_must_match_a_sidecar_without_weights(current, tmp_path):
    assert is_current(current, IN, CFG, None) is False, (
        "the sidecar names weights; a stage without weights is another setup"
    )
    (tmp_path / "1-transcribe" / "piece.json").write_text(
        json.dumps({"input_sha256": IN, "config_hash": CFG, "weights_sha256": None})
    )
    assert is_current(current, IN, CFG, None) is True
    assert is_current(current, IN, CFG, W) is False


def test_missing_output_or_sidecar_is_not_current(current, tmp_path):
    side = tmp_path / "1-transcribe" / "piece.json"
    side.write_text("{not json")
    assert is_current(current, IN, CFG, W) is False, "an unreadable sidecar"
    side.unlink()
    assert is_current(current, IN, CFG, W) is False, "no sidecar"
    side.write_text(json.dumps({"input_sha256": IN, "config_hash": CFG, "weights_sha256": W}))
    current.unlink()
    assert is_current(current, IN, CFG, W) is False, "a sidecar without its output"


def test_sidecar_without_the_hashes_is_not_current(current, tmp_path):
    (tmp_path / "1-transcribe" / "piece.json").write_text("{}")
    assert is_current(current, IN, CFG, W) is False


# ---- paths ----


def test_stage_paths(tmp_path):
    assert stage_dir(tmp_path, "transcribe") == tmp_path / "1-transcribe"
    assert stage_dir(tmp_path, "generate") == tmp_path / "2-generate"
    assert stage_dir(tmp_path, "synthesize") == tmp_path / "3-synthesize"
    assert output_path(tmp_path, "transcribe", "a/b") == tmp_path / "1-transcribe" / "a" / "b.mid"
    assert output_path(tmp_path, "generate", "p") == tmp_path / "2-generate" / "p.mid"
    assert output_path(tmp_path, "synthesize", "p") == tmp_path / "3-synthesize" / "p.wav"
    assert lock_path(tmp_path, "generate", "a/b") == tmp_path / ".locks" / "2-generate" / "a" / "b.lock"


def test_sidecar_path_replaces_only_the_last_extension():
    assert sidecar_path("run/1-transcribe/take.mid") == Path("run/1-transcribe/take.json")
    assert sidecar_path("run/3-synthesize/op.1.wav") == Path("run/3-synthesize/op.1.json")


# ---- hashes ----


def test_file_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert (
        file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )  # FIPS 180-2 example


# ---- sidecars, atomic writes, temporaries ----


def test_read_sidecar(tmp_path):
    out = tmp_path / "p.mid"
    assert read_sidecar(out) is None
    (tmp_path / "p.json").write_text("[broken")
    assert read_sidecar(out) is None
    (tmp_path / "p.json").write_text('{"a": 1}')
    assert read_sidecar(out) == {"a": 1}


def test_write_json_text(tmp_path):
    write_json(tmp_path / "new" / "s.json", {"b": Path("x"), "a": 1}, root=tmp_path)
    assert (tmp_path / "new" / "s.json").read_text() == '{\n  "a": 1,\n  "b": "x"\n}\n'


def test_temp_name_is_hidden_next_to_the_file_and_names_the_process(tmp_path):
    t = temp_name(tmp_path / "out.wav")
    assert t.parent == tmp_path
    host = socket.gethostname().replace("-", "_")  # '-' separates the fields
    assert re.fullmatch(rf"\.out\.wav\.tmp-{re.escape(host)}-{os.getpid()}-[0-9a-f]{{8}}\.wav", t.name), t.name
    assert temp_name(tmp_path / "out.wav") != t


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target, root=tmp_path) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.txt.tmp-")
        tmp.write_text("new")
        assert not target.exists(), "nothing at the final name while writing"
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_path(target, root=tmp_path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new", "a failed write leaves the old file"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"], "and no temporary"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def sleeper():
    """A live process other than this one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield child
    child.kill()
    child.wait()


def test_remove_stale_temps_only_of_dead_processes(tmp_path, sleeper):
    dead, alive = _dead_pid(), sleeper.pid
    sub = tmp_path / "1-transcribe" / "nested"
    sub.mkdir(parents=True)
    stale = [tmp_path / f".a.mid.tmp-{HERE}-{dead}-0123abcd.mid", sub / f".b.wav.tmp-{HERE}-{dead}-deadbeef.wav"]
    keep = [
        tmp_path / f".c.mid.tmp-{HERE}-{alive}-0123abcd.mid",  # its writer still runs
        tmp_path / f".d.mid.tmp-{HERE}-{dead}-XYZ.mid",  # not our pattern
        tmp_path / "a.mid",
        tmp_path / f"e.mid.tmp-{HERE}-{dead}-0123abcd.mid",
    ]  # not hidden
    for p in stale + keep:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(tmp_path, root=tmp_path)) == sorted(stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert remove_stale_temps(tmp_path / "missing", root=tmp_path) == []


def test_remove_stale_temps_when_another_run_removes_one_first(tmp_path, monkeypatch):
    dead = _dead_pid()
    gone = tmp_path / f".a.mid.tmp-{HERE}-{dead}-0123abcd.mid"
    gone.write_bytes(b"x")

    def removed_meanwhile(pid: int) -> bool:  # another run cleans up between the listing and our unlink
        gone.unlink()
        return False

    monkeypatch.setattr(files, "_pid_alive", removed_meanwhile)
    assert remove_stale_temps(tmp_path, root=tmp_path) == []


@pytest.mark.parametrize(
    "host, pid, removed",
    [
        ("other", "dead", False),  # another machine's writer: its pid says nothing here, it may still be writing
        ("other_node.cluster", "alive", False),
        ("here", "dead", True),  # this machine's writer is gone: an interrupted run's leftover
        ("here", "alive", False),  # this machine's writer still runs
        (None, "dead", False),  # the format before hosts were named: could be any machine's, left alone
    ],
)
def test_remove_stale_temps_only_of_this_hosts_dead_writers(tmp_path, sleeper, host, pid, removed):
    """Shards on several nodes share one run folder: a shard starting must not delete what another node writes."""
    n = _dead_pid() if pid == "dead" else sleeper.pid
    owner = f"{n}" if host is None else f"{HERE if host == 'here' else host}-{n}"
    tmp = tmp_path / "1-transcribe" / f".a.mid.tmp-{owner}-0123abcd.mid"
    tmp.parent.mkdir()
    tmp.write_bytes(b"half")
    assert remove_stale_temps(tmp_path, root=tmp_path) == ([tmp] if removed else [])
    assert tmp.exists() is not removed


def test_host_tag_has_no_field_separator_and_fits():
    assert files.host_tag("node-01.cluster") == "node_01.cluster"
    long_a, long_b = "n" * 60 + "a", "n" * 60 + "b"
    assert len(files.host_tag(long_a)) == 40 and files.host_tag(long_a) != files.host_tag(long_b)


def test_pid_alive(sleeper, monkeypatch):  # sleeper first: it is ended after os.kill is restored
    assert files._pid_alive(sleeper.pid) is True
    time.sleep(0.2)
    assert sleeper.poll() is None, "asking whether a process lives sends it no signal"
    assert files._pid_alive(os.getpid()) is True
    assert files._pid_alive(_dead_pid()) is False

    def denied(pid, sig):
        raise PermissionError

    monkeypatch.setattr(files.os, "kill", denied)
    assert files._pid_alive(1) is True, "another user's process is alive"


def test_file_lock_excludes_a_second_holder_and_names_the_first(tmp_path):
    path = tmp_path / "locks" / "deep" / "p.lock"
    with file_lock(path, root=tmp_path):
        with pytest.raises(
            LockedError,
            match=re.escape(f"piece p: held by another process (pid {os.getpid()} on {socket.gethostname()})"),
        ):
            with file_lock(path, "piece p", root=tmp_path):
                pass
        with pytest.raises(LockedError, match=re.escape(f"{path}: held by another process")):
            with file_lock(path, root=tmp_path):
                pass
    assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}", "the lock file says who held it"
    assert (path.stat().st_mode & 0o777) == 0o644 & ~_umask()
    with file_lock(path, root=tmp_path):  # released when the block ends
        pass


def test_file_lock_released_when_the_block_raises(tmp_path):
    path = tmp_path / "p.lock"
    with pytest.raises(ValueError):
        with file_lock(path, root=tmp_path):
            raise ValueError
    with file_lock(path, root=tmp_path):
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_update_json_merges_reads_missing_or_broken_as_empty(tmp_path):
    path = tmp_path / "new" / "deep" / "run.json"
    assert update_json(path, lambda d: {**d, "a": 1}, root=tmp_path) == {"a": 1}
    assert (path.with_name(".run.json.lock").stat().st_mode & 0o777) == 0o644 & ~_umask()
    assert update_json(path, lambda d: {**d, "b": 2}, root=tmp_path) == {"a": 1, "b": 2}
    assert json.loads(path.read_text()) == {"a": 1, "b": 2}
    path.write_text("{broken")
    assert update_json(path, lambda d: {**d, "c": 3}, root=tmp_path) == {"c": 3}


def test_update_json_waits_for_the_lock(tmp_path):
    import fcntl

    path = tmp_path / "run.json"
    fd = os.open(tmp_path / ".run.json.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process is merging
    done = threading.Event()
    t = threading.Thread(target=lambda: (update_json(path, lambda d: {"x": 1}, root=tmp_path), done.set()))
    t.start()
    try:
        assert not done.wait(0.3), "update_json must wait while another holder merges"
    finally:
        os.close(fd)
    t.join(10)
    assert done.is_set() and json.loads(path.read_text()) == {"x": 1}
