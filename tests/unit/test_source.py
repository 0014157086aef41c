"""The source of the source-filter WaveNet against analytic expectations (computed here by hand, not by the module)."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.models.source import GROUPS, N_CHANNELS, SourceConfig, piano_source

SR = 16000
HARM = slice(0, len(GROUPS))


def _peaks(y: np.ndarray, n_fft: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    return freqs, spec


def test_partials_sit_at_inharmonic_frequencies():
    # B by hand from the documented log-linear law: pitch 36 (C2) is 15/87 of the way from A0 to C8
    cfg = SourceConfig()
    pitch = 36
    b = 10 ** (-4.0 + (-2.2 + 4.0) * 15 / 87)
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    expected = [k * f0 * np.sqrt(1 + b * k * k) for k in range(1, 13)]
    src, _ = piano_source(np.array([[0.0, 3.0, pitch, 100.0]]), 2 * SR, 0, cfg)
    freqs, spec = _peaks(src[:, HARM].sum(1))
    for f in expected:
        near = (freqs > f - 15) & (freqs < f + 15)
        got = freqs[near][np.argmax(spec[near])]
        assert got == pytest.approx(f, abs=1.0), f"partial at {f:.1f} Hz found at {got:.1f}"
        # and it is a peak: well above the spectrum half-way to the next harmonic
        between = np.argmin(np.abs(freqs - (f + f0 / 2)))
        assert spec[near].max() > 30 * spec[between]
    # harmonic numbers would put partial 12 at 12 f0: inharmonicity moves it up by about 6 Hz here
    assert expected[11] - 12 * f0 > 5.0


def test_onset_has_phase_zero_and_sine_phase_after():
    on = 1000  # the onset on an exact sample
    src, _ = piano_source(np.array([[on / SR, 1.0, 69, 127.0]]), 3000, 0, SourceConfig(partials=1))
    assert src[on, 0] == pytest.approx(0.0, abs=1e-7)  # sin(0)
    # one sample later: amplitude (velocity 127 -> gain 1) * decay of one sample * sin(2 pi f / sr)
    b = 10 ** (-4.0 + 1.8 * 48 / 87)
    f = 440 * np.sqrt(1 + b)
    tau = 3.0 * 0.63 ** (48 / 12) * SR
    assert src[on + 1, 0] == pytest.approx(np.exp(-1 / tau) * np.sin(2 * np.pi * f / SR), rel=1e-5)
    assert not src[:on].any(), "nothing before the onset"


def test_decay_and_release():
    cfg = SourceConfig(partials=1)
    src, gate = piano_source(np.array([[0.0, 1.0, 60, 127.0]]), 2 * SR, 0, cfg)
    env = src[:, -1]  # the envelope channel: gain * exp(-t / tau0) * release
    tau = 3.0 * 0.63 ** (39 / 12)
    assert env[int(0.5 * SR)] == pytest.approx(np.exp(-0.5 / tau), rel=1e-4)
    # after the offset the damper multiplies by exp(-(t - off) / release_tau)
    assert env[SR + 960] == pytest.approx(np.exp(-(1.0 + 960 / SR) / tau) * np.exp(-960 / (0.06 * SR)), rel=1e-4)
    end = SR + int(6 * 0.06 * SR)
    assert not src[end:].any(), "a note is cut six release times after its offset"
    assert gate[end + cfg.gate_margin - 1] == 1.0 and gate[end + cfg.gate_margin + cfg.gate_ramp :].max() == 0.0


def test_louder_is_louder_and_brighter():
    soft, _ = piano_source(np.array([[0.0, 1.0, 60, 40.0]]), SR)
    loud, _ = piano_source(np.array([[0.0, 1.0, 60, 120.0]]), SR)
    assert np.abs(loud[:, 0]).max() == pytest.approx(np.abs(soft[:, 0]).max() * (120 / 40) ** 2, rel=1e-3)

    def ratio(s: np.ndarray) -> float:  # partials 5-8 against the fundamental
        return np.abs(s[:, 3]).max() / np.abs(s[:, 0]).max()

    assert ratio(loud) > 1.5 * ratio(soft)


def test_window_equals_slice_of_whole_piece():
    rng = np.random.default_rng(1)
    on = np.sort(rng.uniform(0, 2.5, 30))
    notes = np.column_stack([on, on + rng.uniform(0.05, 1.0, 30), rng.integers(21, 109, 30), rng.integers(1, 128, 30)]).astype(float)
    whole, gate = piano_source(notes, 4 * SR)
    for start, n in [(0, 100), (12345, 7000), (3 * SR, SR)]:
        part, g = piano_source(notes, n, start)
        np.testing.assert_allclose(part, whole[start : start + n], atol=2e-6)
        np.testing.assert_array_equal(g, gate[start : start + n])
    split, g = piano_source(notes, 4 * SR, threads=3)  # three parts side by side join into the same source
    np.testing.assert_allclose(split, whole, atol=2e-6)
    np.testing.assert_array_equal(g, gate)
    before, g = piano_source(notes, 500, -600)  # before the piece: silence
    assert not before.any() and not g.any()


def test_silence_where_no_note_sounds_and_noise_only_with_notes():
    notes = np.array([[1.0, 1.2, 60, 90.0]])
    src, gate = piano_source(notes, 3 * SR)
    assert src.shape == (3 * SR, N_CHANNELS)
    margin = SourceConfig().gate_margin + SourceConfig().gate_ramp
    assert not src[:SR].any() and not gate[: SR - margin].any()
    assert not src[2 * SR :].any() and not gate[2 * SR :].any()
    assert np.abs(src[SR : SR + 400, len(GROUPS)]).max() > 0.05, "a hammer burst at the onset"
    assert src[SR + 1600 :, len(GROUPS)].max() == 0.0, "and only there"


def test_empty_and_out_of_range_inputs():
    src, gate = piano_source(np.zeros((0, 4)), 100)
    assert src.shape == (100, N_CHANNELS) and not src.any() and not gate.any()
    src, gate = piano_source(np.array([[0.0, 1.0, 60, 90.0]]), 0)
    assert src.shape == (0, N_CHANNELS)
    # a top-octave note keeps only the partials under max_freq: no aliasing above it
    src, _ = piano_source(np.array([[0.0, 1.0, 108, 100.0]]), SR)
    freqs, spec = _peaks(src[:, HARM].sum(1))
    assert freqs[np.argmax(spec)] == pytest.approx(4186 * np.sqrt(1 + 10**-2.2), abs=2.0)
    assert spec[freqs > 7600].max() < 1e-3 * spec.max()


def test_hundreds_of_simultaneous_notes_stay_bounded():
    notes = np.array([[0.0, 2.0, 21 + i % 88, 100.0] for i in range(400)])
    src, gate = piano_source(notes, SR, start_sample=SR // 2)
    assert src.shape == (SR, N_CHANNELS) and np.isfinite(src).all() and gate.max() == 1.0


@pytest.mark.parametrize("pitch", [48, 84])
def test_release_per_register(pitch):
    """The measured law: release_tau at middle C, x release_tau_octave per octave, cut after release_taus of them."""
    from w2m2w.models.source import MEASURED_RELEASE

    cfg = SourceConfig(partials=1, **MEASURED_RELEASE)
    src, gate = piano_source(np.array([[0.0, 1.0, pitch, 127.0]]), 6 * SR, 0, cfg)
    env = src[:, -1]
    tau0 = 3.0 * 0.63 ** ((pitch - 21) / 12)
    rel = 0.18 * 1.22 ** ((pitch - 60) / 12)  # by hand: 0.148 s an octave down, 0.268 s two octaves up
    assert env[SR + 960] == pytest.approx(np.exp(-(1.0 + 960 / SR) / tau0) * np.exp(-960 / (rel * SR)), rel=1e-4)
    end = SR + int(10.4 * rel * SR)
    assert env[end - 1] > 0 and not src[end:].any(), "cut 10.4 release times (90 dB) after the offset"


def test_the_default_release_is_the_same_for_every_key():
    """release_tau_octave 1: what every shipped weights file trained with (0.06 s, cut at 0.36 s), at any pitch."""
    for pitch in (30, 60, 100):
        src, _ = piano_source(np.array([[0.0, 0.5, pitch, 100.0]]), 2 * SR, 0, SourceConfig(partials=1))
        end = SR // 2 + int(6 * 0.06 * SR)
        assert src[end - 1, -1] > 0 and not src[end:].any()
