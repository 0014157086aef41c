"""Source-filter WaveNet: model, block rendering against the whole-piece forward, loss, training loop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.unit._synth import make_maps
from w2m2w.features import conditioning_roll
from w2m2w.models.source import piano_source
from w2m2w.models.source_filter import SourceFilterConfig, SourceFilterWaveNet
from w2m2w.render.source_filter import (
    SourceFilterRenderConfig,
    SourceFilterRenderer,
    context,
    load_source_filter,
    source_mix,
    window,
)

SR = 16000
OWN_GATE = {"gate_margin": None, "gate_ramp": None}  # the weights' own gate, as their reference source has it
NOTES = np.array([[0.30, 0.9, 60, 90], [0.5, 1.6, 64, 70], [1.1, 1.4, 79, 110], [2.6, 2.8, 40, 50]], dtype=np.float64)


@pytest.fixture(scope="module")
def model(tiny_source_filter):
    return load_source_filter(tiny_source_filter)


def _reference_render(
    model: SourceFilterWaveNet, notes: np.ndarray, n: int, cfg=None, dc_hz: float = SourceFilterRenderConfig.dc_block_hz
) -> np.ndarray:
    """One forward over the whole piece, written out here without the renderer's blocks and contexts, then the DC
    blocker over the whole of it in one pass; cfg: the source's settings (default: the weights' own)."""
    from w2m2w.audio import dc_block

    src, gate = piano_source(notes, n, 0, cfg or model.source_cfg)
    m = model.cond_margin
    roll = conditioning_roll(notes, n // 160 + 2 * m, 100.0, -m)
    with torch.no_grad():
        y = model(torch.from_numpy(src)[None], torch.from_numpy(gate)[None], torch.from_numpy(roll)[None])
    return dc_block(y[0].numpy(), gate > 0, dc_hz)[0] if dc_hz > 0 else y[0].numpy()


@pytest.mark.parametrize("dc_hz", [SourceFilterRenderConfig.dc_block_hz, 1.0, 0.0])
def test_blocks_join_exactly_and_equal_the_whole_forward(model, dc_hz):
    n = 4 * SR  # past every note's release, so the whole forward's zero padding is the piece's silence
    # the renderer's gate (its default lead 0 and 1 ms ramp, not the weights' 256 and 160)
    ref = _reference_render(model, NOTES, n, dataclasses.replace(model.source_cfg, gate_margin=0, gate_ramp=16), dc_hz)
    assert np.abs(ref).max() > 1e-3
    for block in (0.25, 1.0, 8.0):
        y = SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=block, dc_block_hz=dc_hz)).render(
            NOTES, n
        )
        assert len(y) == n
        np.testing.assert_allclose(y, ref, atol=2e-5, err_msg=f"block_seconds={block}")


def test_inference_path_equals_forward(model):
    w = window(model, NOTES, None, 160 * 20, 160 * 200)
    s, g, r = (torch.from_numpy(w[k]) for k in ("source", "gate", "roll"))
    with torch.no_grad():
        ref = model(s[None], g[None], r[None])[0]
    assert ref.abs().max() > 1e-3
    torch.testing.assert_close(model.render(s, g, r), ref, atol=2e-6, rtol=1e-5)


def test_exact_silence_where_no_note_sounds(model):
    r = SourceFilterRenderer(model)
    y = r.render(NOTES, 5 * SR)
    first = int(0.3 * SR) - r.source_cfg.gate_margin - r.source_cfg.gate_ramp
    assert not y[:first].any(), "nothing before the first note's reach"
    gap = slice(int((1.6 + 0.36) * SR) + 500, int(2.6 * SR) - 500)
    assert not y[gap].any(), "nothing in a pause"
    assert np.abs(y[int(0.35 * SR) : int(0.8 * SR)]).max() > 1e-3


def test_length_is_last_offset_plus_tail(model):
    r = SourceFilterRenderer(model, SourceFilterRenderConfig(tail_seconds=0.5))
    assert r.n_samples(NOTES) == int(round((2.8 + 0.5) * SR))
    assert len(r.render(NOTES)) == r.n_samples(NOTES)


def test_window_conditioning_matches_whole_piece_rows(model):
    # a window's roll must be the whole piece's roll at the window's own frames (an off-by-a-frame shift fails)
    c, m = context(model), model.cond_margin
    whole = conditioning_roll(NOTES, 700, 100.0, -100)  # frames -100 .. 599 of the whole piece
    for start in (0, 160 * 37, 160 * 150):
        w = window(model, NOTES, None, start, 160 * 40)
        first = (start - c) // 160 - m  # the window's first frame, context and margin included
        np.testing.assert_array_equal(w["roll"], whole[first + 100 : first + 100 + len(w["roll"])])
        src, gate = piano_source(NOTES, 160 * 40 + 2 * c, start - c, model.source_cfg)
        np.testing.assert_array_equal(w["source"], src)


def test_training_window_target_is_aligned_with_its_source(model):
    # target audio made from the source itself: any shift between audio and notes in the sampler shows
    n = 4 * SR
    src, gate = piano_source(NOTES, n, 0, model.source_cfg)
    audio = source_mix(src, gate)
    for start in (0, 160 * 60, 160 * 210):
        w = window(model, NOTES, audio, start, 160 * 50)
        np.testing.assert_allclose(w["target"], source_mix(w["source"], w["gate"]), atol=1e-6)


def test_the_roll_changes_the_output(model):
    # same source, roll of other pitches: the local conditioning must reach the audio
    c = context(model)
    w = window(model, NOTES, None, 0, 160 * 100)
    other = window(model, NOTES + np.array([0, 0, 5, 0]), None, 0, 160 * 100)
    with torch.no_grad():
        y1 = model(*(torch.from_numpy(w[k])[None] for k in ("source", "gate", "roll")))
        y2 = model(
            torch.from_numpy(w["source"])[None],
            torch.from_numpy(w["gate"])[None],
            torch.from_numpy(other["roll"])[None],
        )
    assert (y1 - y2)[0, c:-c].abs().max() > 1e-4


def test_source_only_renders_the_plain_source(model):
    n = 3 * SR
    y = SourceFilterRenderer(model, SourceFilterRenderConfig(source_only=True, block_seconds=0.5, **OWN_GATE)).render(
        NOTES, n
    )
    src, gate = piano_source(NOTES, n, 0, model.source_cfg)
    np.testing.assert_allclose(y, np.clip(source_mix(src, gate), -1, 1), atol=1e-6)


def test_stft_loss_is_zero_only_for_identical_signals():
    from w2m2w.train.source_filter import stft_loss

    loss = stft_loss([512, 256])
    x = torch.randn(2, 1, 4000, generator=torch.Generator().manual_seed(1))
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    # by hand: half the amplitude is spectral convergence | |X| - |X|/2 | / | |X|/2 | = 1 and a log-magnitude
    # distance of ln 2 in every bin, at every resolution: 1 + ln 2
    assert float(loss(x, 0.5 * x)) == pytest.approx(1 + np.log(2), rel=1e-3)
    assert float(loss(0.5 * x, x)) == pytest.approx(0.5 + np.log(2), rel=1e-3)  # convergence is relative to the target


def test_stft_loss_is_auralosss_with_the_documented_resolutions_and_terms():
    import auraloss

    from w2m2w.models.source_filter import log_mel_l1, stft_loss

    g = torch.Generator().manual_seed(2)
    t = torch.randn(2, 1, 6000, generator=g)
    y = 0.7 * t + 0.3 * torch.randn(2, 1, 6000, generator=g)
    mr = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[1024, 256], hop_sizes=[256, 64], win_lengths=[1024, 256])
    assert float(stft_loss([1024, 256])(y, t)) == pytest.approx(float(mr(y, t)), rel=1e-5)
    mel = auraloss.freq.STFTLoss(
        fft_size=2048, hop_size=256, win_length=2048, scale="mel", n_bins=128, sample_rate=16000
    )
    got = float(stft_loss([1024, 256], mel_weight=0.5)(y, t))
    assert got == pytest.approx(float(mr(y, t)) + 0.5 * float(mel(y, t)), rel=1e-5)
    got = float(stft_loss([1024, 256], mel_weight=0.5, log_mel_weight=3.0)(y, t))
    assert got == pytest.approx(float(mr(y, t)) + 0.5 * float(mel(y, t)) + 3.0 * float(log_mel_l1(y, t)), rel=1e-5)


def test_log_mel_loss_is_evaluates_distance():
    """The training term equals evaluate's log-mel distance (numpy in, its own scaling) on each segment."""
    from w2m2w.evaluate.synthesis import log_mel_distance
    from w2m2w.models.source_filter import log_mel_l1, stft_loss

    g = torch.Generator().manual_seed(0)
    t = torch.randn(1, 1, 8000, generator=g)
    y = 0.5 * t + 0.2 * torch.randn(1, 1, 8000, generator=g)
    assert float(log_mel_l1(y, t)) == pytest.approx(log_mel_distance(y[0, 0].numpy(), t[0, 0].numpy()), rel=1e-4)
    assert float(log_mel_l1(3.0 * t, t)) == pytest.approx(0.0, abs=1e-5)  # level does not count
    # sines: most mel bands sit on the 1e-5 floor, so the unit-RMS scaling decides which are clamped; per segment
    n = np.arange(8000) / 16000
    a, b = np.sin(2 * np.pi * 440 * n).astype(np.float32), 0.01 * np.sin(2 * np.pi * 1000 * n).astype(np.float32)
    pair = torch.from_numpy(np.stack([a, b]))[:, None], torch.from_numpy(np.stack([b, a]))[:, None]
    expected = np.mean([log_mel_distance(a, b), log_mel_distance(b, a)])
    assert float(log_mel_l1(*pair)) == pytest.approx(expected, rel=1e-4)
    both = stft_loss([512, 256], log_mel_weight=2.0)
    assert float(both(y, t)) == pytest.approx(
        float(stft_loss([512, 256])(y, t)) + 2.0 * float(log_mel_l1(y, t)), rel=1e-5
    )


def test_weights_of_another_model_are_named(tmp_path, tiny_wavenet):
    from w2m2w.checkpoint import WeightsError

    with pytest.raises(WeightsError, match="wavenet.safetensors"):
        load_source_filter(tiny_wavenet)


def test_training_learns_and_resumes(tmp_path):
    from w2m2w.train.source_filter import SourceFilterTrainConfig, train_source_filter

    maps = make_maps(tmp_path / "maps", ["a_P", "b_P", "c_P", "held_P"], seconds=3.0)
    cfg = SourceFilterTrainConfig(
        out_dir=str(tmp_path / "run"),
        maps_root=str(maps),
        piano="P",
        holdout_pieces=["held"],
        model=SourceFilterConfig(residual_channels=8, skip_channels=8, layers=4, dilation_cycle=4, cond_channels=8),
        batch_size=4,
        segment_seconds=0.25,
        fft_sizes=[512, 256],
        max_steps=40,
        validate_every=40,
        validation_segments=8,
        warmup_steps=5,
        learning_rate=5e-3,
        threads=1,
    )
    summary = train_source_filter(cfg)
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 40]
    assert rows[1]["val_loss"] < 0.9 * rows[0]["val_loss"], rows
    assert summary["step"] == 40
    assert (tmp_path / "run" / "validation_notes.txt").read_text().strip().endswith("MAPS_MUS-held_P.tsv")
    model = load_source_filter(tmp_path / "run" / "last.safetensors")
    assert model.cfg.layers == 4
    cfg.max_steps = 45
    cfg.validate_every = 5
    train_source_filter(cfg)  # resumes from the checkpoint instead of starting again
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 40, 45]


def test_training_starts_from_init_weights_and_a_resume_ignores_them(tmp_path):
    from dataclasses import asdict, replace

    import torch

    from w2m2w.checkpoint import save_weights
    from w2m2w.train.source_filter import SourceFilterTrainConfig, train_source_filter

    maps = make_maps(tmp_path / "maps", ["a_P", "held_P"], seconds=2.0)
    mcfg = SourceFilterConfig(residual_channels=8, skip_channels=8, layers=2, dilation_cycle=2, cond_channels=8)
    starts = {}
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        starts[name] = SourceFilterWaveNet(mcfg).state_dict()
        save_weights(tmp_path / f"{name}.safetensors", "source_filter_wavenet", starts[name], asdict(mcfg), {})
    cfg = SourceFilterTrainConfig(
        out_dir=str(tmp_path / "run"), maps_root=str(maps), piano="P", holdout_pieces=["held"], model=mcfg,
        batch_size=2, segment_seconds=0.1, fft_sizes=[256], max_steps=1, validate_every=1, validation_segments=2,
        warmup_steps=0, learning_rate=1e-9, threads=1, init_weights=str(tmp_path / "a.safetensors"),
    )  # fmt: skip
    train_source_filter(cfg)
    got = load_source_filter(tmp_path / "run" / "last.safetensors").state_dict()
    # a step at learning rate 1e-9 moves no weight by more than about 1e-9: the run started from a's
    assert all(torch.allclose(got[k], starts["a"][k], atol=1e-6) for k in got)
    assert any(not torch.allclose(got[k], starts["b"][k], atol=1e-3) for k in got)
    train_source_filter(replace(cfg, max_steps=2, init_weights=str(tmp_path / "b.safetensors")))  # resumes
    got = load_source_filter(tmp_path / "run" / "last.safetensors").state_dict()
    assert all(torch.allclose(got[k], starts["a"][k], atol=1e-6) for k in got)
    train_source_filter(replace(cfg, out_dir=str(tmp_path / "fresh"), init_weights=None))
    got = load_source_filter(tmp_path / "fresh" / "last.safetensors").state_dict()
    assert any(not torch.allclose(got[k], starts["a"][k], atol=1e-3) for k in got)


def test_render_length_is_the_last_offset_plus_the_tail_in_whole_frames(model):
    # by hand, hop 160 samples: 1.0 s + a 0.5 s tail = 24000 samples = 150 frames; a hair more is 151 frames
    # (n_samples is the length the tail allows; the render may end sooner, where its sound has died away)
    r = SourceFilterRenderer(model, SourceFilterRenderConfig(tail_seconds=0.5))
    assert r.n_samples(np.array([[0.0, 1.0, 60, 80]])) == 24000
    assert r.n_samples(np.array([[0.0, 1.0001, 60, 80]])) == 24160
    assert r.n_samples(np.array([[0.0, 1.0, 60, 80], [0.5, 0.7, 62, 80]])) == 24000, (
        "the last offset, not the last onset's"
    )
    assert (
        SourceFilterRenderer(model, SourceFilterRenderConfig(tail_seconds=0.0)).n_samples(
            np.array([[0.0, 0.999, 60, 80]])
        )
        == 16000
    )
    assert r.n_samples(np.zeros((0, 4))) == 8000  # no notes: the tail alone
    assert (
        SourceFilterRenderer(model, SourceFilterRenderConfig(tail_seconds=0.0)).n_samples(np.zeros((0, 4))) == 160
    )  # never less than a frame
    # the stream gives exactly that many samples, for any block length, and n_samples when asked for it
    notes = np.array([[0.0, 0.3001, 60, 80]])
    for block in (0.05, 0.1, 4.0):
        r = SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=block, tail_seconds=0.1))
        assert sum(len(c) for c in r.stream(notes)) == 6560 == r.n_samples(notes), block  # 0.4001 s -> 41 frames
        assert len(r.render(notes, 1234)) == 1234


def test_gate_margin_cuts_the_lead_before_an_onset_and_nothing_else(model):
    """gate_margin=0: the output is exactly 0 until the gate's ramp before the onset (the weights' 160 samples, or
    gate_ramp's: 16 by default); from the onset on, where every gate is open, the samples are the weights' own."""
    on = int(0.30 * SR)
    # without the DC blocker, whose state would carry the earlier opening of the weights' own gate past the onset
    own = SourceFilterRenderer(model, SourceFilterRenderConfig(gate_margin=None, gate_ramp=None, dc_block_hz=0)).render(
        NOTES, SR
    )
    cut = SourceFilterRenderer(model, SourceFilterRenderConfig(gate_margin=0, gate_ramp=None, dc_block_hz=0)).render(
        NOTES, SR
    )
    assert not cut[: on - 160].any() and own[on - 400 : on - 160].any()  # the weights' 256 samples open it earlier
    assert cut[on - 160 : on].any()  # their ramp
    np.testing.assert_array_equal(cut[on : on + 2000], own[on : on + 2000])
    short = SourceFilterRenderer(model, SourceFilterRenderConfig(dc_block_hz=0)).render(
        NOTES, SR
    )  # no lead, 16-sample ramp
    assert not short[: on - 16].any() and short[on - 16 : on].any()
    # the ramp by hand: sample on - 16 + k is the ungated output times k / 16
    np.testing.assert_allclose(short[on - 16 : on], own[on - 16 : on] * np.arange(16) / 16, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(short[on : on + 2000], own[on : on + 2000])


def _tiny(**kw) -> SourceFilterWaveNet:
    torch.manual_seed(0)
    base = dict(residual_channels=4, skip_channels=4, layers=3, dilation_cycle=2, cond_channels=4, cond_layers=2)
    return SourceFilterWaveNet(SourceFilterConfig(**{**base, **kw}))


def _inputs(model: SourceFilterWaveNet, frames: int, batch: int = 2, extra_roll: int = 0):
    from w2m2w.features import N_ROLL
    from w2m2w.models.source import N_CHANNELS

    g = torch.Generator().manual_seed(3)
    T = frames * model.cfg.hop_length
    rows = frames + 2 * model.cond_margin + extra_roll
    return (
        torch.randn(batch, T, N_CHANNELS, generator=g),
        torch.ones(batch, T),
        torch.rand(batch, rows, N_ROLL, generator=g),
    )


def test_the_stored_source_settings_are_the_models_source():
    from dataclasses import asdict

    from w2m2w.models.source import SourceConfig

    cfg = SourceFilterConfig(source={"partials": 8, "gate_margin": 100})
    # every setting spelled out: the two given, the rest SourceConfig's defaults
    assert cfg.source == asdict(SourceConfig(partials=8, gate_margin=100)) and cfg.source["tau_low"] == 3.0
    assert SourceFilterWaveNet(cfg).source_cfg == SourceConfig(partials=8, gate_margin=100)


def test_refusals_say_what_is_wrong():
    from w2m2w.models.source_filter import source_filter_from_config

    with pytest.raises(ValueError, match=r"^cond_kernel must be odd$"):
        SourceFilterWaveNet(SourceFilterConfig(cond_kernel=4))
    with pytest.raises(ValueError, match=r"^unknown source-filter WaveNet config keys \['aa', 'zz'\]$"):
        source_filter_from_config({"zz": 1, "layers": 2, "aa": 0})
    assert source_filter_from_config({"layers": 2}).cfg.layers == 2
    model = _tiny()  # hop 160, cond margin 2 frames: 2 frames of audio need a roll of 2 + 4 rows
    s, g, r = _inputs(model, 2)
    with pytest.raises(ValueError, match=r"^segment length 300 is not a multiple of hop_length 160$"):
        model(s[:, :300], g[:, :300], r)
    s, g, r = _inputs(model, 2, extra_roll=2)  # (4 frames, not the 3 layers)
    with pytest.raises(ValueError, match=r"^roll gives 4 frames, audio needs 2$"):
        model(s, g, r)


def test_training_step_scores_the_centre_of_each_window():
    # the loss sees (batch, 1, T - 2 context) of output and target: samples context .. T - context - 1, cut here by hand
    model = _tiny()
    s, g, r = _inputs(model, 4)  # T = 640
    target = torch.randn(2, 640, generator=torch.Generator().manual_seed(4))
    seen = []

    def loss_fn(y, t):
        seen.append((y, t))
        return (y - t).abs().mean()

    with torch.no_grad():
        whole = model(s, g, r)
        for c, n in ((160, 320), (0, 640)):
            seen.clear()
            loss, extra = model.training_step({"source": s, "gate": g, "roll": r, "target": target}, loss_fn, c)
            ((y, t),) = seen
            assert y.shape == t.shape == (2, 1, n) and extra == {}
            torch.testing.assert_close(y[:, 0], whole[:, c : c + n])
            torch.testing.assert_close(t[:, 0], target[:, c : c + n])
            assert float(loss) == pytest.approx(float((whole[:, c : c + n] - target[:, c : c + n]).abs().mean()))


def test_the_mel_term_defaults_to_16_khz():
    # sines 3 Hz apart near 3 kHz: the mel filters' slopes there move with the sample rate (16001 Hz shifts the
    # loss by 1e-4 of itself); the default must be auraloss's mel loss at the project's 16 kHz
    import auraloss

    from w2m2w.models.source_filter import stft_loss

    n = torch.arange(8000) / 16000
    t, y = torch.sin(2 * np.pi * 3000 * n)[None, None], torch.sin(2 * np.pi * 3003 * n)[None, None]
    mr = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[1024, 256], hop_sizes=[256, 64], win_lengths=[1024, 256])
    mel = auraloss.freq.STFTLoss(
        fft_size=2048, hop_size=256, win_length=2048, scale="mel", n_bins=128, sample_rate=16000
    )
    got = float(stft_loss([1024, 256], mel_weight=100.0)(y, t)) - float(mr(y, t))
    assert got == pytest.approx(100.0 * float(mel(y, t)), rel=1e-6)


def test_source_mix_by_hand():
    # channels h1, h2, h3-4, h5-8, h9+, hammer, noise, envelope: the five harmonic groups in full, the hammer at 0.3,
    # noise and envelope left out, times the gate, times 0.1
    source = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 7.0, 8.0], [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 100.0, 100.0]])
    got = source_mix(source, np.array([1.0, 0.5]))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [(15.0 + 3.0) * 0.1, 1.0 * 0.5 * 0.1], rtol=1e-6)


def test_zero_samples_render_to_an_empty_float32_array(model):
    y = SourceFilterRenderer(model).render(NOTES, 0)
    assert y.shape == (0,) and y.dtype == np.float32


def test_describe_names_what_the_renderer_was_set_to(model):
    # the renderer's own part of the synthesize stage's stats, written out by hand
    r = SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=0.5, source_only=True, release="measured"))
    assert r.describe() == {
        "backend": "torch",
        "block_seconds": 0.5,
        "source_only": True,
        "release": "measured",
        "dc_block_hz": 5.0,
    }
    assert SourceFilterRenderer(model, SourceFilterRenderConfig(dc_block_hz=0)).describe() == {
        "backend": "torch",
        "block_seconds": 4.0,
        "source_only": False,
        "release": "model",
        "dc_block_hz": 0,
    }


def test_loading_puts_the_model_on_the_device_asked_for_and_names_what_does_not_fit(tmp_path, tiny_source_filter):
    from w2m2w.checkpoint import WeightsError, save_weights

    # "meta" (shapes only) stands in for a GPU on a CPU machine: the default would leave it on the CPU
    assert next(load_source_filter(tiny_source_filter, device="meta").parameters()).is_meta
    assert next(load_source_filter(tiny_source_filter).parameters()).device.type == "cpu"
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, "source_filter_wavenet", {}, {"cond_kernel": 4})
    msg = f"{bad}: weights do not fit the source-filter WaveNet config stored in it (cond_kernel must be odd)"
    with pytest.raises(WeightsError) as err:
        load_source_filter(bad)
    assert str(err.value) == msg


def test_block_seconds_sets_the_chunks_and_progress_counts_seconds(model):
    # by hand, hop 160 at 16 kHz: 0.4001 s of tail-ended piece -> 41 frames = 6560 samples; blocks of 0.01 s are one
    # frame, 0.05 s five (800 samples: 8 blocks and 160 left), 0.003 s rounds to none and is held at one frame
    notes = np.array([[0.0, 0.3001, 60, 80]])
    for block, chunks in ((0.01, [160] * 41), (0.05, [800] * 8 + [160]), (0.003, [160] * 41)):
        r = SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=block, tail_seconds=0.1))
        seen: list[float] = []
        assert [len(c) for c in r.stream(notes, progress=seen.append)] == chunks, block
        np.testing.assert_allclose(seen, np.array(chunks) / 16000.0, err_msg=f"{block}")


def test_the_output_is_clipped_to_full_scale(model):
    # a loud cluster's plain source mix goes past full scale both ways; what the renderer hands on stays within it
    notes = np.array([[0.0, 0.5, p, 127] for p in range(40, 80)], dtype=np.float64)
    src, gate = piano_source(notes, 8000, 0, model.source_cfg)
    raw = source_mix(src, gate)
    assert raw.max() > 1.5 and raw.min() < -1.5
    y = SourceFilterRenderer(model, SourceFilterRenderConfig(source_only=True, **OWN_GATE)).render(notes, 8000)
    assert y.max() == 1.0 and y.min() == -1.0


def test_an_unknown_release_is_refused_by_name(model):
    with pytest.raises(ValueError) as err:
        SourceFilterRenderer(model, SourceFilterRenderConfig(release="soft"))
    assert str(err.value) == "release='soft': 'model' or 'measured'"


def test_a_late_note_of_a_long_piece_is_rendered(model):
    # 25 s in, the lowest key (MIDI 21): blocks of 1 s must keep it where it sounds; the whole piece's plain source mix
    # (source_mix is pinned by hand above) is the reference
    notes = np.array([[0.2, 0.4, 60, 80], [25.0, 26.0, 21, 100]])
    n = int(26.5 * SR)
    y = SourceFilterRenderer(model, SourceFilterRenderConfig(source_only=True, block_seconds=1.0, **OWN_GATE)).render(
        notes, n
    )
    src, gate = piano_source(notes, n, 0, model.source_cfg)
    assert np.abs(y[int(25.1 * SR) : int(25.9 * SR)]).max() > 1e-3  # it sounds
    np.testing.assert_allclose(y, np.clip(source_mix(src, gate), -1, 1), atol=1e-6)


@pytest.mark.parametrize(
    "source",
    [{"gate_margin": 600, "gate_ramp": 800}, {"release_taus": 0.0, "gate_margin": 0, "gate_ramp": 1}],
    ids=["long gate edges", "no release, bare gate"],
)
def test_one_frame_blocks_keep_every_note_that_reaches_them(source):
    """Each block renders only the notes near it: with blocks of one frame there is no slack, so a note left out too
    soon (its release, its gate's margin and ramp, the filter's and the roll's context) shows against the whole
    forward. The second source has no release and a bare gate, so only the context keeps a coming onset in."""
    from tests.conftest import TINY_SOURCE_FILTER

    torch.manual_seed(0)
    model = SourceFilterWaveNet(SourceFilterConfig(**TINY_SOURCE_FILTER, source=source))
    with torch.no_grad():
        torch.nn.init.normal_(model.head2.weight, std=0.3)
    model.eval()
    notes = np.array([[0.1, 0.5, 60, 90], [0.3, 0.7, 64, 70]])
    n = int(1.2 * SR)
    ref = _reference_render(model, notes, n)
    y = SourceFilterRenderer(model, SourceFilterRenderConfig(block_seconds=0.01, **OWN_GATE)).render(notes, n)
    np.testing.assert_allclose(y, np.clip(ref, -1, 1), atol=2e-5)


def test_a_window_at_the_start_of_a_piece_has_its_first_sample_as_target(model):
    # audio k+1 at sample k: a window from sample 0 has c samples of zeros before the piece, then 1, 2, 3, ...
    c = context(model)
    audio = np.arange(1, 2001, dtype=np.float32)
    t = window(model, NOTES, audio, 0, 1600)["target"]
    np.testing.assert_array_equal(t[:c], 0.0)
    np.testing.assert_array_equal(t[c : c + 1600], np.arange(1, 1601))
