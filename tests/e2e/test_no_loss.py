"""Nothing made is lost: pieces are never silently replaced, run folders are never read as input,
a locked or unwritable run.json is one line, and a dying worker's temporary file goes at once."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import REPO, piano_like
from tests.e2e.test_rerun_matrix import run_py

NOTES = np.array([[0.2, 0.9, 60, 80], [0.5, 1.3, 64, 70], [1.0, 1.8, 67, 90]], dtype=np.float64)


def recording(path: Path, shift: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), piano_like(NOTES + [shift, shift, 0, 0], seconds=2.5), 16000)
    return path


def test_a_second_batch_with_the_same_names_gets_ids_of_its_own(tmp_path, weights):
    a = recording(tmp_path / "batch1" / "take.wav")
    b = recording(tmp_path / "batch2" / "take.wav", shift=0.3)  # another recording, the same name
    run_dir = tmp_path / "run"
    assert run_py(f"input={a.parent}", f"run_dir={run_dir}", "stages=[transcribe]", *weights).returncode == 0
    first = (run_dir / "1-transcribe" / "take.mid").read_bytes()
    res = run_py(f"input={b.parent}", f"run_dir={run_dir}", "stages=[transcribe]", *weights)
    assert res.returncode == 0, res.stderr[-2000:]
    inputs = json.loads((run_dir / "run.json").read_text())["inputs"]
    assert len(inputs) == 2 and {v["source"] for v in inputs.values()} == {str(a.resolve()), str(b.resolve())}
    assert inputs["take"]["source"] == str(a.resolve())
    (other,) = [k for k in inputs if k != "take"]
    assert other.startswith("take~") and len(other) == len("take~") + 8
    assert (run_dir / "1-transcribe" / "take.mid").read_bytes() == first  # the first batch's result is untouched
    assert json.loads((run_dir / "1-transcribe" / f"{other}.json").read_text())["source"] == str(b.resolve())
    assert (res.stdout + res.stderr).count("kept apart") == 1
    # the same file again is the same piece: no third id
    assert run_py(f"input={b.parent}", f"run_dir={run_dir}", "stages=[transcribe]", *weights).returncode == 0
    assert len(json.loads((run_dir / "run.json").read_text())["inputs"]) == 2


def test_the_same_recording_moved_keeps_its_id(tmp_path, weights):
    a = recording(tmp_path / "old" / "take.wav")
    run_dir = tmp_path / "run"
    assert run_py(f"input={a}", f"run_dir={run_dir}", "stages=[transcribe]", *weights).returncode == 0
    moved = tmp_path / "new" / "take.wav"
    moved.parent.mkdir()
    shutil.move(a, moved)
    res = run_py(f"input={moved}", f"run_dir={run_dir}", "stages=[transcribe]", *weights)
    assert res.returncode == 0 and "current, skipped" in res.stdout + res.stderr
    assert list(json.loads((run_dir / "run.json").read_text())["inputs"]) == ["take"]


def test_a_run_folder_inside_the_input_folder_is_never_input(tmp_path, weights):
    folder = tmp_path / "takes"
    recording(folder / "a.wav")
    write = tmp_path / "takes" / "more"
    recording(write / "b.wav", shift=0.2)
    run_dir = folder / "runs" / "r1"
    counts = []
    for _ in range(3):
        res = run_py(f"input={folder}", f"run_dir={run_dir}", "stages=[transcribe,generate]", *weights)
        assert res.returncode == 0, res.stderr[-2000:]
        counts.append(len(json.loads((run_dir / "run.json").read_text())["inputs"]))
    assert counts == [2, 2, 2]
    # another run folder there (one the user made earlier) is not input either
    res = run_py(f"input={folder}", f"run_dir={tmp_path / 'elsewhere'}", "stages=[transcribe]", *weights)
    assert res.returncode == 0 and sorted(json.loads((tmp_path / "elsewhere" / "run.json").read_text())["inputs"]) == [
        "a",
        "more/b",
    ]


def test_a_locked_run_json_is_one_line(tmp_path, weights):
    src = recording(tmp_path / "take.wav")
    run_dir = tmp_path / "run"
    assert run_py(f"input={src}", f"run_dir={run_dir}", "stages=[transcribe]", *weights).returncode == 0
    before = (run_dir / "run.json").read_bytes()
    with open(run_dir / ".run.json.lock", "a+") as holder:  # another process holding run.json's lock for good
        fcntl.flock(holder, fcntl.LOCK_EX)
        env = dict(os.environ, W2M2W_LOCK_WAIT_S="1")
        res = subprocess.run(
            [
                sys.executable,
                str(REPO / "run.py"),
                f"input={src}",
                f"run_dir={run_dir}",
                "stages=[transcribe]",
                "force=true",
                *weights,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert res.returncode == 2
    errors = [line for line in (res.stdout + res.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "run.json" in errors[0] and "locked" in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr and (run_dir / "run.json").read_bytes() == before


def test_an_unwritable_run_json_is_one_line(tmp_path, weights):
    src = recording(tmp_path / "take.wav")
    run_dir = tmp_path / "run"
    assert run_py(f"input={src}", f"run_dir={run_dir}", "stages=[transcribe]", *weights).returncode == 0
    (run_dir / "run.json").unlink()
    (run_dir / "run.json").mkdir()  # what no rename can replace, even as root
    res = run_py(f"input={src}", f"run_dir={run_dir}", "stages=[transcribe]", *weights)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    errors = [line for line in (res.stdout + res.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "run.json" in errors[0], res.stderr[-2000:]


def test_a_killed_worker_s_temporary_file_is_removed_at_once(tmp_path, weights):
    """Two workers; one is killed (-9) in the middle of a piece: its temporary output goes before the batch ends."""
    folder = tmp_path / "in"
    for name in ("a", "b", "c"):
        recording(folder / f"{name}.wav")
    run_dir = tmp_path / "run"
    flag = tmp_path / "go"
    faults = {"hold": {"pieces": ["a"], "flag": str(flag), "partial": True}}
    env = {k: v for k, v in os.environ.items() if k != "W2M2W_FAULTS"}
    env.update(
        W2M2W_FAULTS=json.dumps(faults), PYTHONPATH=os.pathsep.join([str(Path(__file__).parent / "faults"), str(REPO)])
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "run.py"),
            f"input={folder}",
            f"run_dir={run_dir}",
            "stages=[transcribe]",
            "workers=2",
            *weights,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    waiting = Path(f"{flag}.0.waiting")
    deadline = time.monotonic() + 120
    while not waiting.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert waiting.exists(), "the held piece never started"
    pid = int(waiting.read_text())
    temps = lambda: list((run_dir / "1-transcribe").glob(".a.mid.tmp-*"))  # noqa: E731
    assert temps(), "the held piece has no temporary output to leave behind"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while temps() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    gone_while_running = not temps() and proc.poll() is None
    flag.touch()
    proc.communicate(timeout=300)
    assert gone_while_running
    assert proc.returncode == 1
