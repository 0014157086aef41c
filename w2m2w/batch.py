"""A batch of pieces through the stages: in this process, or in N worker processes.

Every worker loads its models once (StageRunner) and then takes pieces one by one;
the parent only hands out pieces and draws progress. The cores are split between
the workers (torch and numba threads, CPU affinity where the OS has it), so N
workers on N cores do not fight over them.
"""
from __future__ import annotations

import importlib
import logging
import logging.handlers
import os
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .pipeline import Hashes, PieceResult, run_piece

log = logging.getLogger("w2m2w")


@dataclass
class BatchSpec:
    """Everything a worker needs to run pieces; picklable (stage configs are resolved DictConfigs)."""

    stages: list[str]
    cfgs: dict[str, Any]
    run_dir: str
    force: bool = False
    reuse_dirs: list[str] = field(default_factory=list)


class StageRunner:
    """The stage modules with their models loaded once, for any number of pieces."""

    def __init__(self, spec: BatchSpec) -> None:
        self.spec = spec
        self.modules = {s: importlib.import_module(f"stages.{s}") for s in spec.stages}
        for s in spec.stages:
            if hasattr(self.modules[s], "prepare"):
                self.modules[s].prepare(spec.cfgs[s])
        self.hashes = Hashes()

    def run(self, piece: str, source: str | Path, on_event: Callable | None = None) -> PieceResult:
        s = self.spec
        return run_piece(piece, Path(source), s.stages, self.modules, s.cfgs, Path(s.run_dir), force=s.force, hashes=self.hashes,
                         reuse_dirs=[Path(d) for d in s.reuse_dirs], on_event=on_event)


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

_RUNNER: StageRunner | None = None
_EVENTS = None


def _init_worker(spec: BatchSpec, counter, events, logs, threads: int, level: int) -> None:
    global _RUNNER, _EVENTS
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    mine = [cores[(index * threads + k) % len(cores)] for k in range(threads)] if cores else None
    os.environ["TQDM_DISABLE"] = "1"  # the parent draws the bars; per-piece bars from N workers would garble them
    limit_threads(threads, mine)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(logs)]  # the parent's handlers (console, Hydra's log file) print it
    root.setLevel(level)
    _EVENTS = events
    _RUNNER = StageRunner(spec)


def _worker_event(piece: str, stage: str, info: dict) -> None:
    _EVENTS.put((piece, stage, info))


def _run_in_worker(piece: str, source: str) -> PieceResult:
    return _RUNNER.run(piece, source, on_event=_worker_event)


def run_local(pieces: dict[str, Path], spec: BatchSpec, workers: int, progress=None) -> list[PieceResult]:
    """Run `pieces` (id -> input) with `workers` processes (1: in this process); results in input order.

    `progress` (a BatchProgress or None) hears of every finished stage and piece.
    """
    workers = max(1, min(workers, len(pieces)))
    if workers == 1:
        runner = StageRunner(spec)
        results = []
        for pid, src in pieces.items():
            r = runner.run(pid, src, on_event=progress.stage_done if progress else None)
            if progress:
                progress.piece_done(r)
            results.append(r)
        return results

    import multiprocessing as mp

    # spawn, not fork: a forked child inherits the parent's OpenMP pool state and can hang in torch
    ctx = mp.get_context("spawn")
    events, logs, counter = ctx.Queue(), ctx.Queue(), ctx.Value("i", 0)
    threads = max(1, usable_cores() // workers)
    listener = logging.handlers.QueueListener(logs, *_root_handlers(), respect_handler_level=True)
    listener.start()
    stop = threading.Event()

    def pump() -> None:  # worker events -> progress bars, in the parent
        import queue

        while not stop.is_set() or not events.empty():
            try:
                piece, stage, info = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if progress:
                progress.stage_done(piece, stage, info)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    out: dict[str, PieceResult] = {}
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(spec, counter, events, logs, threads, logging.getLogger().getEffectiveLevel())) as pool:
            futures = {pool.submit(_run_in_worker, pid, str(src)): pid for pid, src in pieces.items()}
            for fut in as_completed(futures):
                pid = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # a worker that died (killed, out of memory) fails its piece, not the batch
                    r = PieceResult(pid, str(pieces[pid]), status="failed", error=f"{pieces[pid]}: worker process failed: {exc}")
                    log.error("%s", r.error)
                out[pid] = r
                if progress:
                    progress.piece_done(r)
    finally:
        stop.set()
        pumper.join()
        listener.stop()
    return [out[pid] for pid in pieces]


def _root_handlers() -> list[logging.Handler]:
    return list(logging.getLogger().handlers) or [logging.StreamHandler()]
