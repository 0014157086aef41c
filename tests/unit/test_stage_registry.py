"""The stage registry (stages.STAGES) and the one interface every stage implements."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

import stages
from w2m2w.run.rundir import STAGES as RUN_DIR_STAGES
from w2m2w.run.rundir import stage_dir
from w2m2w.run.stage import Configured, Stage

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_stages_are_registered_in_pipeline_order():
    assert [s.name for s in stages.STAGES] == ["transcribe", "generate", "synthesize"] == list(RUN_DIR_STAGES)
    assert stages.names() == ["transcribe", "generate", "synthesize"]


@pytest.mark.parametrize("stage", stages.STAGES, ids=lambda s: s.name)
def test_every_stage_implements_the_interface(stage, tmp_path):
    assert isinstance(stage, Stage) and stages.get(stage.name) is stage
    assert (
        stage_dir(tmp_path, stage.name).name == f"{stages.STAGES.index(stage) + 1}-{stage.name}"
    )  # its folder in the run dir
    for method in ("weights_file", "load", "run"):
        assert getattr(type(stage), method) is not getattr(Stage, method), f"{stage.name} does not implement {method}"
    assert dataclasses.is_dataclass(stage.settings) and stage.settings in stage.options.values()
    # every option of its config group has a schema, and every schema a config file
    assert sorted(stage.options) == sorted(p.stem for p in (CONF / stage.name).glob("*.yaml"))
    for cls in stage.options.values():
        settings = cls()
        weights = stage.weights_file(settings)
        assert weights is None or isinstance(weights, Path)
        assert Configured(stage, settings).output_settings, "some setting changes the output"


@pytest.mark.parametrize("stage", stages.STAGES, ids=lambda s: s.name)
def test_a_stage_travels_to_other_processes_by_name(stage):
    assert pickle.loads(pickle.dumps(stage)) is stage
    c = pickle.loads(pickle.dumps(Configured(stage, stage.settings())))
    assert c.stage is stage and c.settings == stage.settings()


def test_unknown_stage_is_a_key_error():
    with pytest.raises(KeyError):
        stages.get("mix")
