"""Hydra callbacks of run.py (the Hydra edge; conf/config.yaml lists them under hydra.callbacks).

In a module, not in run.py, so that a launcher that runs jobs in other processes
(submitit on SLURM) can import it by name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .hydra_check import record_problem
from .log_safety import escape_controls
from .staging import writable_problem


class RunDirWritable(Callback):
    """Before Hydra writes its own record into the run folder, check that the folder can be written.

    Otherwise Hydra's log file handler fails first, with a long traceback. Here it is one line, exit 2.
    So is a run.log, .hydra or multirun.yaml that would lead Hydra's writes outside the run folder
    (run.py checks every job's folder before Hydra starts; this holds for any other caller of the config).
    """

    def _check(self, config: DictConfig, names: tuple[str, ...]) -> None:
        root = Path(str(config.run_dir))
        problem = record_problem(root, root, names) or writable_problem(root)
        if problem:
            print(f"error: {escape_controls(problem)}", file=sys.stderr)
            raise SystemExit(2)  # SystemExit passes through Hydra's callback error handling, which only warns

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, (f"{config.hydra.job.name}.log", ".hydra"))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, ("multirun.yaml",))
