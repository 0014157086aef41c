"""Training settings: YAML and dataclass agree, bad overrides are refused up front, and the loop's contract
(another model config is not resumed; a time budget still validates and exports)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO
from w2m2w.train.__main__ import TRAINERS, precheck

NAMES = ["transcriber", "music_transformer", "wavenet", "source_filter", "beat_tracker"]


def _differences(yaml: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Keys whose YAML value is not the dataclass default; values that point into ${data_root} are the
    YAML's own business (where the team's data lies), the one thing a dataclass cannot know."""
    out = []
    for key, value in yaml.items():
        if key == "defaults":
            continue
        full = f"{prefix}{key}"
        if key not in defaults:
            out.append(f"{full}: in the YAML only")
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and value:
            out += _differences(value, defaults[key], full + ".")
        elif "${data_root}" in json.dumps(value):
            continue
        elif value != defaults[key]:
            out.append(f"{full}: {value!r} in the YAML, {defaults[key]!r} in the dataclass")
    return out


@pytest.mark.parametrize("name", NAMES)
def test_yaml_values_are_the_dataclass_defaults(name):
    assert set(TRAINERS) == set(NAMES)
    yaml = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "train" / f"{name}.yaml"))
    defaults = asdict(TRAINERS[name].config())
    assert _differences(yaml, defaults) == []
    assert set(defaults) <= set(yaml), "every setting is in the YAML too, where a user reads them"


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["train.batch_size=abc"], "train.batch_size"),  # a wrong type: Hydra's structured schema
        (["train=wavenet", "train.nope=1"], "train.nope"),  # an unknown key
        (["train.batch_size=0"], "train.batch_size"),  # ranges: w2m2w.settings
        (["train=music_transformer", "train.max_minutes=-1"], "train.max_minutes"),
        (["train=wavenet", "train.lr_decay=1.5"], "train.lr_decay"),
        (["train=source_filter", "train.validate_every=0"], "train.validate_every"),
        (["train=transcriber", "train.augment_p=2"], "train.augment_p"),
        (["train=transcriber", "train.augment_skip=[room,echo]"], "train.augment_skip"),
        (
            ["train=transcriber", "train.room_rt60=[2.0,0.5]"],
            "train.room_rt60",
        ),  # a pair out of order: refused before rendering
        (["train=transcriber", "train.room_far_distance=[3.0]"], "train.room_far_distance"),
        (["train=music_transformer", "train.model.position=absolute"], "train.model.position"),
        (["train=wavenet", "train.model.output=gaussian"], "train.model.output"),
    ],
)
def test_bad_overrides_are_refused_with_one_line_naming_the_key(overrides, key, capsys):
    assert precheck(overrides) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key}=" in err, err


def test_good_overrides_pass():
    assert precheck(["train=wavenet", "train.max_steps=3", "train.model.output=logistic_mixture"]) == 0
    assert precheck(["train=transcriber", "train.augment_skip=[codec,noise]"]) == 0


def test_rooms_of_their_own_probability_still_augment():
    """room_p > 0 with augment_p 0 (rooms, no effects) must still build an Augmenter; without a bank nothing does."""
    from w2m2w.train.transcriber import TranscriberTrainConfig, augments

    assert augments(TranscriberTrainConfig(augment_p=0.0, room_p=0.8))
    assert augments(TranscriberTrainConfig(augment_p=0.5))
    assert not augments(TranscriberTrainConfig(augment_p=0.0))
    assert not augments(TranscriberTrainConfig(augment_p=0.0, room_p=0.8, room_bank=0))


def test_the_cli_exits_2_before_writing_anything(tmp_path):
    run = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "w2m2w.train", "train=wavenet", f"train.out_dir={run}", "train.segment_seconds=-0.1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: train.segment_seconds=-0.1 is not allowed: it must be in (0, inf)"
    ]
    assert not run.exists() and list(tmp_path.iterdir()) == []  # no run folder, no Hydra record


def _tiny_transcriber(tmp_path, **kw):
    from tests.unit._synth import make_maps
    from w2m2w.models.onsets_frames import OnsetsFramesConfig
    from w2m2w.train.transcriber import TranscriberTrainConfig

    if not (tmp_path / "maps").exists():
        make_maps(tmp_path / "maps", ["a_AkPnBcht", "b_SptkBGCl"], seconds=2.0)
    settings = dict(
        out_dir=str(tmp_path / "run"),
        model=OnsetsFramesConfig(model_size=32, lstm_units=8),
        maps_root=str(tmp_path / "maps"),
        midi_globs=[],
        batch_size=2,
        segment_seconds=1.0,
        validation_seconds=1.0,
        threads=1,
        room_bank=0,  # no simulated rooms: the default bank of 64 would be built in the project's cache/rooms
    )
    return TranscriberTrainConfig(**{**settings, **kw})


def test_a_time_budget_still_validates_and_exports_the_transcriber(tmp_path, ticking_clock):
    # the transcriber's own loop used to stop without scoring or logging its last weights
    from w2m2w.train.transcriber import train_transcriber

    # the loop's clock moves 1 s a reading: read at the start (t_start, then t_since), then once before each step;
    # before step k it reads 2 + k, k + 1 s after the start, so a 6 s budget (0.1 min) is passed before step 6:
    # 5 steps, and the final validation's two readings make 9 s
    summary = train_transcriber(_tiny_transcriber(tmp_path, max_steps=100000, max_minutes=0.1, validate_every=100000))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0] == summary and summary["step"] == 5 and summary["elapsed_s"] == 9.0
    assert "maps_SptkBGCl/note_f1" in summary and np.isfinite(summary["loss"])
    assert (tmp_path / "run" / "best.safetensors").is_file() and (tmp_path / "run" / "last.safetensors").is_file()


def test_a_checkpoint_of_another_model_config_is_not_resumed(tmp_path):
    from w2m2w.models.onsets_frames import OnsetsFramesConfig
    from w2m2w.train.loop import TrainingError
    from w2m2w.train.transcriber import train_transcriber

    train_transcriber(_tiny_transcriber(tmp_path, max_steps=1, validate_every=1))
    with pytest.raises(TrainingError) as err:
        train_transcriber(
            _tiny_transcriber(
                tmp_path, max_steps=2, validate_every=1, model=OnsetsFramesConfig(model_size=32, lstm_units=16)
            )
        )
    assert "model.lstm_units: 8 there, 16 now" in str(err.value) and "\n" not in str(err.value)
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [
        1
    ]  # nothing trained
