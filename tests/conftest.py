"""Shared fixtures: tiny models saved through the normal weights format, and generated audio."""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tqdm

REPO = Path(__file__).resolve().parent.parent

# mutation testing forks the test process once per mutant and kills the ones that hang: tqdm's default lock is a
# process-shared semaphore, and a mutant killed inside a progress bar left it held, so every later fork waited on it
# for ever (seen on train/loop.py). A lock of this process alone, and no monitor thread, cannot outlive a child.
tqdm.tqdm.set_lock(threading.RLock())
tqdm.tqdm.monitor_interval = 0

MAX_WORKERS = 4  # `-n auto` (pyproject addopts) caps here: each worker runs the real commands in subprocesses

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # one thread per xdist worker, so N workers share N cores instead of each starting one thread per core; set
    # before torch is imported here, and inherited by the commands the tests run as subprocesses
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core this process may use, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    """Under xdist, torch in each worker uses one intra-op thread (the environment above covers OpenMP and MKL)."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        import torch

        torch.set_num_threads(1)
    yield


def piano_like(notes: np.ndarray, sr: int = 16000, seconds: float | None = None) -> np.ndarray:
    """Decaying harmonic tones for a note list (n, 4): a cheap stand-in for a piano recording."""
    end = seconds if seconds is not None else (float(notes[:, 1].max()) + 0.5 if len(notes) else 1.0)
    y = np.zeros(int(end * sr), dtype=np.float32)
    for on, off, pitch, vel in notes:
        a, b = int(on * sr), min(int(off * sr), len(y))
        t = np.arange(b - a) / sr
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3) if f0 * h < sr / 2)
        y[a:b] += (vel / 127) * 0.2 * np.exp(-3 * t) * tone
    return np.clip(y, -1, 1).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_transcriber(tmp_path_factory) -> Path:
    """A randomly initialised, tiny Onsets and Frames saved as a real weights file."""
    from dataclasses import asdict

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig

    torch.manual_seed(0)
    cfg = OnsetsFramesConfig(model_size=32, lstm_units=8)
    model = OnsetsFrames(cfg)
    with torch.no_grad():  # outputs biased towards "note": an untrained model that writes notes exercises more
        for head in (model.onset_stack, model.frame_acoustic, model.frame_combined):
            head[-1].bias.fill_(2.0)
    path = tmp_path_factory.mktemp("weights") / "onsets_frames.safetensors"
    save_weights(path, "onsets_frames", model.state_dict(), asdict(cfg), {"note": "untrained test model"})
    return path


@pytest.fixture(scope="session")
def example_audio(tmp_path_factory) -> Path:
    """A 3-second WAV of a few notes."""
    import soundfile as sf

    notes = np.array([[0.2, 1.0, 60, 80], [0.5, 1.5, 64, 70], [1.0, 2.5, 67, 90]], dtype=np.float64)
    path = tmp_path_factory.mktemp("audio") / "notes.wav"
    sf.write(str(path), piano_like(notes, seconds=3.0), 16000)
    return path


# What a process reads when it starts (tests/command_server.py forks after these took effect): a command whose
# environment differs from the server's in any of them runs as a fresh process.
_READ_AT_START = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "W2M2W_FAULTS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
COLD = "W2M2W_TEST_COLD_COMMANDS"  # set to 1: every command a fresh `python run.py` (to compare, or to debug)


class _CommandServer:
    """tests/command_server.py, started on first use in this process (one per xdist worker), stopped at exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.lock = threading.Lock()
        self._buffer = b""

    def _line(self, timeout: float | None = None) -> dict | None:
        """The server's next reply, or None when none came within timeout (read raw: a buffered reader could hold
        the second of two lines that arrived together while select waited on the pipe)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the command server ended (exit {self.proc.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def takes(self, env: dict[str, str]) -> bool:
        if os.environ.get(COLD) == "1" or not hasattr(os, "fork"):
            return False
        base = self.env or os.environ
        return all(env.get(k) == base.get(k) for k in _READ_AT_START)

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.env = dict(os.environ)
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "command_server.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=REPO,
                env=self.env,
            )
            self._buffer = b""
            assert self._line() == {"ready": True}
            atexit.register(self.stop)
        return self.proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float, merge: bool, new_session: bool):
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            proc = self._start()
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            req = {"args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(out if merge else err)}
            proc.stdin.write((json.dumps({**req, "new_session": new_session}) + "\n").encode())
            proc.stdin.flush()
            pid = self._line()["pid"]
            reply = self._line(timeout)
            if reply is None:  # as subprocess.run does: kill it, then say so
                os.kill(pid, signal.SIGKILL)
                self._line()
                raise subprocess.TimeoutExpired([sys.executable, "run.py", *args], timeout)
            code = reply["returncode"]
            text = out.read_text(errors="replace")
            return subprocess.CompletedProcess(
                [sys.executable, str(REPO / "run.py"), *args],
                code,
                text,
                "" if merge else err.read_text(errors="replace"),
            )


_SERVER = _CommandServer()


def run_command(
    args: list[str] | tuple[str, ...],
    cwd: Path = REPO,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    merge_stderr: bool = False,
    new_session: bool = False,
) -> subprocess.CompletedProcess:
    """`python run.py ARGS` run to its end: stdout and stderr as text (merged into stdout with merge_stderr).

    Through the warm command server where the environment allows it (tests/command_server.py says what that
    changes: nothing a run can see but the time its imports take), else as a fresh process."""
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    if _SERVER.takes(env):
        return _SERVER.run(list(args), cwd, env, timeout, merge_stderr, new_session)
    cmd = [sys.executable, str(REPO / "run.py"), *args]
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, text=True, start_new_session=new_session, stdin=subprocess.DEVNULL, **pipes
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "" if merge_stderr else err)


def run_pipeline(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The real `python run.py ARGS`, as a user runs it."""
    return run_command(args, cwd=cwd)


def run_on_terminal(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python run.py ARGS` on a pseudo-terminal 100 columns wide (stdout and stderr both, as on a console), where the
    run draws its progress bars; stdout is what the terminal received, line ends as "\\n"."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(
        slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0)
    )  # a new pty has 0 columns: tqdm would draw nothing
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:  # a full terminal buffer would block the run
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the run ended and the terminal with it
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    proc.wait(timeout=600)
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(seen).decode(errors="replace").replace("\r\n", "\n")  # the terminal's own line ends
    return subprocess.CompletedProcess(proc.args, proc.returncode, text, "")


TINY_WAVENET = dict(
    residual_channels=8, skip_channels=8, output_channels=16, layers=6, dilation_cycle=4, cond_channels=8
)


@pytest.fixture(scope="session")
def tiny_wavenet(tmp_path_factory) -> Path:
    """A randomly initialised, tiny WaveNet saved as a real weights file."""
    from dataclasses import asdict

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    cfg = WaveNetConfig(**TINY_WAVENET)
    path = tmp_path_factory.mktemp("weights") / "wavenet.safetensors"
    save_weights(path, "wavenet", WaveNet(cfg).state_dict(), asdict(cfg), {"note": "untrained test model"})
    return path


@pytest.fixture(scope="session")
def tiny_music_transformer(tmp_path_factory) -> Path:
    """A randomly initialised, tiny Music Transformer (relative attention) saved as a real weights file."""
    from dataclasses import asdict

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.music_transformer import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64)
    path = tmp_path_factory.mktemp("weights") / "music_transformer.safetensors"
    save_weights(
        path, "music_transformer", MusicTransformer(cfg).state_dict(), asdict(cfg), {"note": "untrained test model"}
    )
    return path


TINY_SOURCE_FILTER = dict(residual_channels=8, skip_channels=8, layers=4, dilation_cycle=4, cond_channels=8)


@pytest.fixture(scope="session")
def tiny_source_filter(tmp_path_factory) -> Path:
    """A randomly initialised, tiny source-filter WaveNet saved as a real weights file; its output head
    starts non-zero so the filter (not only the direct mix of the source) shapes the audio."""
    from dataclasses import asdict

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.models.source_filter import SourceFilterConfig, SourceFilterWaveNet

    torch.manual_seed(0)
    cfg = SourceFilterConfig(**TINY_SOURCE_FILTER)
    model = SourceFilterWaveNet(cfg)
    with torch.no_grad():
        torch.nn.init.normal_(model.head2.weight, std=0.3)
    path = tmp_path_factory.mktemp("weights") / "source_filter_wavenet.safetensors"
    save_weights(path, "source_filter_wavenet", model.state_dict(), asdict(cfg), {"note": "untrained test model"})
    return path
