"""Fault injection through the real `python run.py`: nothing lost, nothing written outside the run folder,
a batch that stops when told. One test per item of the issue; faults come from tests/e2e/faults/sitecustomize.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, run_command, run_on_terminal
from w2m2w.files import file_lock
from w2m2w.run.rundir import lock_path

FAULTS = Path(__file__).parent / "faults"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals, prctl and /dev/full as on Linux")


def _env(faults: dict | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("W2M2W_FAULTS", None)
    if faults:
        env["W2M2W_FAULTS"] = json.dumps(faults)
        env["PYTHONPATH"] = os.pathsep.join([str(FAULTS), *filter(None, [env.get("PYTHONPATH")])])
    return env


def start(*args: str, faults: dict | None = None) -> subprocess.Popen:
    """`python run.py ARGS` in its own session (so a test can signal its whole process group, as a terminal's Ctrl-C does).

    SIGINT is set back to its default in the child, as a terminal starts a command: a test run started
    in the background (`cmd &` in a script) has it ignored, run.py keeps an ignored SIGINT ignored by
    design, and the Ctrl-C tests would then test nothing but that."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=REPO,
        env=_env(faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run(*args: str, faults: dict | None = None) -> subprocess.CompletedProcess:
    """`python run.py ARGS` to the end, in its own session; stdout and stderr together, as on a console."""
    return run_command(args, env=_env(faults), merge_stderr=True, new_session=True)


def transcribe(weights: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["stages=[transcribe]", f"transcribe.weights={weights}", f"run_dir={run_dir}", "progress=false", *extra]


def tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


def wait_for(paths: list[Path], proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"run.py ended before the pieces were held:\n{proc.communicate()[0][-3000:]}"
        assert time.monotonic() - t0 < timeout, "pieces never started"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody reaps counts as gone)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture()
def takes(tmp_path, example_audio) -> Path:
    """Six short recordings p0..p5."""
    root = tmp_path / "takes"
    root.mkdir()
    for i in range(6):
        shutil.copy(example_audio, root / f"p{i}.wav")
    return root


# ---- 1. no recording is dropped for its name ----


def test_every_recording_is_a_piece_whatever_its_name(tmp_path, example_audio, tiny_transcriber):
    names = ["練習曲", "夜想曲", "前奏曲", "円舞曲", "幻想曲", "a b", "a_b", "a  b", "a&b"]
    root = tmp_path / "in"
    (root / "real").mkdir(parents=True)
    for n in names:
        shutil.copy(example_audio, root / f"{n}.wav")
    shutil.copy(example_audio, root / "a.flac")  # same name as a.wav, other extension
    shutil.copy(example_audio, root / "a.wav")
    shutil.copy(example_audio, root / "real" / "x.wav")
    os.symlink("real", root / "link")  # the same file again, through a symlinked folder
    res = run(f"input={root}", *transcribe(tiny_transcriber, tmp_path / "run"))
    assert res.returncode == 0, res.stdout[-3000:]
    want = {*names, "a_flac", "a_wav", "real/x"}
    assert set(summary(tmp_path / "run")["pieces"]) == want
    assert {
        p.relative_to(tmp_path / "run" / "1-transcribe").as_posix()
        for p in (tmp_path / "run" / "1-transcribe").rglob("*.mid")
    } == {f"{n}.mid" for n in want}


# ---- 2. nothing written or deleted outside the run folder ----


@pytest.mark.parametrize("bad_id", ["../../victim", "/ABS/victim"])
def test_a_doctored_run_json_is_refused(tmp_path, example_audio, tiny_transcriber, bad_id):
    run_dir = tmp_path / "a" / "b" / "run"
    run_dir.mkdir(parents=True)
    bad_id = bad_id.replace("/ABS", str(tmp_path))
    (run_dir / "run.json").write_text(
        json.dumps({"inputs": {bad_id: {"source": str(example_audio), "kind": "audio", "sha256": None}}})
    )
    before = sorted(p for p in tmp_path.rglob("*") if ".hydra" not in p.parts)
    res = run(*transcribe(tiny_transcriber, run_dir))
    assert res.returncode == 2, res.stdout[-3000:]
    assert [ln for ln in res.stdout.splitlines() if "ERROR" in ln] == [
        ln for ln in res.stdout.splitlines() if ln.strip()
    ], res.stdout
    assert "run.json" in res.stdout and bad_id in res.stdout
    after = sorted(p for p in tmp_path.rglob("*") if ".hydra" not in p.parts and p.name != "run.log")
    assert after == before, "nothing written anywhere"


# ---- 3. a stop signal stops the batch: nothing new starts, summary and report are written ----


@pytest.mark.parametrize(
    "sig, target, workers, code",
    [(signal.SIGINT, "group", 2, 130), (signal.SIGTERM, "main", 1, 143)],
    ids=["ctrl-c-two-workers", "sigterm-one-process"],
)
def test_a_stop_signal_stops_the_batch(tmp_path, takes, tiny_transcriber, sig, target, workers, code):
    run_dir, flag = tmp_path / "run", tmp_path / "go"
    held = ["p0", "p1"][:workers]
    proc = start(
        f"input={takes}",
        *transcribe(tiny_transcriber, run_dir, f"workers={workers}"),
        faults={"hold": {"pieces": held, "flag": str(flag)}},
    )
    wait_for([Path(f"{flag}.{i}.waiting") for i in range(workers)], proc)
    t0 = time.monotonic()
    os.killpg(proc.pid, sig) if target == "group" else os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 30, "stopped promptly"
    assert proc.returncode == code, out[-3000:]
    assert tracebacks(out) == 0, out[-3000:]
    assert len([ln for ln in out.splitlines() if "stopped by" in ln]) == 1, out[-3000:]
    s = summary(run_dir)
    assert {pid: p["status"] for pid, p in s["pieces"].items()} == {p: "interrupted" for p in held}, (
        "pieces in flight stop, none starts"
    )
    assert "4 of 6" in s["stopped"] if workers == 2 else "5 of 6" in s["stopped"]
    assert (run_dir / "report.html").is_file() and "not run" in (run_dir / "report.html").read_text()
    assert not list((run_dir / "1-transcribe").glob("*.mid")) and not list(run_dir.rglob(".*.tmp-*")), (
        "nothing half-written"
    )


def test_ctrl_c_stops_a_ray_batch(tmp_path, takes, tiny_transcriber):
    pytest.importorskip("ray")
    run_dir, flag = tmp_path / "run", tmp_path / "go"
    proc = start(
        f"input={takes}",
        *transcribe(tiny_transcriber, run_dir, "executor=ray", "executor.num_cpus=2"),
        faults={"hold": {"pieces": ["p0"], "flag": str(flag)}},
    )
    wait_for([Path(f"{flag}.0.waiting")], proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert tracebacks(out) == 0, out[-3000:]
    s = summary(run_dir)
    assert s["pieces"]["p0"]["status"] == "interrupted" and len(s["pieces"]) < 6, s["pieces"]


# ---- 4. workers die with their parent ----


def test_workers_die_with_the_main_process(tmp_path, takes, tiny_transcriber):
    run_dir, flag = tmp_path / "run", tmp_path / "go"
    proc = start(
        f"input={takes}",
        *transcribe(tiny_transcriber, run_dir, "workers=2"),
        faults={"hold": {"pieces": ["p0", "p1"], "flag": str(flag)}},
    )
    marks = [Path(f"{flag}.{i}.waiting") for i in range(2)]
    wait_for(marks, proc)
    workers = [int(m.read_text()) for m in marks]
    assert proc.pid not in workers
    proc.kill()  # the main process only, as `kill -9 PID` does
    proc.communicate(timeout=60)
    t0 = time.monotonic()
    while not all(gone(w) for w in workers) and time.monotonic() - t0 < 20:
        time.sleep(0.1)
    assert all(gone(w) for w in workers), "workers outlived their parent"
    for piece in ("p0", "p1"):  # their locks went with them: a rerun would not find these pieces `locked`
        with file_lock(lock_path(run_dir, "transcribe", piece), root=run_dir):
            pass


# ---- 5. a failure while cleaning up after a failure does not crash the batch ----


def test_read_only_stage_folder_fails_each_piece_in_one_line(tmp_path, takes, tiny_transcriber):
    run_dir = tmp_path / "run"
    (run_dir / "1-transcribe").mkdir(parents=True)
    for p in ("p0", "p1"):  # outputs of an earlier run, which the failure handler tries to remove
        (run_dir / "1-transcribe" / f"{p}.mid").write_bytes(b"MThd")
    inputs = tmp_path / "two"
    inputs.mkdir()
    for p in ("p0", "p1"):
        shutil.copy(takes / f"{p}.wav", inputs)
    res = run(
        f"input={inputs}", *transcribe(tiny_transcriber, run_dir), faults={"erofs": [str(run_dir / "1-transcribe")]}
    )
    assert res.returncode == 1, res.stdout[-3000:]
    assert tracebacks(res.stdout) == 0, res.stdout[-3000:]
    errors = [ln for ln in res.stdout.splitlines() if "ERROR" in ln]
    assert len(errors) == 2 and all("read-only file system while writing" in ln for ln in errors), res.stdout[-3000:]
    assert summary(run_dir)["counts"] == {"failed": 2} and (run_dir / "report.html").is_file()


def test_read_only_run_folder_is_one_line_exit_2(tmp_path, example_audio, tiny_transcriber):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    res = run(f"input={example_audio}", *transcribe(tiny_transcriber, run_dir), faults={"erofs": [str(run_dir)]})
    assert res.returncode == 2, res.stdout[-3000:]
    assert res.stdout.strip().splitlines() == [f"error: {run_dir}: run folder is not writable (Read-only file system)"]


def test_full_disk_before_the_run_is_one_line_exit_2(tmp_path, example_audio, tiny_transcriber):
    """A disk with no room for Hydra's record of the call: one line naming the folder and the full disk, nothing written."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    res = run(f"input={example_audio}", *transcribe(tiny_transcriber, run_dir), faults={"enospc": [str(run_dir)]})
    assert res.returncode == 2, res.stdout[-3000:]
    assert res.stdout.strip().splitlines() == [
        f"error: {run_dir}: the disk is full (no space left on device); free some space or give another run_dir"
    ]
    assert "Traceback" not in res.stdout + res.stderr and list(run_dir.iterdir()) == []


def test_an_empty_probe_is_not_enough_to_call_a_disk_writable(tmp_path):
    """On a real full file system an empty file can still be made: the probe must write bytes (a tmpfs, where root may mount one)."""
    import subprocess as sp

    mnt = tmp_path / "full"
    mnt.mkdir()
    if sp.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(mnt / "fill", "wb", buffering=0) as f:  # fill it to the last byte
            with contextlib.suppress(OSError):
                while True:
                    f.write(bytes(4096))

        (mnt / "empty").touch()  # what the old probe did, and it succeeds on a full disk
        from w2m2w.run.rundir import writable_problem

        assert "the disk is full" in (writable_problem(mnt / "run") or "")
    finally:
        sp.run(["umount", str(mnt)], capture_output=True)


# ---- 6. a full disk is named ----


def test_full_disk_is_named_and_the_rest_kept(tmp_path):
    pytest.importorskip("fluidsynth")
    from w2m2w.midi import write_midi
    from w2m2w.render.fluidsynth import RenderError, soundfont_path

    try:
        soundfont_path("fluidr3")
    except RenderError:
        pytest.skip("no FluidR3 soundfont (apt-get install fluid-soundfont-gm)")
    inputs, run_dir = tmp_path / "in", tmp_path / "run"
    (inputs / "full").mkdir(parents=True)
    notes = np.array([[0.0, 0.5, 60, 80], [0.5, 1.0, 64, 80]])
    write_midi(inputs / "full" / "x.mid", notes)
    write_midi(inputs / "ok.mid", notes)
    res = run(
        f"input={inputs}",
        "stages=[synthesize]",
        "synthesize=fluidsynth",
        f"run_dir={run_dir}",
        "progress=false",
        "workers=1",
        faults={"full_disk": str(run_dir / "3-synthesize" / "full")},
    )
    assert res.returncode == 1, res.stdout[-3000:]
    errors = [ln for ln in res.stdout.splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and errors[0].endswith(
        f"no space left on device while writing {run_dir / '3-synthesize' / 'full' / 'x.wav'}"
    ), res.stdout[-3000:]
    assert "System error" not in res.stdout
    assert sf.info(str(run_dir / "3-synthesize" / "ok.wav")).duration > 0.5, "the other piece is done"
    assert summary(run_dir)["counts"] == {"done": 1, "failed": 1}


# ---- 7. the summary describes the run folder as it is ----


def test_pieces_another_run_finished_are_done_in_the_summary(tmp_path, takes, tiny_transcriber):
    run_dir, flag = tmp_path / "run", tmp_path / "go"
    inputs = tmp_path / "two"
    inputs.mkdir()
    for p in ("p0", "p1"):
        shutil.copy(takes / f"{p}.wav", inputs)
    with file_lock(lock_path(run_dir, "transcribe", "p0"), root=run_dir):  # run A holds p0 ...
        b = start(
            f"input={inputs}",
            *transcribe(tiny_transcriber, run_dir, "workers=1"),
            faults={"hold": {"pieces": ["p1"], "flag": str(flag)}},
        )
        wait_for([Path(f"{flag}.0.waiting")], b)  # ... so run B found p0 locked and is now on p1
    a = run(f"input={inputs / 'p0.wav'}", *transcribe(tiny_transcriber, run_dir))  # A finishes p0
    assert a.returncode == 0, a.stdout[-3000:]
    flag.touch()
    out, _ = b.communicate(timeout=300)  # B finishes last: its summary is the one that stays
    assert b.returncode == 0, out[-3000:]
    pieces = summary(run_dir)["pieces"]
    assert pieces["p0"]["status"] == "done" and pieces["p0"]["stages"]["transcribe"]["by"] == "another run", pieces[
        "p0"
    ]
    assert pieces["p1"]["status"] == "done"
    assert ">locked<" not in (run_dir / "report.html").read_text()


# ---- 8. unreadable audio: one line, the decoder's reason ----


def test_truncated_flac_is_one_line_with_the_real_reason(tmp_path, example_audio, tiny_transcriber):
    y, sr = sf.read(example_audio)
    full = tmp_path / "full.flac"
    sf.write(str(full), np.tile(y, 3), sr)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    res = run(f"input={cut}", *transcribe(tiny_transcriber, tmp_path / "run"))
    assert res.returncode == 1
    before_table = res.stdout.split("\npiece ")[0].strip().splitlines()
    assert len(before_table) == 1, res.stdout
    assert before_table[0].endswith(f"{cut}: not readable as audio (flac decoder lost sync)")


# ---- 9. a glob over a symlink loop ----


def test_glob_skips_a_symlink_loop_with_a_warning(tmp_path, example_audio, tiny_transcriber):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(example_audio, root / "sub" / "a.wav")
    os.symlink("..", root / "sub" / "up")
    os.symlink("loop2.wav", root / "sub" / "loop1.wav")
    os.symlink("loop1.wav", root / "sub" / "loop2.wav")
    res = run(f"input={root}/**/*.wav", *transcribe(tiny_transcriber, tmp_path / "run"))
    assert res.returncode == 0 and tracebacks(res.stdout) == 0, res.stdout[-3000:]
    warnings = [ln for ln in res.stdout.splitlines() if "WARNING" in ln]
    assert any("up: symlink loop" in ln for ln in warnings) and any(
        "loop1.wav: broken symlink or symlink loop" in ln for ln in warnings
    ), res.stdout
    assert list(summary(tmp_path / "run")["pieces"]) == ["sub/a"]


# ---- 11. progress=false draws no bar, and log lines are never drawn over ----


@pytest.fixture()
def midi_pair(tmp_path) -> Path:
    from w2m2w.midi import write_midi

    pytest.importorskip("fluidsynth")
    root = tmp_path / "midi"
    root.mkdir()
    notes = np.array([[0.0, 1.0, 60, 80], [1.0, 2.0, 64, 80]])
    write_midi(root / "x.mid", notes)
    write_midi(root / "y.mid", np.vstack([notes, [[2.0, 3.0, 10, 80]]]))  # a note below the piano: a warning is logged
    return root


BAR = re.compile(r"\d+%\|")


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_false_draws_no_bar(tmp_path, midi_pair, workers):
    res = run_on_terminal(
        f"input={midi_pair}",
        "stages=[synthesize]",
        "synthesize=fluidsynth",
        f"run_dir={tmp_path / 'run'}",
        "progress=false",
        f"workers={workers}",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    assert not BAR.search(res.stdout), res.stdout[-3000:]


def test_log_lines_are_not_drawn_over_by_bars(tmp_path, midi_pair):
    res = run_on_terminal(
        f"input={midi_pair}",
        "stages=[synthesize]",
        "synthesize=fluidsynth",
        f"run_dir={tmp_path / 'run'}",
        "progress=true",
        "workers=1",
    )
    assert res.returncode == 0, res.stdout[-3000:]
    assert BAR.search(res.stdout), "bars are drawn when asked for"
    for line in res.stdout.split("\n"):
        shown = re.sub(
            r"\x1b\[[0-9;]*[A-Za-z]", "", line.split("\r")[-1]
        )  # what a console shows of the line (tqdm moves the cursor up)
        if re.search(r"\b(INFO|WARNING|ERROR) ", shown):
            assert re.match(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ", shown), f"a log line drawn over: {line!r}"


# ---- 12. non-ASCII paths on the command line ----


def test_readme_shows_the_quoting_for_unicode_paths_and_it_works(tmp_path, example_audio, tiny_transcriber):
    readme = (REPO / "README.md").read_text()
    assert re.search(r"w2m2w 'input=[^']*練習曲[^']*'", readme), (
        "README shows a non-ASCII path quoted for the shell alone"
    )
    assert re.search(r"'input=\"[^\"]*練習曲[^\"]*\"'", readme), "...and Hydra's own quoting, which still works"
    src = tmp_path / "練習曲 op.10.wav"
    shutil.copy(example_audio, src)
    for n, given in enumerate([f"input={src}", f'input="{src}"', str(src)]):  # plain, Hydra-quoted, bare
        res = run(given, *transcribe(tiny_transcriber, tmp_path / f"run{n}"))
        assert res.returncode == 0, res.stdout[-3000:]
        assert list(summary(tmp_path / f"run{n}")["pieces"]) == ["練習曲 op.10"]
