"""w2m2w pipeline: `python run.py [input=PATH] [run_dir=DIR] [stages=[...]] [force=true]`.

Hydra is only here, at the edge: it composes conf/ over the settings dataclasses
(registered here, register_schemas), and w2m2w.run.runner does the work with the stages
this edge hands it (stages/: the library never imports them). Every job's settings are
checked before Hydra starts (w2m2w/hydra_edge.py): a bad value is one line, exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import stages
from w2m2w.hydra_edge import check_command_line, fail, swept_dir_name
from w2m2w.run import runner
from w2m2w.run.runner import shard_of  # noqa: F401 - run.shard_of, as before
from w2m2w.run.settings import LocalExecutor, RayExecutor, RunSettings

REPO = Path(__file__).resolve().parent

# Hydra structured configs: each config file in conf/ names its schema in its defaults list. The schemas are the
# settings dataclasses themselves (stages.*, w2m2w.run.settings), so a wrong type or an unknown key is rejected when
# Hydra composes the config, naming the key; the YAML files keep the defaults readable with their comments, and a
# test holds them equal to the dataclasses' defaults.
EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
SCHEMA_GROUP = "schema"  # kept apart from the groups users choose from (synthesize=...), so it never shows as an option


def register_schemas() -> None:
    """Store every schema under the name its config file's defaults list uses (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group=SCHEMA_GROUP, name="run", node=RunSettings)  # conf/config.yaml: schema/run
    groups = {**{stage.name: stage.options for stage in stages.STAGES}, "executor": EXECUTORS}
    for group, options in groups.items():
        for option, cls in options.items():  # conf/<group>/<option>.yaml: /schema/<group>/<option>@_here_
            cs.store(group=f"{SCHEMA_GROUP}/{group}", name=option, node=cls)


register_schemas()  # the structured configs conf/ names in its defaults lists


def swept_name(num: int) -> str:
    """A multirun job's folder under run_dir: the values of its swept keys ('generate.temperature=1.2').

    Hydra's override_dirname would list every override, paths included. The swept keys are read
    from the sweep's multirun.yaml (on the shared run_dir, so this works on cluster nodes too),
    else from the command line. `shard` is left out, so the shards of one setting share a run
    directory (and a sweep over shards alone writes straight into run_dir).
    """
    from hydra.core.hydra_config import HydraConfig

    try:
        hc = HydraConfig.get()
        saved = Path(hc.sweep.dir) / "multirun.yaml"
        task = list(OmegaConf.load(saved).hydra.overrides.task) if saved.is_file() else [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        return swept_dir_name(task, list(hc.overrides.task))  # the name run.py's check looked at before Hydra wrote
    except Exception:  # no way to tell what is swept: the job number still keeps jobs apart
        return str(num)


OmegaConf.register_new_resolver("w2m2w_swept_name", swept_name, replace=True)


EXIT = {"code": 0}  # hydra.main drops the task's return value, so the exit code travels here


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    code = runner.run(OmegaConf.to_object(cfg), stages.STAGES, *job_dirs(cfg))  # the settings dataclasses, typed and checked; the stages
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


if __name__ == "__main__":
    problem = check_command_line(sys.argv[1:], REPO / "conf", log_name=f"{Path(__file__).stem}.log")
    if problem:
        fail(problem)
    main()
    sys.exit(EXIT["code"])
