"""Hydra structured configs for run.py (the Hydra edge): each config file in conf/ names its schema in its defaults list.

The schemas are the settings dataclasses themselves (stages.*, w2m2w.run.settings), so a wrong type or an
unknown key is rejected when Hydra composes the config, naming the key; the YAML files keep the defaults
readable with their comments, and a test holds them equal to the dataclasses' defaults.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from stages import STAGES
from w2m2w.run.settings import LocalExecutor, RayExecutor, RunSettings

EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


SCHEMA_GROUP = "schema"  # kept apart from the groups users choose from (synthesize=...), so it never shows as an option


def register() -> None:
    """Store every schema under the name its config file's defaults list uses (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(group=SCHEMA_GROUP, name="run", node=RunSettings)  # conf/config.yaml: schema/run
    groups = {**{stage.name: stage.options for stage in STAGES}, "executor": EXECUTORS}
    for group, options in groups.items():
        for option, cls in options.items():  # conf/<group>/<option>.yaml: /schema/<group>/<option>@_here_
            cs.store(group=f"{SCHEMA_GROUP}/{group}", name=option, node=cls)
