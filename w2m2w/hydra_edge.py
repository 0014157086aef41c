"""The Hydra edge of the `w2m2w` command (cli.py), `python -m w2m2w.train` and `python -m w2m2w.evaluate`: one precheck, one error path.

precheck composes a config as Hydra will and checks it before Hydra writes anything; fail is every entry
point's way out on a bad setting: one line on stderr, exit 2. For the w2m2w command also: the settings check of every job
before Hydra starts one, and the callback Hydra runs before it writes.

Hydra writes its record (.hydra/, the log file) into the run directory before the task
starts, and reports a wrong type as a multi-line message with exit code 1. Here every job
of the call (each combination of a -m sweep) is composed the way Hydra will compose it and
checked first: a wrong type, an unknown key or a value out of range is one line naming
the key, exit code 2, with nothing written and no model loaded. So is a run folder whose
run.log or .hydra is a symlink: Hydra would write through it, outside the run folder.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from w2m2w.paths import CONF
from w2m2w.run.log_safety import escape_controls
from w2m2w.run.piece_ids import safe_component
from w2m2w.run.rundir import writable_problem
from w2m2w.run.settings import check_run, default_run_dir, run_folder
from w2m2w.settings import SettingsError

# flags that print something instead of running, or point Hydra at other configs: Hydra handles those calls alone
_NOT_A_RUN = (
    "help",
    "hydra_help",
    "cfg",
    "info",
    "shell_completion",
    "experimental_rerun",
    "config_path",
    "config_name",
    "config_dir",
)


def _run_folder(run_dir: str | None, input: str | None) -> str:
    """conf/config.yaml's hydra.run.dir and hydra.sweep.dir: run_dir, else the folder named for the input."""
    return str(run_dir) if run_dir else default_run_dir(None if input is None else str(input))


OmegaConf.register_new_resolver("w2m2w_run_folder", _run_folder, replace=True)

_KINDS = {"Float": "a number", "Integer": "an integer", "Boolean": "true or false"}


def say(problem: str, prefix: str = "error") -> None:
    """A problem as the one line every entry point prints on stderr (control characters escaped)."""
    print(f"{prefix}: {escape_controls(problem)}", file=sys.stderr, flush=True)


def fail(problem: str, code: int = 2, prefix: str = "error") -> NoReturn:
    """The one error path of every entry point: one line on stderr, then exit `code` (2: bad settings)."""
    say(problem, prefix)
    raise SystemExit(code)  # SystemExit passes through Hydra's callback error handling, which only warns


def composition_problem(exc: BaseException, overrides: list[str]) -> str:
    """A composition error of Hydra's or OmegaConf's in one line: `key=given: reason` where it names a key."""
    cause = exc.__cause__ or exc
    key = getattr(cause, "full_key", None)
    reason = str(getattr(cause, "msg", cause)).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    if not key:
        return str(exc).strip().splitlines()[0]
    given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key and "=" in o), None)
    return f"{key}={given}: {reason}" if given is not None else f"{key}: {reason}"


def precheck(
    overrides: list[str],
    config_name: str,
    check: Callable[[DictConfig], None] | None = None,
    job_name: str = "check",
    refused: tuple[type, ...] = (SettingsError,),
) -> str | None:
    """Compose conf/<config_name> with `overrides` as Hydra will and run `check` on it; None when good, else one line.

    Runs before Hydra creates its output folder, so a bad override writes nothing. `refused`: the exceptions
    whose message is the line as it is; any other (Hydra's and OmegaConf's own: a wrong type, an unknown key,
    a missing file) is put in one line naming the key."""
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=job_name):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
            if check is not None:
                check(cfg)
    except refused as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - one line for whatever composition raises
        return composition_problem(exc, overrides)
    return None


def jobs(argv: list[str]) -> list[list[str]] | None:
    """The overrides of each job this command line starts, or None when it starts no job this check can compose."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = get_args_parser().parse_args(argv)
        if any(getattr(args, flag, None) for flag in _NOT_A_RUN):
            return None
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (SystemExit, Exception):  # a malformed command line: Hydra's own message says what is wrong
        return None
    if not args.multirun:
        return None if any(o.is_sweep_override() for o in overrides) else [list(args.overrides)]
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _problem(exc: BaseException, job: list[str]) -> str | None:
    """One line for a settings error of Hydra's composition (None for anything else: Hydra reports those)."""
    cause = exc.__cause__ if isinstance(exc, ConfigCompositionException) else exc
    key = getattr(cause, "full_key", None)
    if not isinstance(cause, (ValidationError, ConfigAttributeError, ConfigKeyError)) or not key:
        return None  # e.g. an interpolation only Hydra's own run can resolve
    given = next((o.split("=", 1)[1] for o in job if o.lstrip("+~").split("=", 1)[0] == key and "=" in o), None)
    reason = str(getattr(cause, "msg", cause)).splitlines()[0]
    wanted = re.search(r"could not be converted to (\w+)", reason)
    if isinstance(cause, ValidationError) and wanted:
        reason = f" is not allowed: it must be {_KINDS.get(wanted.group(1), wanted.group(1))}"
    elif isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        reason = " is not a setting here (a typo? `w2m2w --cfg job` lists them)"
    else:
        reason = f": {reason}"
    return f"{key}={given}{reason}" if given is not None else f"{key}{reason}"


def swept_dir_name(task: list[str], job: list[str]) -> str:
    """A multirun job's folder under run_dir: the values of the keys `task` sweeps, as `job` sets them ('generate.temperature=1.2').

    `shard` is left out, so the shards of one setting share a folder (a sweep over shards alone writes into run_dir).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    swept = {o.get_key_element() for o in parser.parse_overrides(task) if o.is_sweep_override()} - {"shard"}
    mine = {o.get_key_element(): o.value() for o in parser.parse_overrides(job)}
    return ",".join(f"{k}={safe_component(str(mine[k]))}" for k in sorted(swept) if k in mine)


def record_problem(job_dir: Path, root: Path, names: tuple[str, ...]) -> str | None:
    """None when Hydra's files `names` in job_dir (its log, .hydra/) stay inside the run folder `root`; else one line.

    Hydra appends to its log and makes .hydra/<time>/ through whatever is there: a symlink (or a job folder
    that leads out of root) would have it write into a file or folder elsewhere.
    """
    inside = root.resolve()
    for name in names:
        path = job_dir / name
        if path.is_symlink():
            return f"{path}: is a symlink; Hydra would write through it, outside the run folder {root}; remove it or choose another run_dir"
        if path.exists() and not path.resolve().is_relative_to(inside):
            return f"{path}: leads outside the run folder {root} (to {path.resolve()}); Hydra would write there; choose another run_dir"
    return None


def _job_dirs(argv: list[str], todo: list[list[str]], run_dirs: list[str]) -> list[tuple[Path, Path, bool]]:
    """(job folder, run folder, multirun) for each job, as the command's hydra.run.dir and hydra.sweep.subdir name them."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    if not args.multirun:
        return [(Path(d), Path(d), False) for d in run_dirs]
    return [(Path(d) / swept_dir_name(list(args.overrides), job), Path(d), True) for d, job in zip(run_dirs, todo)]


def records_problem(argv: list[str], todo: list[list[str]], run_dirs: list[str], log_name: str) -> str | None:
    """The first job whose Hydra record would be written outside its run folder (record_problem), or None."""
    for job_dir, root, multirun in _job_dirs(argv, todo, run_dirs):
        problem = record_problem(job_dir, root, (log_name, ".hydra")) or (
            multirun and record_problem(root, root, ("multirun.yaml",))
        )
        if problem:
            return problem
    return None


def check_command_line(
    argv: list[str], config_dir: Path, config_name: str = "config", log_name: str = "run.log"
) -> str | None:
    """None when every job of `argv` has valid settings and a run folder Hydra's record stays in; else one line.

    log_name: Hydra's job log in the run folder, `<the entry script's name>.log`.
    """
    todo = jobs(argv)
    if not todo:
        return None
    run_dirs = []
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name="check"):
        for job in todo:
            try:
                settings = OmegaConf.to_object(compose(config_name, overrides=job))
                check_run(settings)
            except SettingsError as exc:
                return str(exc)
            except Exception as exc:  # noqa: BLE001 - anything else is Hydra's to report, as it always did
                return _problem(exc, job)
            run_dirs.append(run_folder(settings))
    return records_problem(argv, todo, run_dirs, log_name)


# conf/config.yaml lists this under hydra.callbacks: in a module, not in the entry point, so that a launcher that runs jobs
# in other processes (submitit on SLURM) can import it by name
class RunDirWritable(Callback):
    """Before Hydra writes its own record into the run folder, check that the folder can be written.

    Otherwise Hydra's log file handler fails first, with a long traceback. Here it is one line, exit 2.
    So is a run.log, .hydra or multirun.yaml that would lead Hydra's writes outside the run folder
    (the command checks every job's folder before Hydra starts; this holds for any other caller of the config).
    """

    def _check(self, config: DictConfig, names: tuple[str, ...], root: Path) -> None:
        problem = record_problem(root, root, names) or writable_problem(root)
        if problem:
            fail(problem)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, (f"{config.hydra.job.name}.log", ".hydra"), Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, ("multirun.yaml",), Path(str(config.hydra.sweep.dir)))
