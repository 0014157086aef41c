"""Hydra callbacks of run.py (the Hydra edge; conf/config.yaml lists them under hydra.callbacks).

In a module, not in run.py, so that a launcher that runs jobs in other processes
(submitit on SLURM) can import it by name.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .staging import writable_problem


class RunDirWritable(Callback):
    """Before Hydra writes its own record into the run folder, check that the folder can be written.

    Otherwise Hydra's log file handler fails first, with a long traceback. Here it is one line, exit 2.
    """

    def _check(self, config: DictConfig) -> None:
        problem = writable_problem(str(config.run_dir))
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(2)  # SystemExit passes through Hydra's callback error handling, which only warns

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)
