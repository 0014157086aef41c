"""Onsets and Frames: shapes, chunked prediction, loss and gradients (tiny config)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w.features import log_mel
from w2m2w.models.onsets_frames import OnsetsFrames, OnsetsFramesConfig

HOP = 512
HEADS = ("onset", "offset", "frame", "velocity")


@pytest.fixture(scope="module")
def model() -> OnsetsFrames:
    torch.manual_seed(0)
    return OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8)).eval()


def _audio(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.3, 0.3, n).astype(np.float32)


def test_forward_shapes(model):
    out = model(torch.randn(2, 50, 229))
    assert set(out) == set(HEADS)
    for k, v in out.items():
        assert v.shape == (2, 50, 88), k
    assert model.frame_rate == 16000 / HOP


@pytest.mark.parametrize(
    "n_samples",
    [
        3000,  # shorter than a chunk
        (31 - 1) * HOP,  # exactly one chunk: round(1.0 s * 31.25) = 31 frames
        int(3.7 * 16000),  # several chunks, more than one batch of chunks
    ],
)
def test_predict_shapes_and_ranges(model, n_samples):
    probs = model.predict(_audio(n_samples), chunk_seconds=1.0, overlap_seconds=0.25, batch_size=2)
    assert set(probs) == set(HEADS)
    for k, v in probs.items():
        assert v.shape == (n_samples // HOP + 1, 88), k
        assert v.dtype == np.float32 and np.all(np.isfinite(v))
        assert v.min() >= 0.0 and v.max() <= 1.0, k
        assert v.std() > 0, f"{k}: every frame was filled in"


def _direct(model: OnsetsFrames, y: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(log_mel(torch.from_numpy(y)[None], model.mel_cfg))
    return {k: (v.clamp(0, 1) if k == "velocity" else torch.sigmoid(v))[0].numpy() for k, v in out.items()}


def test_predict_without_overlap_is_independent_chunks(model):
    """With no context, chunk i of predict() is exactly the model run on that stretch of audio:
    this pins the seam bookkeeping (frame <-> sample offsets) down to the frame."""
    core = 31  # frames per 1.0 s chunk
    y = _audio(3 * core * HOP - 1, seed=1)
    probs = model.predict(y, chunk_seconds=1.0, overlap_seconds=0.0, batch_size=2)
    for i in range(3):
        a = i * core * HOP
        ref = _direct(model, y[a : a + core * HOP - 1])  # core frames exactly
        for k in HEADS:
            np.testing.assert_allclose(probs[k][i * core : (i + 1) * core], ref[k], atol=1e-5, err_msg=f"chunk {i} {k}")


def test_predict_is_deterministic(model):
    y = _audio(20000, seed=2)
    a = model.predict(y, chunk_seconds=0.5, overlap_seconds=0.2)
    b = model.predict(y, chunk_seconds=0.5, overlap_seconds=0.2)
    for k in HEADS:
        np.testing.assert_array_equal(a[k], b[k])


def test_loss_backward_reaches_every_parameter():
    torch.manual_seed(1)
    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8)).train()
    mel = torch.randn(2, 40, 229)
    target = {k: (torch.rand(2, 40, 88) > 0.9).float() for k in ("onset", "offset", "frame")}
    target["velocity"] = torch.rand(2, 40, 88) * target["onset"]
    losses = m.loss(m(mel), target)
    assert set(losses) == set(HEADS)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_velocity_loss_only_on_onsets():
    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8))
    out = {k: torch.zeros(1, 10, 88) for k in HEADS}
    target = {k: torch.zeros(1, 10, 88) for k in HEADS}
    target["velocity"][0, 5, 3] = 1.0  # no onset there: must not count
    assert m.loss(out, target)["velocity"] == 0
    target["onset"][0, 5, 3] = 1.0
    assert m.loss(out, target)["velocity"] == pytest.approx(1.0)


def test_soft_onset_boost_weighs_soft_notes_onsets_by_hand():
    import math

    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8))
    out = {k: torch.zeros(1, 2, 88) for k in HEADS}  # every logit 0: each element's BCE is ln 2
    target = {k: torch.zeros(1, 2, 88) for k in HEADS}
    target["onset"][0, 0, 10], target["velocity"][0, 0, 10] = 1.0, 32 / 127  # a soft note's onset
    target["onset"][0, 1, 20], target["velocity"][0, 1, 20] = 1.0, 1.0  # the loudest: no extra weight
    target["velocity"][0, 1, 30] = 0.1  # a velocity without an onset: weight stays 1
    n = 2 * 88
    assert m.loss(out, target)["onset"].item() == pytest.approx(math.log(2))
    # by hand: 176 elements of ln 2, one of them weighed 1 + 2 x (1 - 32/127)
    expected = math.log(2) * (n - 1 + 1 + 2 * (1 - 32 / 127)) / n
    assert m.loss(out, target, soft_onset_boost=2.0)["onset"].item() == pytest.approx(expected, rel=1e-6)
    assert m.loss(out, target, soft_onset_boost=2.0)["frame"].item() == pytest.approx(
        math.log(2)
    )  # only the onset loss


def test_pedal_head_shapes_and_predict():
    torch.manual_seed(0)
    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True)).eval()
    out = m(torch.randn(2, 50, 229))
    assert out["pedal"].shape == (2, 50, 3)
    probs = m.predict(_audio(3 * 16000), chunk_seconds=1.0, overlap_seconds=0.5)
    n = probs["onset"].shape[0]
    for k in ("pedal_onset", "pedal_offset", "pedal_frame"):
        assert probs[k].shape == (n,) and np.all((probs[k] >= 0) & (probs[k] <= 1)), k
    assert "pedal_frame" not in OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8)).predict(_audio(16000))


def test_pedal_loss_counts_only_rows_with_pedal_labels():
    """A row whose audio carries no pedal labels (pedal_known 0) adds nothing; a known row's loss is BCE, by hand."""
    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, pedal=True))
    out = {k: torch.zeros(2, 4, 88) for k in HEADS}
    out["pedal"] = torch.zeros(2, 4, 3)
    out["pedal"][0, :, 2] = 2.0  # row 0 says "down" with logit 2
    target = {k: torch.zeros(2, 4, 88) for k in HEADS}
    target["pedal"] = torch.zeros(2, 4, 3)
    target["pedal"][0, :, 2] = 1.0
    target["pedal_known"] = torch.tensor([1.0, 0.0])
    # row 0: 8 of 12 outputs at logit 0 against 0 (log 2 each), 4 at logit 2 against 1 (log(1 + e^-2) each)
    expect = (8 * np.log(2) + 4 * np.log1p(np.exp(-2))) / 12
    assert m.loss(out, target)["pedal"].item() == pytest.approx(expect, rel=1e-5)
    target["pedal"][1] = 1.0  # row 1 unknown: whatever its target, the loss is the same
    assert m.loss(out, target)["pedal"].item() == pytest.approx(expect, rel=1e-5)
    # row 1 at weight 0.5: its 12 outputs at logit 0 against 1 (log 2 each); the mean over weights 1 and 0.5
    target["pedal_known"] = torch.tensor([1.0, 0.5])
    assert m.loss(out, target)["pedal"].item() == pytest.approx((expect + 0.5 * np.log(2)) / 1.5, rel=1e-5)
    target["pedal_known"] = torch.tensor([0.25, 0.0])  # one light row: its own loss scaled, not divided back
    assert m.loss(out, target)["pedal"].item() == pytest.approx(0.25 * expect, rel=1e-5)


def test_training_step_weights_each_head_and_reports_it_unweighted():
    """The step's loss is the weighted sum of the heads' losses; the figures stay each head's own loss."""
    torch.manual_seed(2)
    m = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8)).eval()  # eval: no dropout, so two calls agree
    audio = torch.from_numpy(_audio(HOP * 40, seed=3))[None].repeat(2, 1)
    frames = log_mel(audio, m.mel_cfg).shape[1]
    target = {k: (torch.rand(2, frames, 88) > 0.9).float() for k in ("onset", "offset", "frame")}
    target["velocity"] = torch.rand(2, frames, 88) * target["onset"]
    with torch.no_grad():
        plain, figures = m.training_step((audio, target))
        weighted, figures_w = m.training_step((audio, target), weights={"frame": 3.0, "onset": 0.0})
    own = {k[len("loss_") :]: v.item() for k, v in figures.items()}
    assert plain.item() == pytest.approx(sum(own.values()), rel=1e-5)
    assert weighted.item() == pytest.approx(own["offset"] + own["velocity"] + 3.0 * own["frame"], rel=1e-5)
    assert {k: v.item() for k, v in figures_w.items()} == pytest.approx(
        {k: v.item() for k, v in figures.items()}, rel=1e-6
    )
    with pytest.raises(ValueError, match="unknown heads"):
        m.training_step((audio, target), weights={"frames": 2.0})


def test_predict_with_an_input_level_hears_a_quiet_recording_as_a_loud_one():
    """With input_level_db the level of the recording is taken out before the model: the same piece
    10 dB softer gives the same probabilities; without it, it does not (log-mel sees the level)."""
    torch.manual_seed(0)
    levelled = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8, input_level_db=-15.0)).eval()
    plain = OnsetsFrames(OnsetsFramesConfig(model_size=32, lstm_units=8)).eval()
    plain.load_state_dict(levelled.state_dict())
    y = _audio(int(2.5 * 16000), seed=4)
    soft = y * np.float32(10 ** (-10 / 20))
    a, b = levelled.predict(y, chunk_seconds=1.0), levelled.predict(soft, chunk_seconds=1.0)
    for k in HEADS:
        np.testing.assert_allclose(a[k], b[k], atol=2e-4, err_msg=k)
    c, d = plain.predict(y, chunk_seconds=1.0), plain.predict(soft, chunk_seconds=1.0)
    assert max(float(np.abs(c[k] - d[k]).max()) for k in HEADS) > 1e-2
    # at the level: uniform noise of +-0.3 has RMS 0.3 / sqrt(3), -15.2 dBFS; 0.2 dB up is a small gain, not none
    e = plain.predict(y * np.float32(10 ** ((-15.0 + 15.23) / 20)), chunk_seconds=1.0)
    np.testing.assert_allclose(a["onset"], e["onset"], atol=2e-3)
