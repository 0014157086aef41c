"""scripts/set_model_setting.py: an inference setting written into a weights file, the tensors untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.unit._scripts import load_script
from w2m2w.checkpoint import load_weights, save_weights
from w2m2w.files import sha256_file
from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig
from w2m2w.transcription import load_transcriber


@pytest.fixture(scope="module")
def script():
    return load_script("set_model_setting")


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    model = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8))
    path = tmp_path / "w.safetensors"
    save_weights(path, "onsets_frames", model.state_dict(), model.config_dict(), {"run": "x"})
    return path


def test_the_setting_is_written_and_the_model_then_hears_a_soft_recording_as_a_loud_one(script, weights, tmp_path):
    out = tmp_path / "out.safetensors"
    assert script.main(["--weights", str(weights), "--set", "input_level_db=-15", "--out", str(out)]) == 0
    before, after = load_weights(weights, "onsets_frames"), load_weights(out, "onsets_frames")
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]) and before[0].keys() == after[0].keys()
    assert before[1].get("input_level_db") is None and after[1]["input_level_db"] == -15
    assert after[2]["run"] == "x"
    assert after[2]["setting_changes"] == [
        {"changes": {"input_level_db": [None, -15]}, "sha256_before": sha256_file(weights)}
    ]
    model = load_transcriber(out)
    y = np.random.default_rng(0).uniform(-0.3, 0.3, 24000).astype(np.float32)
    np.testing.assert_allclose(model.predict(y)["onset"], model.predict(y * np.float32(0.1))["onset"], atol=2e-4)
    # back to null: a second change is recorded after the first
    assert script.main(["--weights", str(out), "--set", "input_level_db=null", "--out", str(out)]) == 0
    cfg, training = load_weights(out, "onsets_frames")[1:]
    assert cfg["input_level_db"] is None and [c["changes"] for c in training["setting_changes"]] == [
        {"input_level_db": [None, -15]},
        {"input_level_db": [-15, None]},
    ]


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("lstm_units=16", "KEY one of ['input_level_db']"),  # a setting tensors depend on
        ("input_level_db", "KEY=VALUE"),
        ("input_level_db=12", "input_level_db=12"),  # out of its range: a level above full scale
    ],
)
def test_what_cannot_be_set_is_refused_in_one_line_and_nothing_is_written(
    script, weights, tmp_path, capsys, assignment, message
):
    out = tmp_path / "out.safetensors"
    assert script.main(["--weights", str(weights), "--set", assignment, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
