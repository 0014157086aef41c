"""w2m2w pipeline: `python run.py [input=PATH] [run_dir=DIR] [stages=[...]] [force=true]`.

Hydra is only here, at the edge: it composes conf/ and hands each stage its
config group; w2m2w.pipeline does the work.
"""
from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from tqdm.contrib.logging import logging_redirect_tqdm

from w2m2w import __version__
from w2m2w.batch import BatchSpec, run_local, usable_cores
from w2m2w.io_errors import write_failure
from w2m2w.pipeline import Hashes, check_stages, merge_summaries, settle_locked, summarize
from w2m2w.progress import BatchProgress, print_summary
from w2m2w.report import write_report
from w2m2w.staging import (InputError, UnsafePieceIdError, check_piece_id, discover_inputs, input_kind, remove_stale_temps, safe_component, stage_dir,
                           update_json, update_run_json, writable_problem, write_json)
from w2m2w.stopping import Interrupted, StopSignals

REPO = Path(__file__).resolve().parent
DEMO = REPO / "assets" / "demo" / "bach_prelude_c.flac"
log = logging.getLogger("w2m2w")


def resolve_inputs(cfg: DictConfig, run_dirs: list[Path]) -> dict[str, Path]:
    """Pieces from cfg.input, else from the first run.json in `run_dirs` (a rerun), else the bundled demo."""
    if cfg.input is not None:
        return discover_inputs(str(cfg.input))
    for d in run_dirs:
        if (d / "run.json").is_file():
            return read_run_json(d / "run.json")
    return discover_inputs(str(DEMO))


def read_run_json(path: Path) -> dict[str, Path]:
    """Piece id -> source of a run.json, every id checked: a damaged or edited file must not send writes elsewhere."""
    import json

    try:
        inputs = json.loads(path.read_text()).get("inputs", {})
        if not isinstance(inputs, dict):
            raise ValueError("'inputs' is not an object")
        return {check_piece_id(k): Path(v["source"]) for k, v in inputs.items()}
    except UnsafePieceIdError as exc:
        raise InputError(f"{path}: {exc}; the file is damaged or was edited by hand, fix or remove that entry") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(f"{path}: not a readable run.json ({type(exc).__name__}: {exc})") from None


def swept_name(num: int) -> str:
    """A multirun job's folder under run_dir: the values of its swept keys ('generate.temperature=1.2').

    Hydra's override_dirname would list every override, paths included. The swept keys are read
    from the sweep's multirun.yaml (on the shared run_dir, so this works on cluster nodes too),
    else from the command line. `shard` is left out, so the shards of one setting share a run
    directory (and a sweep over shards alone writes straight into run_dir).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        hc = HydraConfig.get()
        parser = OverridesParser.create()
        saved = Path(hc.sweep.dir) / "multirun.yaml"
        task = list(OmegaConf.load(saved).hydra.overrides.task) if saved.is_file() else [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        swept = {o.get_key_element() for o in parser.parse_overrides(task) if o.is_sweep_override()} - {"shard"}
        mine = {o.get_key_element(): o.value() for o in parser.parse_overrides(list(hc.overrides.task))}
    except Exception:  # no way to tell what is swept: the job number still keeps jobs apart
        return str(num)
    return ",".join(f"{k}={safe_component(str(mine[k]))}" for k in sorted(swept) if k in mine)


OmegaConf.register_new_resolver("w2m2w_swept_name", swept_name, replace=True)

def shard_of(pieces: dict[str, Path], shard: int, num_shards: int) -> dict[str, Path]:
    """Every num_shards-th piece (sorted by id) starting at `shard`: N jobs, one per shard, cover the input once."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in 0..num_shards-1, got shard={shard} num_shards={num_shards}")
    return {pid: pieces[pid] for i, pid in enumerate(sorted(pieces)) if i % num_shards == shard}


EXIT = {"code": 0}  # hydra.main drops the task's return value, so the exit code travels here


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    code = pipeline(cfg, *job_dirs(cfg))
    EXIT["code"] = max(EXIT["code"], code)
    if code > 128:  # stopped by a signal: the jobs after it in a sweep do not start
        sys.exit(code)


def job_dirs(cfg: DictConfig) -> tuple[Path, list[Path]]:
    """This call's run directory and the run directories it may reuse outputs from.

    A single run works in run_dir. In a multirun (`-m`) each job works in
    run_dir/<job number>_<its overrides> and reuses current outputs of its siblings and of
    run_dir itself, so a sweep over generate.* transcribes each piece once.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    reuse = [Path(d) for d in cfg.get("reuse_from") or []]
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return Path(cfg.run_dir), reuse
    mine = Path(hc.runtime.output_dir)
    root = Path(hc.sweep.dir)
    siblings = sorted(d for d in root.iterdir() if (d / "run.json").is_file() and d.resolve() != mine.resolve()) if root.is_dir() else []
    return mine, [d for d in [root, *siblings, *reuse] if d.resolve() != mine.resolve()]


def pipeline(cfg: DictConfig, run_dir: Path | None = None, reuse_dirs: list[Path] | None = None) -> int:
    """Run the configured stages over every piece; 0 when all went through, 1 if any failed, 2 for bad arguments,
    130 or 143 when stopped by SIGINT or SIGTERM (after writing the summary and report of what completed)."""
    logging.getLogger("w2m2w").setLevel(cfg.log_level)
    logging.captureWarnings(True)  # a library's warning is a log line too: above the bars, in run.log
    run_dir = Path(run_dir or cfg.run_dir)
    with StopSignals() as stop:
        return _pipeline(cfg, run_dir, reuse_dirs or [], stop)


def _pipeline(cfg: DictConfig, run_dir: Path, reuse_dirs: list[Path], stop: StopSignals) -> int:
    t0 = time.time()
    problem = writable_problem(run_dir)
    if problem:
        log.error("%s", problem)
        return 2
    try:
        stages = check_stages(list(cfg.stages))
        modules = {s: importlib.import_module(f"stages.{s}") for s in stages}
        pieces = shard_of(resolve_inputs(cfg, [run_dir, *reuse_dirs]), int(cfg.shard), int(cfg.num_shards))
    except (ValueError, InputError, ModuleNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    # plain, resolved stage configs: they travel to worker processes and cluster nodes
    cfgs = {s: OmegaConf.create(OmegaConf.to_container(cfg[s], resolve=True)) for s in stages}
    try:
        # load models (and check weights) once, before any piece: a bad weights file is one clear error
        with stop.interruptible():
            for s in stages:
                if hasattr(modules[s], "prepare"):
                    modules[s].prepare(cfgs[s])
    except Exception as exc:
        log.error("%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 2
    except Interrupted:  # told to stop while loading: nothing ran
        log.warning("stopped by %s before any piece ran", _signame(stop))
        return stop.exit_code
    for s in stages:
        remove_stale_temps(stage_dir(run_dir, s), root=run_dir)
    hashes = Hashes()
    update_run_json(run_dir, {pid: {"source": str(src.resolve()), "kind": input_kind(src), "sha256": hashes(src) if src.is_file() else None} for pid, src in pieces.items()}, __version__)
    spec = BatchSpec(stages, cfgs, str(run_dir.resolve()), bool(cfg.force), [str(d.resolve()) for d in reuse_dirs])
    progress = BatchProgress(list(pieces), stages, enabled=bool(cfg.progress))
    try:
        with logging_redirect_tqdm():  # log lines above the bars, not through them
            if cfg.executor.name == "ray":
                from w2m2w.ray_executor import run_ray

                results = run_ray(pieces, spec, cfg.executor, progress, stop)
            else:
                workers = int(cfg.workers or usable_cores())
                results = run_local(pieces, spec, workers, progress, stop)
    finally:
        progress.close()
    # what another run finished while this one ran counts as done: the summary describes the folder as it is
    results = [settle_locked(r, stages, modules, cfgs, run_dir, hashes) for r in results]
    summary = summarize(results)
    summary.update(stages=stages, run_dir=str(run_dir), seconds=round(time.time() - t0, 3), config=OmegaConf.to_container(cfg, resolve=True))
    if stop.requested:
        summary["stopped"] = f"{_signame(stop)}: {len(pieces) - len(results)} of {len(pieces)} pieces not started"
    print_summary(summary, stages)
    code = _write_summary(cfg, run_dir, summary)
    try:
        report = write_report(run_dir, summary)
        log.info("report: %s", report)
    except Exception as exc:  # the report is a view of the run; failing to draw it must not fail the run
        log.warning("%s: report not written: %s", run_dir / "report.html", write_failure(exc, run_dir / "report.html") or exc)
    if stop.requested:
        log.warning("stopped by %s: %s", _signame(stop), _counts(summary))
        return stop.exit_code
    mine = [p["status"] for pid, p in summary["pieces"].items() if pid in pieces]
    return max(code, 1 if "failed" in mine or "locked" in mine else 0)


def _signame(stop: StopSignals) -> str:
    import signal

    return signal.Signals(stop.signum).name if stop.signum else "a signal"


def _counts(summary: dict) -> str:
    done = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items())) or "no piece finished"
    return "; ".join([done, summary["stopped"].split(": ", 1)[1], "summary and report written"])


def _write_summary(cfg: DictConfig, run_dir: Path, summary: dict) -> int:
    """Write summary.json (merged with the other shards' when sharded); 1 with one line if the disk refuses."""
    try:
        if int(cfg.num_shards) > 1:  # the other shards' pieces stay in summary.json (and so in the report)
            summary["shard"] = f"{cfg.shard} of {cfg.num_shards}"
            summary.update(update_json(run_dir / "summary.json", lambda old: merge_summaries(old, summary), root=run_dir))
        else:
            write_json(run_dir / "summary.json", summary, root=run_dir)
    except OSError as exc:
        log.error("%s", write_failure(exc, run_dir / "summary.json") or f"{run_dir / 'summary.json'}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    main()
    sys.exit(EXIT["code"])
