"""The pipeline on a Ray cluster (`executor=ray`; pip install 'w2m2w[ray]').

One actor per worker loads the models once (StageRunner) and takes pieces one at a
time, so a long piece never holds up a queue of short ones. Actors read and write
the run directory directly: it must be on storage every node sees, at the same path.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from w2m2w.run.local import STOP_GRACE_S, StageRunner, limit_threads
from w2m2w.run.piece import PieceResult, Plan
from w2m2w.run.progress import set_bars
from w2m2w.run.reaper import children, start_reaper
from w2m2w.run.settings import RayExecutor
from w2m2w.run.stopping import Interrupted, StopSignals

log = logging.getLogger("w2m2w")


class StageWorker:
    """Body of the Ray actor: the stages with their models, on whatever node Ray chose.

    A threaded actor (two threads): while run() works on a piece, interrupt() can stop it.
    Ray's own cancel only raises a flag for actor tasks, which a stage never reads.
    """

    def __init__(self, plan: Plan, cpus: float, use_gpu: bool) -> None:
        set_bars(False)  # the driver draws the bars
        self._running: int | None = None  # thread id of the piece in flight
        self._lock = threading.Lock()
        limit_threads(max(1, int(cpus)))
        if use_gpu:  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU
            on_gpu = [
                s.with_settings(device="cuda") if getattr(s.settings, "device", None) == "cpu" else s
                for s in plan.stages
            ]
            plan = dataclasses.replace(plan, stages=on_gpu)
        self.runner = StageRunner(plan)

    def run(self, piece: str, source: str) -> PieceResult:
        with self._lock:
            self._running = threading.get_ident()
        try:
            return self.runner.run(piece, source)
        except Interrupted:  # it came between the stages' own handlers
            return PieceResult(piece, source, status="interrupted", error=f"{source}: interrupted")
        finally:
            with self._lock:
                self._running = None

    def interrupt(self) -> bool:
        """Raise Interrupted in the thread running a piece (at its next Python instruction); False when idle."""
        with self._lock:
            if self._running is None:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._running), ctypes.py_object(Interrupted))
            return True

    def node(self) -> str:
        import socket

        return socket.gethostname()


def _gpus_per_worker(setting: Any, cluster: dict[str, float]) -> float:
    if setting in (None, "auto"):
        return 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    return float(setting)


def run_ray(
    pieces: dict[str, Path], plan: Plan, ecfg: RayExecutor, progress=None, stop: StopSignals | None = None
) -> list[PieceResult]:
    """Run `pieces` on Ray actors; results in input order. `ecfg` is conf/executor/ray.yaml's settings.

    Once `stop` is requested no piece starts; pieces in flight are interrupted and get
    STOP_GRACE_S to clean up before their actors are killed. Results cover pieces that started.
    """
    stop = stop or StopSignals()
    try:
        import ray
    except ImportError:
        raise RuntimeError("executor=ray needs Ray: pip install 'w2m2w[ray]'") from None
    kwargs = dict(ecfg.init_kwargs or {})
    if ecfg.address:
        kwargs["address"] = str(ecfg.address)
    elif ecfg.num_cpus:
        kwargs["num_cpus"] = int(ecfg.num_cpus)
    started = not ray.is_initialized()
    reaper = None
    if started:
        before = set(children(os.getpid()))
        ray.init(include_dashboard=False, logging_level=logging.WARNING, **kwargs)
        if (
            not ecfg.address
        ):  # a local instance: its processes end with this one, even when it is killed (run/reaper.py)
            reaper = start_reaper([p for p in children(os.getpid()) if p not in before])
    try:
        cluster = ray.cluster_resources()
        cpus = float(ecfg.cpus_per_worker or 1)
        gpus = _gpus_per_worker(ecfg.gpus_per_worker, cluster)
        fit = int(cluster.get("GPU", 0) // gpus) if gpus else int(cluster.get("CPU", 1) // cpus)
        n = max(1, min(int(ecfg.workers or fit or 1), len(pieces)))
        log.info(
            "ray: %d actor(s), %.3g CPU and %.3g GPU each, cluster %s",
            n,
            cpus,
            gpus,
            {k: cluster[k] for k in ("CPU", "GPU") if k in cluster},
        )
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus, max_concurrency=2)(StageWorker)
        actors = [actor.remote(plan, cpus, gpus > 0) for _ in range(n)]
        todo = list(pieces.items())
        idle = list(actors)
        pending: dict[Any, tuple[Any, str]] = {}
        out: dict[str, PieceResult] = {}

        def collect(ref: Any) -> None:
            a, pid = pending.pop(ref)
            try:
                r = ray.get(ref)
            except Exception as exc:  # the actor died or could not load its models: this piece fails, not the batch
                first = str(exc).strip().splitlines()
                r = PieceResult(
                    pid,
                    str(pieces[pid]),
                    status="failed",
                    error=f"{pieces[pid]}: ray worker failed: {first[-1] if first else type(exc).__name__}",
                )
                if stop.requested:
                    r = PieceResult(pid, str(pieces[pid]), status="interrupted", error=f"{pieces[pid]}: interrupted")
                else:
                    log.error("%s", r.error)
                    a = actor.remote(plan, cpus, gpus > 0)  # a fresh actor for the next piece
                    actors.append(a)
            out[pid] = r
            if progress:
                for stage, info in r.stages.items():
                    progress.stage_done(pid, stage, info)
                progress.piece_done(r)
            idle.append(a)

        while (todo or pending) and not stop.requested:
            while idle and todo:
                a, (pid, src) = idle.pop(), todo.pop(0)
                pending[a.run.remote(pid, str(src))] = (a, pid)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)  # a timeout, so a stop request is seen
            for ref in done:
                collect(ref)
        if pending:  # told to stop: interrupt the pieces in flight, give them a moment to clean up
            for a, _ in pending.values():
                a.interrupt.remote()
            deadline = time.monotonic() + STOP_GRACE_S
            while pending and time.monotonic() < deadline and stop.count < 2:
                for ref in ray.wait(list(pending), num_returns=1, timeout=0.2)[0]:
                    collect(ref)
            for _, pid in list(pending.values()):
                out[pid] = PieceResult(pid, str(pieces[pid]), status="interrupted", error=f"{pieces[pid]}: interrupted")
        for a in actors:
            ray.kill(a)
        return [out[pid] for pid in pieces if pid in out]
    finally:
        if started:
            ray.shutdown()
        if reaper is not None:
            reaper.terminate()
