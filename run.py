"""w2m2w pipeline: `python run.py [input=PATH] [run_dir=DIR] [stages=[...]] [force=true]`.

Hydra is only here, at the edge: it composes conf/ and hands each stage its
config group; w2m2w.pipeline does the work.
"""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from w2m2w import __version__
from w2m2w.pipeline import Hashes, check_stages, run_piece, summarize
from w2m2w.staging import InputError, discover_inputs, input_kind, remove_stale_temps, stage_dir, update_run_json, write_json

REPO = Path(__file__).resolve().parent
DEMO = REPO / "assets" / "demo" / "bach_prelude_c.flac"
log = logging.getLogger("w2m2w")


def resolve_inputs(cfg: DictConfig, run_dir: Path) -> dict[str, Path]:
    """Pieces from cfg.input, else from run_dir/run.json (a rerun), else the bundled demo."""
    if cfg.input is not None:
        return discover_inputs(str(cfg.input))
    run_json = run_dir / "run.json"
    if run_json.is_file():
        import json

        return {k: Path(v["source"]) for k, v in json.loads(run_json.read_text()).get("inputs", {}).items()}
    return discover_inputs(str(DEMO))


def print_summary(summary: dict, stream=sys.stdout) -> None:
    rows = [(pid, p["status"], p["error"] or "") for pid, p in summary["pieces"].items()]
    width = max([len(r[0]) for r in rows] + [5])
    print(f"\n{'piece':<{width}}  {'status':<8}  detail", file=stream)
    for pid, status, err in rows:
        print(f"{pid:<{width}}  {status:<8}  {err}", file=stream)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items()))
    print(f"{len(rows)} pieces: {counts}", file=stream)


EXIT = {"code": 0}  # hydra.main drops the task's return value, so the exit code travels here


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    EXIT["code"] = pipeline(cfg)


def pipeline(cfg: DictConfig) -> int:
    """Run the configured stages over every piece; 0 when all went through, 1 if any failed, 2 for bad arguments."""
    logging.getLogger("w2m2w").setLevel(cfg.log_level)
    run_dir = Path(cfg.run_dir)
    try:
        stages = check_stages(list(cfg.stages))
        modules = {s: importlib.import_module(f"stages.{s}") for s in stages}
        pieces = resolve_inputs(cfg, run_dir)
    except (ValueError, InputError, ModuleNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    cfgs = {s: cfg[s] for s in stages}
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
    results = []
    for pid, src in pieces.items():
        results.append(run_piece(pid, src, stages, modules, cfgs, run_dir, force=cfg.force, hashes=hashes))
    summary = summarize(results)
    summary["stages"] = stages
    summary["config"] = OmegaConf.to_container(cfg, resolve=True)
    write_json(run_dir / "summary.json", summary)
    print_summary(summary)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    main()
    sys.exit(EXIT["code"])
