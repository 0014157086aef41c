"""A warm start for the tests' `python run.py ...` commands: one process imports the command's modules once, then
forks a child per command, which runs run.py as `__main__` with the test's arguments, folder, environment and
output files, as a fresh interpreter would.

Why: a command spends most of its CPU importing torch, Hydra, music21 and the stages before it reads one setting
(about 4 of the 7 CPU seconds of a tiny transcription), and the suite runs hundreds of them. Forking after the
imports keeps every run isolated (nothing a run does reaches the server or the next run) while paying for the imports
once per test worker. What a fork cannot give is left to real processes (tests/conftest.run_command decides):
anything read when the interpreter starts (PYTHONPATH, the fault-injecting sitecustomize), concurrent runs, signals
sent by the tests, the installed command.

Protocol, one JSON line each way on stdin/stdout: {"args", "cwd", "env", "stdout", "stderr", "new_session"} in,
{"pid"} then {"returncode"} out.
"""

from __future__ import annotations

import io
import json
import os
import runpy
import signal
import sys
import traceback
from pathlib import Path

RUN_PY = Path(__file__).resolve().parent.parent / "run.py"
# what a run imports, at the top of its modules or when it first transcribes, continues, renders or writes a score
WARM = (
    "torch",
    "numpy",
    "hydra",
    "omegaconf",
    "w2m2w.cli",
    "stages",
    "w2m2w.transcription",
    "w2m2w.generation",
    "w2m2w.musicxml",
    "w2m2w.run.report",
    "w2m2w.run.local",
    "librosa",
    "music21",
    "soundfile",
    "pretty_midi",
    "mido",
    "safetensors.torch",
    "tqdm",
)


def _child(req: dict) -> None:
    """Become the command: never returns."""
    code = 1
    try:
        if req.get("new_session"):
            os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal starts a command
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = out if req["stderr"] == req["stdout"] else os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True)
        sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fd 0 lives as long as the process
        sys.argv = [str(RUN_PY), *req["args"]]
        try:
            runpy.run_path(str(RUN_PY), run_name="__main__")
            code = 0
        except SystemExit as e:  # what the interpreter does with sys.exit's argument
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - an uncaught exception: its traceback and exit 1, as python prints it
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def main() -> None:
    for name in WARM:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - an optional module missing only costs its import in each run
            pass
    proto_in, proto_out = sys.stdin, sys.stdout
    proto_out.write(json.dumps({"ready": True}) + "\n")
    proto_out.flush()
    for line in proto_in:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        proto_out.write(json.dumps({"pid": pid}) + "\n")
        proto_out.flush()
        _, status = os.waitpid(pid, 0)
        proto_out.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    main()
