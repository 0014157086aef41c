"""A batch of pieces through the stages: in this process, or in N worker processes.

Every worker loads its models once (StageRunner, through each stage's `load`) and then takes pieces one by one;
the parent only hands out pieces, draws progress and, when told to stop, stops them. The cores are split between
the workers (torch and numba threads, CPU affinity where the OS has it), so N
workers on N cores do not fight over them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from w2m2w.files import LockedError
from w2m2w.run.piece import Hashes, PieceResult, Plan, run_piece
from w2m2w.run.pool import DIED, Worker, WorkerPool
from w2m2w.run.progress import set_bars
from w2m2w.run.stopping import (
    Interrupted,
    StopSignals,
    die_with_parent,
    signals_blocked,
    unblock_signals,
    worker_signals,
)

log = logging.getLogger("w2m2w")


class StageRunner:
    """The plan's stages with their models loaded once, for any number of pieces."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        for stage in plan.stages:
            stage.load()
        self.hashes = Hashes()

    def run(self, piece: str, source: str | Path, on_event: Callable | None = None) -> PieceResult:
        return run_piece(piece, Path(source), self.plan, self.hashes, on_event)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset), not the machine
    except AttributeError:
        return os.cpu_count() or 1


def limit_threads(threads: int, cores: list[int] | None = None) -> None:
    """Give this process `threads` threads (torch, numba, OpenMP) and, if given, pin it to `cores`."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    if cores and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, cores)
        except OSError:
            pass  # affinity is an optimisation only
    import torch

    torch.set_num_threads(threads)


# ---- worker processes -------------------------------------------------------------------

STOP_GRACE_S = 5.0  # after a stop, how long pieces in flight get to clean up before their workers are killed


class _PipeLogHandler(logging.Handler):
    """Log records of a worker, sent to the parent through the worker's pipe (the parent's handlers print them)."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.msg, record.args, record.exc_info, record.exc_text = self.format(record), None, None, None
            self._send(("log", record))
        except Exception:  # a log line must never end a worker
            pass


def _serve(conn, index: int, parent_pid: int, plan: Plan, threads: int, level: int) -> None:
    """A worker process: load the models once, then run the pieces the parent sends until it sends None or a stop comes."""
    stop = worker_signals()
    lock = threading.Lock()

    def send(msg: Any) -> None:
        with lock, signals_blocked():  # never half a message in the pipe
            conn.send(msg)

    try:
        die_with_parent(parent_pid)
        unblock_signals()  # the parent started us with stop signals held back; from here they interrupt cleanly
        set_bars(False)  # the parent draws the bars; per-piece bars from N workers would garble them
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        limit_threads(threads, [cores[(index * threads + k) % len(cores)] for k in range(threads)] if cores else None)
        handler = _PipeLogHandler(send)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(level)
        runner = StageRunner(plan)
        while not stop.requested:
            task = conn.recv()
            if task is None:
                return
            piece, source = task
            result = runner.run(piece, source, on_event=lambda p, s, info: send(("event", p, s, info)))
            send(("result", result))
    except (Interrupted, KeyboardInterrupt, EOFError, OSError):
        pass  # stopped, or the parent is gone
    # leave at once: the piece is cleaned up and its locks go with the process; an orderly interpreter exit
    # with torch loaded takes seconds, and nobody waits for this process's exit handlers
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _interrupted(piece: str, source: str) -> PieceResult:
    return PieceResult(piece, source, status="interrupted", error=f"{source}: interrupted")


def run_local(
    pieces: dict[str, Path], plan: Plan, workers: int, progress=None, stop: StopSignals | None = None
) -> list[PieceResult]:
    """Run `pieces` (id -> input) with `workers` processes (1: in this process); results in input order.

    `progress` (a BatchProgress or None) hears of every finished stage and piece. Once `stop`
    is requested no piece starts; pieces in flight are interrupted, and the results cover
    only pieces that started.
    """
    stop = stop or StopSignals()
    workers = max(1, min(workers, len(pieces)))
    if workers == 1:
        set_bars(progress is not None and progress.enabled)
        runner = StageRunner(plan)
        results = []
        for pid, src in pieces.items():
            if stop.requested:
                break
            try:
                with stop.interruptible():
                    r = runner.run(pid, src, on_event=progress.stage_done if progress else None)
            except (
                Interrupted
            ):  # between stages of run_piece's bookkeeping: nothing half-written is left by the contract
                r = _interrupted(pid, str(src))
            if progress:
                progress.piece_done(r)
            results.append(r)
        return results
    return _run_workers(pieces, plan, workers, progress, stop)


def _run_workers(pieces: dict[str, Path], plan: Plan, workers: int, progress, stop: StopSignals) -> list[PieceResult]:
    todo = list(pieces.items())
    out: dict[str, PieceResult] = {}
    respawns = len(pieces)  # a worker that keeps dying (it cannot load its models) must not be restarted for ever
    pool = WorkerPool(
        _serve, (plan, max(1, usable_cores() // workers), logging.getLogger().getEffectiveLevel()), workers
    )

    def handle(w: Worker, msg: Any) -> None:
        nonlocal respawns
        if msg is DIED:
            if w.task is not None:  # killed, out of memory: its piece fails, not the batch
                pid, src = w.task
                _clean_after_kill(plan, pid)  # at once: its temporary file must not wait for the end of the batch
                r = (
                    _interrupted(pid, src)
                    if stop.requested
                    else PieceResult(
                        pid, src, status="failed", error=f"{src}: worker process died (exit code {w.process.exitcode})"
                    )
                )
                if r.status == "failed":
                    log.error("%s", r.error)
                out[pid] = r
                if progress:
                    progress.piece_done(r)
            if stop.requested or not todo:
                return
            if respawns > 0:
                respawns -= 1
                pool.start_worker()
            elif not pool.workers:  # nothing left to run them: they fail, named
                for pid, src in todo:
                    out[pid] = PieceResult(
                        pid, str(src), status="failed", error=f"{src}: no worker process could run it"
                    )
                todo.clear()
            return
        kind = msg[0]
        if kind == "log":
            logging.getLogger(msg[1].name).handle(msg[1])
        elif kind == "event" and progress:
            progress.stage_done(*msg[1:])
        elif kind == "result":
            r = msg[1]
            out[r.piece] = r
            w.task = None
            if progress:
                progress.piece_done(r)

    try:
        while (todo or pool.busy()) and not stop.requested:
            for w in pool.idle():
                if todo:
                    pid, src = todo.pop(0)
                    pool.submit(w, (pid, str(src)))
            for w, msg in pool.wait(0.2):
                handle(w, msg)
        if stop.requested:  # pieces in flight stop and clean up; what is not back in time is killed
            pool.interrupt()
            deadline = time.monotonic() + STOP_GRACE_S
            while pool.busy() and time.monotonic() < deadline and stop.count < 2:
                for w, msg in pool.wait(0.2):
                    handle(w, msg)
    finally:
        killed = pool.close(grace=0.0 if stop.requested else STOP_GRACE_S)
        for w in killed:
            if w.task is not None and w.task[0] not in out:
                out[w.task[0]] = _interrupted(*w.task)
                _clean_after_kill(plan, w.task[0])
    return [out[pid] for pid in pieces if pid in out]


def _clean_after_kill(plan: Plan, piece: str) -> None:
    """Temporary files of a piece whose worker was killed mid-write (its locks died with it)."""
    for stage in plan.stages:
        out = plan.run_dir.output(stage.name, piece)
        try:
            with plan.run_dir.lock(stage.name, piece):  # nobody else writes it now
                for tmp in out.parent.glob(f".{out.name}.tmp-*"):
                    plan.run_dir.remove(tmp)
        except (LockedError, OSError):
            pass  # another run took it over, or the folder is gone: its own cleanup is not ours
