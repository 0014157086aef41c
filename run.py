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
from w2m2w.pipeline import Hashes, check_stages, merge_summaries, summarize
from w2m2w.progress import BatchProgress, print_summary
from w2m2w.report import write_report
from w2m2w.staging import InputError, discover_inputs, input_kind, remove_stale_temps, safe_component, stage_dir, update_json, update_run_json, write_json

REPO = Path(__file__).resolve().parent
DEMO = REPO / "assets" / "demo" / "bach_prelude_c.flac"
log = logging.getLogger("w2m2w")


def resolve_inputs(cfg: DictConfig, run_dirs: list[Path]) -> dict[str, Path]:
    """Pieces from cfg.input, else from the first run.json in `run_dirs` (a rerun), else the bundled demo."""
    if cfg.input is not None:
        return discover_inputs(str(cfg.input))
    for d in run_dirs:
        if (d / "run.json").is_file():
            import json

            return {k: Path(v["source"]) for k, v in json.loads((d / "run.json").read_text()).get("inputs", {}).items()}
    return discover_inputs(str(DEMO))


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
    EXIT["code"] = max(EXIT["code"], pipeline(cfg, *job_dirs(cfg)))


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
    """Run the configured stages over every piece; 0 when all went through, 1 if any failed, 2 for bad arguments."""
    logging.getLogger("w2m2w").setLevel(cfg.log_level)
    run_dir = Path(run_dir or cfg.run_dir)
    t0 = time.time()
    try:
        stages = check_stages(list(cfg.stages))
        modules = {s: importlib.import_module(f"stages.{s}") for s in stages}
        pieces = shard_of(resolve_inputs(cfg, [run_dir, *(reuse_dirs or [])]), int(cfg.shard), int(cfg.num_shards))
    except (ValueError, InputError, ModuleNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    # plain, resolved stage configs: they travel to worker processes and cluster nodes
    cfgs = {s: OmegaConf.create(OmegaConf.to_container(cfg[s], resolve=True)) for s in stages}
    try:
        # load models (and check weights) once, before any piece: a bad weights file is one clear error
        for s in stages:
            if hasattr(modules[s], "prepare"):
                modules[s].prepare(cfgs[s])
    except Exception as exc:
        log.error("%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return 2
    for s in stages:
        remove_stale_temps(stage_dir(run_dir, s))
    hashes = Hashes()
    update_run_json(run_dir, {pid: {"source": str(src.resolve()), "kind": input_kind(src), "sha256": hashes(src) if src.is_file() else None} for pid, src in pieces.items()}, __version__)
    spec = BatchSpec(stages, cfgs, str(run_dir.resolve()), bool(cfg.force), [str(d.resolve()) for d in reuse_dirs or []])
    progress = BatchProgress(list(pieces), stages, enabled=bool(cfg.progress))
    try:
        with logging_redirect_tqdm():  # log lines above the bars, not through them
            if cfg.executor.name == "ray":
                from w2m2w.ray_executor import run_ray

                results = run_ray(pieces, spec, cfg.executor, progress)
            else:
                workers = int(cfg.workers or usable_cores())
                results = run_local(pieces, spec, workers, progress)
    finally:
        progress.close()
    summary = summarize(results)
    summary.update(stages=stages, run_dir=str(run_dir), seconds=round(time.time() - t0, 3), config=OmegaConf.to_container(cfg, resolve=True))
    print_summary(summary, stages)
    if int(cfg.num_shards) > 1:  # the other shards' pieces stay in summary.json (and so in the report)
        summary["shard"] = f"{cfg.shard} of {cfg.num_shards}"
        summary = update_json(run_dir / "summary.json", lambda old: merge_summaries(old, summary))
    else:
        write_json(run_dir / "summary.json", summary)
    try:
        report = write_report(run_dir, summary)
        log.info("report: %s", report)
    except Exception as exc:  # the report is a view of the run; failing to draw it must not fail the run
        log.warning("%s: report not written: %s", run_dir / "report.html", exc)
    mine = [p["status"] for pid, p in summary["pieces"].items() if pid in pieces]
    return 1 if "failed" in mine or "locked" in mine else 0


if __name__ == "__main__":
    main()
    sys.exit(EXIT["code"])
