"""The run machinery: the run directory, one piece through its stages, local and Ray pools, stopping, progress, the report.

The package is also the API's `w2m2w.run(inputs, run_dir, **settings)`: the name `w2m2w.run` is this package
(the import system binds it), so the package is made callable and a call goes to w2m2w.api.run.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableRunPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """w2m2w.run(inputs, run_dir=None, **settings): see w2m2w.api.run."""
        from w2m2w.api import run

        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableRunPackage
