"""scripts/graft_weights.py: the named sub-network comes from the donor, everything else from the base."""

from __future__ import annotations

import pytest
import torch

from tests.unit._scripts import load_script
from w2m2w.checkpoint import load_weights, save_weights
from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig
from w2m2w.transcription import load_transcriber


@pytest.fixture(scope="module")
def graft():
    return load_script("graft_weights")


def test_graft_takes_only_the_prefix(graft):
    base = {"a.w": torch.zeros(2), "ab.w": torch.zeros(1), "b.w": torch.zeros(3)}
    donor = {"a.w": torch.ones(2), "ab.w": torch.ones(1), "b.w": torch.ones(3)}
    out = graft.graft(base, donor, ["a"])
    # "ab" shares the letters but is another module: it stays the base's
    assert (
        torch.equal(out["a.w"], torch.ones(2))
        and torch.equal(out["ab.w"], torch.zeros(1))
        and torch.equal(out["b.w"], torch.zeros(3))
    )


def test_graft_refuses_what_does_not_fit(graft):
    base = {"a.w": torch.zeros(2)}
    with pytest.raises(ValueError, match="shape"):
        graft.graft(base, {"a.w": torch.zeros(3)}, ["a"])
    with pytest.raises(ValueError, match="different tensors"):
        graft.graft(base, {"a.w": torch.zeros(2), "a.v": torch.zeros(1)}, ["a"])
    with pytest.raises(ValueError, match="no tensor"):
        graft.graft(base, base, ["c"])


def _model(seed: int) -> OnsetsFrames:
    torch.manual_seed(seed)
    return OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True))


def test_a_grafted_pedal_head_predicts_as_the_donor_and_the_notes_as_the_base(graft, tmp_path):
    base, donor = _model(0), _model(1)
    cfg = base.config_dict()
    save_weights(tmp_path / "base.safetensors", "onsets_frames", base.state_dict(), cfg, {"run": "base"})
    save_weights(tmp_path / "donor.safetensors", "onsets_frames", donor.state_dict(), cfg, {"run": "donor"})
    out = tmp_path / "out.safetensors"
    assert (
        graft.main(
            [
                "--base",
                str(tmp_path / "base.safetensors"),
                "--donor",
                str(tmp_path / "donor.safetensors"),
                "--take",
                "pedal_stack",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model = load_transcriber(out)
    audio = torch.randn(16000).numpy() * 0.1
    got, want_notes, want_pedal = model.predict(audio), base.predict(audio), donor.predict(audio)
    for k in ("onset", "offset", "frame", "velocity"):
        torch.testing.assert_close(torch.from_numpy(got[k]), torch.from_numpy(want_notes[k]))
    for k in ("pedal_onset", "pedal_offset", "pedal_frame"):
        torch.testing.assert_close(torch.from_numpy(got[k]), torch.from_numpy(want_pedal[k]))
    _, _, training = load_weights(out, "onsets_frames")
    assert (
        training["run"] == "base"
        and training["graft"]["took"] == ["pedal_stack"]
        and training["graft"]["donor_training"] == {"run": "donor"}
    )


def test_another_config_is_refused_in_one_line(graft, tmp_path, capsys):
    a = _model(0)
    b = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=16, pedal=True))
    save_weights(tmp_path / "a.safetensors", "onsets_frames", a.state_dict(), a.config_dict())
    save_weights(tmp_path / "b.safetensors", "onsets_frames", b.state_dict(), b.config_dict())
    code = graft.main(
        [
            "--base",
            str(tmp_path / "a.safetensors"),
            "--donor",
            str(tmp_path / "b.safetensors"),
            "--take",
            "pedal_stack",
            "--out",
            str(tmp_path / "c.safetensors"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "lstm_units" in err
    assert not (tmp_path / "c.safetensors").exists()
