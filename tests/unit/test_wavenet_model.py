"""The WaveNet's three execution paths agree: teacher-forced forward, torch incremental step, numba kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2m2w.features import conditioning_roll, excitation
from w2m2w.models.wavenet import (
    N_ROLL,
    WaveNet,
    WaveNetConfig,
    generate_torch,
    mixture_log_prob,
    sample_inverse_cdf,
    sample_mixture,
)
from w2m2w.models.wavenet_numba import NumbaGenerator, generate_numba, pack, prepare_cond

# small, but with dilations that wrap the queues many times within the test length
CFG = WaveNetConfig(
    residual_channels=8,
    skip_channels=12,
    output_channels=16,
    layers=7,
    dilation_cycle=5,
    cond_channels=8,
    hop_length=20,
)
CFG_EXC = WaveNetConfig(**{**CFG.__dict__, "excitation_harmonics": 3, "scalar_input": True})
CFG_MOL = WaveNetConfig(**{**CFG_EXC.__dict__, "output": "logistic_mixture", "mixtures": 4})
both = pytest.mark.parametrize("cfg", [CFG, CFG_EXC], ids=["roll", "roll+excitation+scalar_input"])
every = pytest.mark.parametrize(
    "cfg", [CFG, CFG_EXC, CFG_MOL], ids=["roll", "roll+excitation+scalar_input", "logistic_mixture"]
)


def _model(seed: int = 0, cfg: WaveNetConfig = CFG) -> WaveNet:
    torch.manual_seed(seed)
    m = WaveNet(cfg).eval()
    with torch.no_grad():  # larger biases than the default init, so every term matters
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


def _inputs(m: WaveNet, batch: int, frames: int, seed: int = 1):
    """x (batch, T) classes, roll, and excitation (batch, T, E) for models that take one, else None."""
    g = torch.Generator().manual_seed(seed)
    T = frames * m.cfg.hop_length
    x = torch.randint(0, 256, (batch, T), generator=g)
    roll = (torch.rand(batch, frames + 2 * m.cond_margin, N_ROLL, generator=g) < 0.05).float()
    E = 2 * m.cfg.excitation_harmonics
    exc = torch.randn(batch, T, E, generator=g) if E else None
    return x, roll, exc


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.numpy()


def test_excitation_hand_made():
    sr = 16000
    notes = np.array(
        [[0.001, 0.003, 69, 127], [0.002, 0.0025, 108, 63.5]]
    )  # A4; C8 (4186 Hz: 2nd harmonic past Nyquist)
    e = excitation(notes, 80, sr, harmonics=3)
    assert e.shape == (80, 6) and e.dtype == np.float32
    t = np.arange(80)
    a4_on, c8_on = (t >= 16) & (t < 48), (t >= 32) & (t < 40)
    a4 = 2 * np.pi * 440.0 * np.outer(t - 16, [1, 2, 3]) / sr  # phase 0 at the onset sample
    c8 = 2 * np.pi * 440.0 * 2 ** (39 / 12) * (t - 32) / sr
    np.testing.assert_allclose(
        e[:, 0], np.where(a4_on, np.sin(a4[:, 0]), 0) + np.where(c8_on, 0.5 * np.sin(c8), 0), atol=1e-6
    )
    np.testing.assert_allclose(
        e[:, 3], np.where(a4_on, np.cos(a4[:, 0]), 0) + np.where(c8_on, 0.5 * np.cos(c8), 0), atol=1e-6
    )
    np.testing.assert_allclose(
        e[:, 1:3], np.where(a4_on[:, None], np.sin(a4[:, 1:]), 0), atol=1e-6
    )  # nothing of C8 above its fundamental
    np.testing.assert_allclose(e[:, 4:], np.where(a4_on[:, None], np.cos(a4[:, 1:]), 0), atol=1e-6)
    assert e[16, 3] == pytest.approx(1.0) and not e[:16].any() and not e[48:].any()
    # a window is the same rows of the whole piece (phase runs from each note's onset, not the window's start)
    np.testing.assert_array_equal(excitation(notes, 30, sr, start_sample=25, harmonics=3), e[25:55])
    assert excitation(np.zeros((0, 4)), 10, sr).shape == (10, 8)


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


@every
def test_incremental_matches_teacher_forced(cfg):
    m = _model(cfg=cfg)
    x, roll, exc = _inputs(m, batch=2, frames=40)  # 800 samples: the 16-sample queue wraps 50 times
    with torch.no_grad():
        full = m(x, roll, exc)
        cond = m.conditioning(roll)
    classes, logits = generate_torch(m, cond, forced=x, return_logits=True, exc=exc)
    assert torch.equal(classes, x)
    assert m.dilations == [1, 2, 4, 8, 16, 1, 2] and m.receptive_field == 35
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-4)


@every
def test_numba_logits_match_torch_incremental(cfg):
    m = _model(2, cfg)
    x, roll, exc = _inputs(m, batch=3, frames=30, seed=3)
    with torch.no_grad():
        cond = m.conditioning(roll)
    _, ref = generate_torch(m, cond, forced=x, return_logits=True, exc=exc)
    p = pack(m)
    gen = NumbaGenerator(p, prepare_cond(p, cond.numpy()), np.full(3, x.shape[1]), threads=2, exc=_np(exc))
    logits = np.zeros((3, x.shape[1], m.out_size), np.float32)
    n1 = 137  # in two calls, so the state carries over between them
    a = gen.advance(n1, forced=x[:, :n1].numpy(), logits=logits[:, :n1])
    lg2 = np.zeros((3, x.shape[1] - n1, m.out_size), np.float32)
    b = gen.advance(x.shape[1] - n1, forced=x[:, n1:].numpy(), logits=lg2)
    gen.close()
    logits[:, n1:] = lg2
    np.testing.assert_array_equal(np.concatenate([a, b], 1), x.numpy())
    np.testing.assert_allclose(logits, ref.numpy(), rtol=1e-4, atol=2e-4)


@both
def test_numba_samples_match_torch_samples(cfg):
    m = _model(4, cfg)
    _, roll, exc = _inputs(m, batch=4, frames=15, seed=5)
    with torch.no_grad():
        cond = m.conditioning(roll)
    u = torch.rand(4, 15 * m.cfg.hop_length, generator=torch.Generator().manual_seed(6))
    ref = generate_torch(m, cond, uniforms=u, temperature=0.9, exc=exc)
    p = pack(m)
    c = prepare_cond(p, cond.numpy())
    ours = generate_numba(p, c, u.numpy(), threads=2, temperature=0.9, exc=_np(exc))
    np.testing.assert_array_equal(ours, ref.numpy())
    assert len(np.unique(ours)) > 20  # really sampled, not stuck on one class
    # splitting the streams over threads never changes a stream
    np.testing.assert_array_equal(generate_numba(p, c, u.numpy(), threads=1, temperature=0.9, exc=_np(exc)), ours)


def test_excitation_must_match_the_model():
    plain, with_exc = _model(cfg=CFG), _model(cfg=CFG_EXC)
    x, roll, _ = _inputs(plain, batch=1, frames=2)
    with pytest.raises(ValueError, match="needs an excitation"):
        with_exc(x, roll)
    with pytest.raises(ValueError, match="takes no excitation"):
        plain(x, roll, torch.zeros(1, x.shape[1], 6))
    with torch.no_grad():
        cond = with_exc.conditioning(roll)
    p = pack(with_exc)
    with pytest.raises(ValueError, match="needs an excitation"):
        NumbaGenerator(p, prepare_cond(p, cond.numpy()), np.array([x.shape[1]]))
    with pytest.raises(ValueError, match="does not cover"):
        NumbaGenerator(p, prepare_cond(p, cond.numpy()), np.array([x.shape[1]]), exc=np.zeros((1, 5, 6), np.float32))


def test_streams_idle_past_their_length():
    m = _model(7)
    _, roll, _ = _inputs(m, batch=2, frames=5)
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
    np.testing.assert_array_equal(
        sample_inverse_cdf(flat, torch.tensor([0.0, 0.25, 0.5, 0.999, 0.5001])).numpy(), [0, 64, 128, 255, 128]
    )


def test_default_config_shapes():
    m = WaveNet(WaveNetConfig())
    assert m.dilations == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1, 2, 4, 8]
    x = torch.randint(0, 256, (1, 320))
    roll = torch.zeros(1, 2 + 2 * m.cond_margin, N_ROLL)
    with torch.no_grad():
        assert m(x, roll).shape == (1, 320, 256)
    with pytest.raises(ValueError, match="multiple of hop"):
        m(x[:, :300], roll)


def test_logistic_mixture_is_a_distribution_over_the_classes():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(6, 12, generator=g)
    out[:, 4:8] *= 0.5  # means inside [-1, 1]
    out[:, 8:] -= 3  # narrow components
    out[0, 8:] = -20  # narrower than a bin: log scales are clamped at -7
    lp = torch.stack([mixture_log_prob(out, torch.full((6,), k)) for k in range(256)], 1)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(6), rtol=1e-4, atol=1e-4)
    # one component sitting on class 200 with a tiny scale puts nearly all its mass there
    peak = torch.tensor([[0.0, 2 * 200 / 255 - 1, -7.0]])
    assert mixture_log_prob(peak, torch.tensor([200])).exp().item() > 0.95  # scale e^-7 is a quarter bin
    assert sample_mixture(peak, torch.tensor([0.3])).item() == 200
    # samples follow the probabilities (inverse CDF with one uniform per draw)
    u = torch.rand(40000, generator=g)
    k = sample_mixture(out[1:2].expand(40000, -1), u)
    emp = torch.bincount(k, minlength=256).float() / 40000
    assert (emp - lp[1].exp()).abs().sum().item() < 0.15


def test_numba_mixture_sampling_matches_torch():
    from w2m2w.models.wavenet_numba import _sample_mixture

    g = torch.Generator().manual_seed(1)
    out = torch.randn(3000, 15, generator=g)
    out[:, 10:] -= 3
    u = torch.rand(3000, generator=g)
    ref = sample_mixture(out, u, temperature=0.9).numpy()
    wk = np.empty(15, np.float32)
    ours = np.array(
        [
            _sample_mixture(row.copy(), np.float32(ui), np.float32(1 / 0.9), wk)
            for row, ui in zip(out.numpy(), u.numpy())
        ]
    )
    assert (ours == ref).mean() > 0.995  # float32 exp/log differ in the last bit, rarely across a rounding edge
    assert np.abs(ours.astype(int) - ref).max() <= 1
