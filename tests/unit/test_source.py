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
    notes = np.column_stack(
        [on, on + rng.uniform(0.05, 1.0, 30), rng.integers(21, 109, 30), rng.integers(1, 128, 30)]
    ).astype(float)
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
    src, gate = piano_source(notes, SR // 4, start_sample=SR // 2)
    # the source is a sum over notes: 400 notes are 4 or 5 copies of each of the 88 keys' single-note sources
    # (the hammer and noise channels multiply that sum by the same noise), and the gate is one note's
    expected = np.zeros_like(src, dtype=np.float64)
    for pitch in range(21, 109):
        one, one_gate = piano_source(np.array([[0.0, 2.0, pitch, 100.0]]), SR // 4, start_sample=SR // 2)
        expected += np.sum(notes[:, 2] == pitch) * one
    np.testing.assert_allclose(src, expected, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(gate, one_gate)


def test_gate_is_a_trapezoid_around_each_note_widened_by_the_margin():
    # by hand: on at sample 1000, off at 2000, cut 2 x 0.01 s = 320 samples later (2320); the gate is 1 on
    # [1000 - 100, 2320 + 100) and ramps linearly over 50 samples on each side
    cfg = SourceConfig(partials=1, gate_margin=100, gate_ramp=50, release_tau=0.01, release_taus=2.0)
    _, gate = piano_source(np.array([[1000 / SR, 2000 / SR, 60, 100.0]]), 3000, 0, cfg)
    i = np.arange(3000)
    expected = np.clip(np.minimum((i - 850) / 50, (2470 - i) / 50), 0.0, 1.0)
    np.testing.assert_allclose(gate, expected, atol=1e-7)
    assert (
        gate[849] == 0.0
        and gate[851] == pytest.approx(1 / 50)
        and gate[899] == pytest.approx(49 / 50)
        and gate[900] == 1.0
    )
    assert gate[2419] == 1.0 and gate[2420] == 1.0 and gate[2421] == pytest.approx(49 / 50) and gate[2470] == 0.0
    # the default margin and ramp (256 and 160 samples) on the onset's side
    _, gate = piano_source(np.array([[1.0, 1.1, 60, 100.0]]), SR + 100)
    assert (
        gate[SR - 256 - 160] == 0.0
        and gate[SR - 256 - 80] == pytest.approx(0.5)
        and gate[SR - 257] < 1.0
        and gate[SR - 256] == 1.0
    )


def test_gates_of_overlapping_notes_take_the_larger_value():
    cfg = SourceConfig(partials=1, gate_margin=0, gate_ramp=100, release_tau=0.001, release_taus=1.0)
    # note a ends (with its 16-sample release) at 1016 and ramps down to 1116; note b ramps up from 1000 to 1100
    _, gate = piano_source(np.array([[0.0, 1000 / SR, 60, 100.0], [1100 / SR, 2000 / SR, 64, 100.0]]), 2200, 0, cfg)
    i = np.arange(1000, 1116)
    np.testing.assert_allclose(
        gate[i], np.maximum((1116 - i) / 100, np.clip((i - 1000) / 100, 0, 1)).clip(0, 1), atol=1e-7
    )


def test_higher_partials_decay_faster_by_the_documented_law():
    # partial 2 alone (channel h2): gain 1 (velocity 127) x 2^-0.8 (the loud rolloff) x exp(-1.15 t / tau0) x sin(w2 t)
    cfg = SourceConfig(partials=2)
    pitch = 45
    src, _ = piano_source(np.array([[0.0, 2.0, pitch, 127.0]]), SR, 0, cfg)
    b = 10 ** (-4.0 + 1.8 * (pitch - 21) / 87)
    f2 = 2 * 440 * 2 ** ((pitch - 69) / 12) * np.sqrt(1 + 4 * b)
    tau0 = 3.0 * 0.63 ** ((pitch - 21) / 12) * SR
    m = np.arange(SR)
    expected = 2**-0.8 * np.exp(-1.15 * m / tau0) * np.sin(2 * np.pi * f2 * m / SR)
    np.testing.assert_allclose(src[:, 1], expected, atol=2e-5)
    # the fundamental of the same note decays with tau0 itself: its envelope channel after 1 s
    assert src[SR - 1, -1] == pytest.approx(np.exp(-(SR - 1) / tau0), rel=1e-4)


def test_decay_time_falls_by_tau_octave_per_octave():
    # the envelope channel of A1 (33) and A2 (45) after 0.5 s: exp(-0.5 / (3 x 0.63)) and exp(-0.5 / (3 x 0.63^2))
    for pitch, tau in ((33, 3.0 * 0.63), (45, 3.0 * 0.63**2), (21, 3.0)):
        src, _ = piano_source(np.array([[0.0, 1.0, pitch, 127.0]]), SR, 0, SourceConfig(partials=1))
        assert src[SR // 2, -1] == pytest.approx(np.exp(-0.5 / tau), rel=1e-4), pitch
    # velocity scales it by (v / 127)^2
    src, _ = piano_source(np.array([[0.0, 1.0, 21, 64.0]]), SR, 0, SourceConfig(partials=1))
    assert src[0, -1] == pytest.approx((64 / 127) ** 2, rel=1e-5)


def test_inharmonicity_and_partial_frequencies_by_hand():
    from w2m2w.models.source import inharmonicity, partial_frequencies

    # B is 10^-4 at A0 (21), 10^-2.2 at C8 (108), log-linear between: half-way (64.5) is 10^-3.1
    np.testing.assert_allclose(inharmonicity(np.array([21.0, 108.0, 64.5])), [1e-4, 10**-2.2, 10**-3.1], rtol=1e-12)
    # A0: 32 partials, the 32nd at 32 x 27.5 x sqrt(1 + 1e-4 x 32^2) Hz, well under 7600 Hz
    f = partial_frequencies(21)
    assert (
        len(f) == 32
        and f[0] == pytest.approx(27.5 * np.sqrt(1 + 1e-4))
        and f[-1] == pytest.approx(880 * np.sqrt(1.1024))
    )
    # C8: only the fundamental is under 7600 Hz (the second partial is above 8000)
    np.testing.assert_allclose(partial_frequencies(108), [440 * 2 ** (39 / 12) * np.sqrt(1 + 10**-2.2)])
    # fewer partials when asked, and max_freq is a strict limit
    assert len(partial_frequencies(21, SourceConfig(partials=5))) == 5
    assert len(partial_frequencies(69, SourceConfig(max_freq=440 * np.sqrt(1 + 10 ** (-4 + 1.8 * 48 / 87))))) == 0


def test_a_zero_length_note_sounds_one_sample_before_its_release():
    # on = off = sample 1000: the offset is taken as sample 1001, so the damper starts one sample after the onset
    cfg = SourceConfig(partials=1)
    src, _ = piano_source(np.array([[1000 / SR, 1000 / SR, 21, 127.0]]), 1100, 0, cfg)
    env, tau0, rel = src[:, -1], 3.0 * SR, 0.06 * SR
    assert env[1000] == pytest.approx(1.0) and env[1001] == pytest.approx(np.exp(-1 / tau0), rel=1e-6)
    assert env[1002] == pytest.approx(np.exp(-2 / tau0) * np.exp(-1 / rel), rel=1e-6)


def test_a_gate_without_ramp_is_a_step():
    cfg = SourceConfig(partials=1, gate_margin=10, gate_ramp=0, release_tau=0.001, release_taus=1.0)
    _, gate = piano_source(np.array([[100 / SR, 200 / SR, 60, 100.0]]), 300, 0, cfg)
    # on at 100, cut at 216: 1 on [90, 226) and, as the falling ramp starts at 1, on 226 too; 0 elsewhere
    np.testing.assert_array_equal(np.flatnonzero(gate), np.arange(90, 227))
    assert gate[90:227].min() == 1.0


def test_source_config_from_a_stored_dict():
    from w2m2w.models.source import source_config_from

    assert source_config_from(None) == SourceConfig() == source_config_from({})
    assert source_config_from({"partials": 8, "gate_ramp": 3}) == SourceConfig(partials=8, gate_ramp=3)
    with pytest.raises(ValueError, match=r"^unknown source config keys \['nope', 'zz'\]$"):
        source_config_from({"zz": 1, "partials": 8, "nope": 2})


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


def test_release_seconds_and_the_longest_release_by_hand():
    from w2m2w.models.source import longest_release, release_seconds

    cfg = SourceConfig(release_tau=0.2, release_tau_octave=1.5, release_taus=4.0)
    # release_tau at middle C (60), x 1.5 an octave up, / 1.5 an octave down, x 1.5^(1/12) a semitone up
    np.testing.assert_allclose(
        release_seconds(np.array([60.0, 72.0, 48.0, 61.0]), cfg),
        [0.2, 0.3, 0.2 / 1.5, 0.2 * 1.5 ** (1 / 12)],
        rtol=1e-12,
    )
    assert release_seconds(66, cfg) == pytest.approx(0.2 * np.sqrt(1.5), rel=1e-12)
    # the longest: C8 (108, four octaves up) when the release grows with pitch, A0 (21) when it shrinks; x release_taus
    assert longest_release(cfg) == pytest.approx(0.2 * 1.5**4 * 4.0, rel=1e-12)
    shrinking = SourceConfig(release_tau=0.2, release_tau_octave=0.8, release_taus=4.0)
    assert longest_release(shrinking) == pytest.approx(0.2 * 0.8 ** (-39 / 12) * 4.0, rel=1e-12)
    assert longest_release() == pytest.approx(0.06 * 6.0, rel=1e-12)  # the default: the same 0.06 s for every key


def test_partial_frequencies_follow_the_configured_inharmonicity():
    from w2m2w.models.source import partial_frequencies

    # B = 10^-2 for every key: A0's partials at k 27.5 sqrt(1 + 0.01 k^2) (k = 1 .. 5 asked for)
    cfg = SourceConfig(partials=5, log10_b_low=-2.0, log10_b_high=-2.0)
    k = np.arange(1, 6)
    np.testing.assert_allclose(partial_frequencies(21, cfg), k * 27.5 * np.sqrt(1 + 0.01 * k * k), rtol=1e-12)


@pytest.mark.parametrize("threads", [2, 4])
def test_two_parts_side_by_side_give_the_one_thread_source(threads):
    # 20000 samples are two parts of 10000 (at most one per 8000 samples, whatever threads asks for); a note that
    # sounds across the join, so both halves hold sound: the parts join into the one-thread source to float rounding
    notes = np.array([[0.1, 1.2, 57, 100.0], [0.55, 1.1, 64, 80.0]])
    one, g1 = piano_source(notes, 20000, 0, threads=1)
    split, g2 = piano_source(notes, 20000, 0, threads=threads)
    assert np.abs(one[10000:, 0]).max() > 0.05 and np.abs(one[:10000, 0]).max() > 0.05
    np.testing.assert_allclose(split, one, atol=2e-6)
    np.testing.assert_array_equal(g2, g1)


def test_partials_stop_100_db_under_the_notes_start():
    # By hand, middle C at 0.1-0.2 s with the real piano's release (0.18 s at middle C, cut after 10.4 of them, so
    # the note reaches 2.072 s): the fundamental's level under its start is exp(-(t - 0.1) / tau0) during the note,
    # times exp(-(t - 0.2) / 0.18) after it, tau0 = 3.0 x 0.63 ** (39 / 12) s; it is 100 dB down (1e-5) at
    # t = (ln 1e5 + 0.1 / tau0 + 0.2 / 0.18) / (1 / tau0 + 1 / 0.18) = 1.811 s, and every higher partial sooner.
    from dataclasses import replace

    from w2m2w.models.source import MEASURED_RELEASE

    cfg = replace(SourceConfig(), **MEASURED_RELEASE)
    tau0 = 3.0 * 0.63 ** (39 / 12)
    t = (np.log(1e5) + 0.1 / tau0 + 0.2 / 0.18) / (1 / tau0 + 1 / 0.18)
    assert t == pytest.approx(1.811, abs=1e-3)
    src, gate = piano_source(np.array([[0.1, 0.2, 60, 100]]), int(2.2 * SR), 0, cfg)
    cut = int(np.ceil(t * SR))
    assert np.abs(src[cut - 3 : cut - 1, HARM]).max() > 0  # still played just before
    assert not src[cut + 1 :, HARM].any()  # from there on, nothing: not computed
    assert gate[int(2.05 * SR)] == 1.0  # while the note's own reach (2.072 s) goes on
