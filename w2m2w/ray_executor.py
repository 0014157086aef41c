"""The pipeline on a Ray cluster (`executor=ray`; pip install 'w2m2w[ray]').

One actor per worker loads the models once (StageRunner) and takes pieces one at a
time, so a long piece never holds up a queue of short ones. Actors read and write
the run directory directly: it must be on storage every node sees, at the same path.
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from .batch import BatchSpec, StageRunner, limit_threads
from .pipeline import PieceResult

log = logging.getLogger("w2m2w")


class StageWorker:
    """Body of the Ray actor: the stages with their models, on whatever node Ray chose."""

    def __init__(self, spec: BatchSpec, cpus: float, use_gpu: bool) -> None:
        os.environ["TQDM_DISABLE"] = "1"  # the driver draws the bars
        limit_threads(max(1, int(cpus)))
        if use_gpu:
            spec = copy.deepcopy(spec)
            for c in spec.cfgs.values():
                if "device" in c and str(c.device) == "cpu":
                    c.device = "cuda"  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU
        self.runner = StageRunner(spec)

    def run(self, piece: str, source: str) -> PieceResult:
        return self.runner.run(piece, source)

    def node(self) -> str:
        import socket

        return socket.gethostname()


def _gpus_per_worker(setting: Any, cluster: dict[str, float]) -> float:
    if setting in (None, "auto"):
        return 1.0 if cluster.get("GPU", 0) >= 1 else 0.0
    return float(setting)


def run_ray(pieces: dict[str, Path], spec: BatchSpec, ecfg: Any, progress=None) -> list[PieceResult]:
    """Run `pieces` on Ray actors; results in input order. `ecfg` is conf/executor/ray.yaml."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("executor=ray needs Ray: pip install 'w2m2w[ray]'") from None
    kwargs = dict(ecfg.get("init_kwargs") or {})
    if ecfg.get("address"):
        kwargs["address"] = str(ecfg.address)
    elif ecfg.get("num_cpus"):
        kwargs["num_cpus"] = int(ecfg.num_cpus)
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, **kwargs)
    try:
        cluster = ray.cluster_resources()
        cpus = float(ecfg.get("cpus_per_worker") or 1)
        gpus = _gpus_per_worker(ecfg.get("gpus_per_worker"), cluster)
        fit = int(cluster.get("GPU", 0) // gpus) if gpus else int(cluster.get("CPU", 1) // cpus)
        n = max(1, min(int(ecfg.get("workers") or fit or 1), len(pieces)))
        log.info("ray: %d actor(s), %.3g CPU and %.3g GPU each, cluster %s", n, cpus, gpus, {k: cluster[k] for k in ("CPU", "GPU") if k in cluster})
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus)(StageWorker)
        actors = [actor.remote(spec, cpus, gpus > 0) for _ in range(n)]
        todo = list(pieces.items())
        idle = list(actors)
        pending: dict[Any, tuple[Any, str]] = {}
        out: dict[str, PieceResult] = {}
        while todo or pending:
            while idle and todo:
                a, (pid, src) = idle.pop(), todo.pop(0)
                pending[a.run.remote(pid, str(src))] = (a, pid)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                a, pid = pending.pop(ref)
                try:
                    r = ray.get(ref)
                except Exception as exc:  # the actor died or could not load its models: this piece fails, not the batch
                    first = str(exc).strip().splitlines()
                    r = PieceResult(pid, str(pieces[pid]), status="failed", error=f"{pieces[pid]}: ray worker failed: {first[-1] if first else type(exc).__name__}")
                    log.error("%s", r.error)
                    a = actor.remote(spec, cpus, gpus > 0)  # a fresh actor for the next piece
                out[pid] = r
                if progress:
                    for stage, info in r.stages.items():
                        progress.stage_done(pid, stage, info)
                    progress.piece_done(r)
                idle.append(a)
        for a in actors:
            ray.kill(a)
        return [out[pid] for pid in pieces]
    finally:
        if started:
            ray.shutdown()
