"""The `w2m2w` command (also `python -m w2m2w` and a checkout's `python run.py`): the pipeline's Hydra edge.

`w2m2w [PATH | demo] [KEY=VALUE ...]`. Hydra is only here and in hydra_edge: it composes the package's conf/
over the settings dataclasses (registered here, register_schemas), and w2m2w.run.runner does the work with
the stages this edge hands it (stages/: the library below never imports them). Before Hydra starts, the
command line is made plain (command_line: a bare path becomes `input=...`, quoted for Hydra), `--help`
prints the musician's help (usage), and every job's settings are checked (hydra_edge): a bad value is one
line, exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import stages
from w2m2w.command_line import plain_arguments
from w2m2w.hydra_edge import check_command_line, fail, swept_dir_name
from w2m2w.paths import CONF
from w2m2w.run import runner
from w2m2w.run.settings import LocalExecutor, RayExecutor, RunSettings
from w2m2w.usage import HELP_FLAGS, usage

# Hydra structured configs: each config file in conf/ names its schema in its defaults list. The schemas are the
# settings dataclasses themselves (stages.*, w2m2w.run.settings), so a wrong type or an unknown key is rejected when
# Hydra composes the config, naming the key; the YAML files keep the defaults readable with their comments, and a
# test holds them equal to the dataclasses' defaults.
EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}
SCHEMA_GROUP = "schema"  # kept apart from the groups users choose from (synthesize=...), so it never shows as an option
LOG_NAME = "run.log"  # conf/config.yaml names the job `run` (hydra.job.name) whatever the entry point, so the log keeps its name


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
        task = (
            list(OmegaConf.load(saved).hydra.overrides.task)
            if saved.is_file()
            else [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        )
        return swept_dir_name(task, list(hc.overrides.task))  # the name the check looked at before Hydra wrote
    except Exception:  # no way to tell what is swept: the job number still keeps jobs apart
        return str(num)


OmegaConf.register_new_resolver("w2m2w_swept_name", swept_name, replace=True)


EXIT = {"code": 0}  # hydra.main drops the task's return value, so the exit code travels here


@hydra.main(
    version_base="1.3", config_path=str(CONF), config_name="config"
)  # absolute: found the same way installed or not
def hydra_main(cfg: DictConfig) -> None:
    code = runner.run(
        OmegaConf.to_object(cfg), stages.STAGES, *job_dirs(cfg)
    )  # the settings dataclasses, typed and checked; the stages
    EXIT["code"] = max(EXIT["code"], code)
    if code > 128:  # stopped by a signal: the jobs after it in a sweep do not start
        sys.exit(code)


def job_dirs(cfg: DictConfig) -> tuple[Path, list[Path]]:
    """This call's run directory and the run directories it may reuse outputs from.

    A single run works in the run folder (run_dir, or the one named for its input: hydra.run.dir). In a
    multirun (`-m`) each job works in run_dir/<its overrides> and reuses current outputs of its siblings
    and of run_dir itself, so a sweep over generate.* transcribes each piece once.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    reuse = [Path(d) for d in cfg.get("reuse_from") or []]
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return Path(hc.run.dir), reuse
    mine = Path(hc.runtime.output_dir)
    root = Path(hc.sweep.dir)
    siblings = (
        sorted(d for d in root.iterdir() if (d / "run.json").is_file() and d.resolve() != mine.resolve())
        if root.is_dir()
        else []
    )
    return mine, [d for d in [root, *siblings, *reuse] if d.resolve() != mine.resolve()]


def main(argv: list[str] | None = None) -> None:
    """The command: help, or the plain command line checked and handed to Hydra; exits with the run's code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in args):
        print(usage(CONF))
        sys.exit(0)
    args, problem = plain_arguments(args)
    problem = problem or check_command_line(args, CONF, log_name=LOG_NAME)
    if problem:
        fail(problem)
    sys.argv = [sys.argv[0], *args]  # what Hydra parses (and records in .hydra/overrides.yaml)
    hydra_main()
    sys.exit(EXIT["code"])
