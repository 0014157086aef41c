"""The WaveNet's three execution paths agree: teacher-forced forward, torch incremental step, numba kernel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w.features import conditioning_roll
from w2m2w.models.wavenet import N_ROLL, WaveNet, WaveNetConfig, generate_torch, sample_inverse_cdf
from w2m2w.models.wavenet_numba import NumbaGenerator, generate_numba, pack, prepare_cond

# small, but with dilations that wrap the queues many times within the test length
CFG = WaveNetConfig(residual_channels=8, skip_channels=12, output_channels=16, layers=7, dilation_cycle=5, cond_channels=8, hop_length=20)


def _model(seed: int = 0, cfg: WaveNetConfig = CFG) -> WaveNet:
    torch.manual_seed(seed)
    m = WaveNet(cfg).eval()
    with torch.no_grad():  # larger biases than the default init, so every term matters
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _inputs(m: WaveNet, batch: int, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, frames * m.cfg.hop_length), generator=g)
    roll = (torch.rand(batch, frames + 2 * m.cond_margin, N_ROLL, generator=g) < 0.05).float()
    return x, roll


def test_conditioning_roll_hand_made():
    notes = np.array([[0.015, 0.035, 60, 127], [0.02, 0.021, 21, 64], [0.0, 0.5, 10, 50]], dtype=np.float64)
    r = conditioning_roll(notes, 6, frame_rate=100.0)
    k60, k21 = 60 - 21, 0
    assert r.shape == (6, 264) and r.dtype == np.float32
    np.testing.assert_array_equal(r[:, k60], [0, 1, 0, 0, 0, 0])  # onset in the frame holding 15 ms
    np.testing.assert_array_equal(r[:, 88 + k60], [0, 1, 1, 1, 0, 0])  # frames 1..3 overlap [15, 35) ms
    np.testing.assert_array_equal(r[:, 176 + k60], [0, 1, 1, 1, 0, 0])  # velocity 127 / 127 while it sounds
    np.testing.assert_array_equal(r[:, 88 + k21], [0, 0, 1, 0, 0, 0])  # a 1 ms note still gets a frame
    assert r[2, 176 + k21] == pytest.approx(64 / 127)
    assert r.sum() == pytest.approx(1 + 3 + 3 + 1 + 1 + 64 / 127)  # pitch 10 is off the keyboard: ignored
    # a window of a longer roll equals the same rows of the whole roll
    whole = conditioning_roll(notes, 20, 100.0, start_frame=-5)
    np.testing.assert_array_equal(whole[5:11], r)
    assert not whole[:5].any()


def test_incremental_matches_teacher_forced():
    m = _model()
    x, roll = _inputs(m, batch=2, frames=40)  # 800 samples: the 16-sample queue wraps 50 times
    with torch.no_grad():
        full = m(x, roll)
        cond = m.conditioning(roll)
    classes, logits = generate_torch(m, cond, forced=x, return_logits=True)
    assert torch.equal(classes, x)
    assert m.dilations == [1, 2, 4, 8, 16, 1, 2] and m.receptive_field == 35
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-4)


def test_numba_logits_match_torch_incremental():
    m = _model(2)
    x, roll = _inputs(m, batch=3, frames=30, seed=3)
    with torch.no_grad():
        cond = m.conditioning(roll)
    _, ref = generate_torch(m, cond, forced=x, return_logits=True)
    p = pack(m)
    gen = NumbaGenerator(p, prepare_cond(p, cond.numpy()), np.full(3, x.shape[1]), threads=2)
    logits = np.zeros((3, x.shape[1], 256), np.float32)
    n1 = 137  # in two calls, so the state carries over between them
    a = gen.advance(n1, forced=x[:, :n1].numpy(), logits=logits[:, :n1])
    lg2 = np.zeros((3, x.shape[1] - n1, 256), np.float32)
    b = gen.advance(x.shape[1] - n1, forced=x[:, n1:].numpy(), logits=lg2)
    gen.close()
    logits[:, n1:] = lg2
    np.testing.assert_array_equal(np.concatenate([a, b], 1), x.numpy())
    np.testing.assert_allclose(logits, ref.numpy(), rtol=1e-4, atol=2e-4)


def test_numba_samples_match_torch_samples():
    m = _model(4)
    _, roll = _inputs(m, batch=4, frames=15, seed=5)
    with torch.no_grad():
        cond = m.conditioning(roll)
    u = torch.rand(4, 15 * m.cfg.hop_length, generator=torch.Generator().manual_seed(6))
    ref = generate_torch(m, cond, uniforms=u, temperature=0.9)
    p = pack(m)
    c = prepare_cond(p, cond.numpy())
    ours = generate_numba(p, c, u.numpy(), threads=2, temperature=0.9)
    np.testing.assert_array_equal(ours, ref.numpy())
    assert len(np.unique(ours)) > 20  # really sampled, not stuck on one class
    # splitting the streams over threads never changes a stream
    np.testing.assert_array_equal(generate_numba(p, c, u.numpy(), threads=1, temperature=0.9), ours)


def test_streams_idle_past_their_length():
    m = _model(7)
    _, roll = _inputs(m, batch=2, frames=5)
    with torch.no_grad():
        cond = m.conditioning(roll)
    p = pack(m)
    u = np.random.default_rng(0).random((2, 100), dtype=np.float32)
    gen = NumbaGenerator(p, prepare_cond(p, cond.numpy()), np.array([100, 40]))
    out = gen.advance(100, u)
    np.testing.assert_array_equal(out[1, 40:], 0)
    alone = NumbaGenerator(p, prepare_cond(p, cond.numpy()[1:]), np.array([40])).advance(40, u[1:, :40])
    np.testing.assert_array_equal(out[1, :40], alone[0])
    with pytest.raises(ValueError, match="too few"):
        gen.advance(1, u[:, :1])


def test_inverse_cdf_sampling():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, -10.0, -10.0, -10.0], [-50.0, -50.0, 0.0, -50.0]])
    u = torch.tensor([0.6, 0.99, 0.5])
    np.testing.assert_array_equal(sample_inverse_cdf(logits, u).numpy(), [2, 0, 2])
    # a flat softmax at temperature 1 maps u to its quantile
    flat = torch.zeros(5, 256)
    np.testing.assert_array_equal(sample_inverse_cdf(flat, torch.tensor([0.0, 0.25, 0.5, 0.999, 0.5001])).numpy(), [0, 64, 128, 255, 128])


def test_default_config_shapes():
    m = WaveNet(WaveNetConfig())
    assert m.dilations == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1, 2, 4, 8]
    x = torch.randint(0, 256, (1, 320))
    roll = torch.zeros(1, 2 + 2 * m.cond_margin, N_ROLL)
    with torch.no_grad():
        assert m(x, roll).shape == (1, 320, 256)
    with pytest.raises(ValueError, match="multiple of hop"):
        m(x[:, :300], roll)
