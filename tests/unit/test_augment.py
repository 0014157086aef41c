"""Augmentation: simulated rooms (alignment, cache, disjoint banks), the effects chain (alignment, level bounds, determinism)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit._synth import SR, tones
from w2m2w.data import augment as aug
from w2m2w.data.rooms import TRAIN_ROOMS, TRAIN_SEED, VALIDATION_ROOMS, VALIDATION_SEED, RoomBank, RoomRanges

# small rooms with short tails: a bank of three builds in about a second
SMALL = RoomRanges(
    size_min=(3.0, 3.0, 2.4),
    size_max=(4.5, 4.0, 3.0),
    rt60=(0.15, 0.3),
    close_distance=(0.3, 0.8),
    far_distance=(2.0, 2.6),
    max_ir_seconds=0.4,
)
SMALL_VAL = RoomRanges(
    size_min=(3.0, 3.0, 2.4),
    size_max=(4.5, 4.0, 3.0),
    rt60=(0.2, 0.4),
    close_distance=(0.3, 0.8),
    far_distance=(2.2, 2.8),
    max_ir_seconds=0.4,
)
TOLERANCE = 16  # samples: 1 ms, far below the transcriber's 32 ms frames


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rooms")


@pytest.fixture(scope="module")
def bank(cache) -> RoomBank:
    return RoomBank(3, 11, SMALL, cache)


@pytest.fixture()
def music() -> np.ndarray:
    notes = np.array([[0.1, 0.8, 60, 90], [0.3, 1.2, 67, 70], [0.6, 1.4, 48, 100]])
    return tones(notes, 1.5)


def click(at: int = 4000, n: int = SR) -> np.ndarray:
    """A 9-sample Hann-shaped click centred on `at`: band-limited below ~4 kHz, so that resampling to
    8 kHz without an anti-aliasing filter cannot drop it (a one-sample click can fall between samples)."""
    y = np.zeros(n, np.float32)
    y[at - 4 : at + 5] = 0.5 * np.hanning(11)[1:-1]
    return y


def onset(y: np.ndarray) -> int:
    """First sample whose magnitude reaches 30% of the peak: where a listener (or a model) hears the click start."""
    return int(np.argmax(np.abs(y) >= 0.3 * np.max(np.abs(y))))


def rms_db(y: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(y, dtype=np.float64)))


# rooms


def test_bank_direct_path_at_zero_and_far_mic_later(bank):
    assert len(bank) == 3
    for i in range(len(bank)):
        close, far = bank.irs(i)
        assert close.dtype == np.float32 and np.all(np.isfinite(close)) and np.all(np.isfinite(far))
        assert np.argmax(np.abs(close)) == 0  # the close direct path, where alignment put it
        # the ambient microphone hears the piano later (2 m or more away): its sound starts at its own
        # direct path, and its peak is there or at a later reflection (coinciding images can sum higher)
        assert (
            bank.far_delays[i] >= 1
            and onset(far) == bank.far_delays[i]
            and np.argmax(np.abs(far)) >= bank.far_delays[i]
        )
        # nothing of note before the direct path was cut off: the response starts at full strength
        assert abs(close[0]) > 0.3 * np.sqrt(np.sum(close**2))


def test_bank_cache_reload_equals_fresh_build(bank, cache, tmp_path):
    reloaded = RoomBank(3, 11, SMALL, cache)
    assert reloaded.build_seconds == 0.0  # read from the .npz, not simulated again
    fresh = RoomBank(3, 11, SMALL, tmp_path)  # same seed, simulated again from scratch
    assert fresh.build_seconds > 0.0
    for other in (reloaded, fresh):
        np.testing.assert_array_equal(other.far_delays, bank.far_delays)
        for i in range(3):
            for a, b in zip(other.irs(i), bank.irs(i)):
                np.testing.assert_array_equal(a, b)
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temporaries left behind


def test_training_and_validation_banks_are_disjoint(bank, cache):
    assert TRAIN_SEED != VALIDATION_SEED
    # validation is harder: longer reverberation, a more distant ambient microphone
    assert (
        VALIDATION_ROOMS.rt60[1] > TRAIN_ROOMS.rt60[1]
        and VALIDATION_ROOMS.far_distance[1] > TRAIN_ROOMS.far_distance[1]
    )
    val = RoomBank(3, 12, SMALL_VAL, cache)
    other_seed = RoomBank(3, 12, SMALL, cache)
    assert len({p.name for p in cache.glob("*.npz")}) >= 3  # one cache file each
    train_irs = [bank.irs(i)[1] for i in range(3)]
    for other in (val, other_seed):
        for i in range(3):
            assert not any(len(t) == len(other.irs(i)[1]) and np.allclose(t, other.irs(i)[1]) for t in train_irs)


def test_training_and_validation_factories_use_their_ranges(tmp_path):
    train, val = (
        RoomBank.training(1, tmp_path, seed=5),
        RoomBank.validation(1, tmp_path, seed=5),
    )  # the same seed on purpose
    assert train.ranges == TRAIN_ROOMS and val.ranges == VALIDATION_ROOMS and train.path != val.path
    assert not np.array_equal(train.positions, val.positions)
    assert (
        TRAIN_ROOMS.rt60[0] * 0.99 <= train.rt60[0] <= TRAIN_ROOMS.rt60[1]
        and VALIDATION_ROOMS.rt60[0] * 0.99 <= val.rt60[0] <= VALIDATION_ROOMS.rt60[1]
    )


def test_training_factory_takes_wider_ranges_but_never_the_validation_bank(tmp_path):
    wide = RoomBank.training(1, tmp_path, seed=5, ranges=SMALL_VAL)
    assert wide.ranges == SMALL_VAL and SMALL_VAL.rt60[0] * 0.99 <= wide.rt60[0] <= SMALL_VAL.rt60[1]
    with pytest.raises(ValueError, match="validation"):
        RoomBank.training(1, tmp_path, seed=VALIDATION_SEED, ranges=VALIDATION_ROOMS)


def test_room_probability_apart_from_the_effects(bank, music):
    """room_p=1 with p=0: only the room (the RMS kept, nothing else drawn); room_p=0: the input untouched."""
    rng = np.random.default_rng(3)
    only_room = aug.Augmenter(0.0, bank, room_p=1.0)(music, rng)
    assert not np.allclose(only_room, music) and rms_db(only_room) == pytest.approx(rms_db(music), abs=0.01)
    never = aug.Augmenter(0.0, bank, room_p=0.0)
    np.testing.assert_array_equal(never(music, np.random.default_rng(3)), aug.peak_safe(music))
    with pytest.raises(ValueError, match="room_p"):
        aug.Augmenter(0.5, bank, room_p=1.5)


# alignment


def test_room_stage_keeps_a_click_in_place(bank):
    for i in range(len(bank)):
        for seed in range(4):  # close- and far-dominated mixes, aligned and not
            y = aug.apply_room(click(), aug.room_ir(bank, np.random.default_rng(seed), room=i))
            assert y.shape == (SR,)
            assert abs(onset(y) - 4000) <= TOLERANCE


def test_codecs_keep_a_click_in_place():
    import pedalboard as pb

    seen = set()
    for seed in range(30):
        fx = aug.random_codec(np.random.default_rng(seed))
        seen.add(type(fx[0]).__name__)
        for at in (300, 8001, SR - 500):
            y = pb.Pedalboard(fx)(click(at), SR)
            assert y.shape == (SR,) and abs(onset(y) - at) <= TOLERANCE, (fx, at)
    assert seen == {"MP3Compressor", "Resample"}


def test_full_chain_keeps_a_click_in_place(bank):
    augmenter = aug.Augmenter(1.0, bank, reverb_share=1.0)
    for seed in range(12):
        for at in (1000, 9000):
            y = augmenter(click(at), np.random.default_rng(seed))
            assert y.shape == (SR,) and y.dtype == np.float32
            assert abs(onset(y) - at) <= TOLERANCE, (seed, at, onset(y))


# levels


def test_level_bounds(bank, music):
    """Room and effects keep the RMS, noise at >= 15 dB SNR adds <= 0.14 dB, gain is -18..+6 dB: a quiet
    input (peak 0.05, so +6 dB and any crest-factor change stay under full scale) lands within them."""
    augmenter = aug.Augmenter(1.0, bank)
    quiet = music * np.float32(0.05 / np.max(np.abs(music)))
    for seed in range(8):
        y = augmenter(quiet, np.random.default_rng(seed))
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
        assert aug.GAIN_DB[0] - 0.5 <= rms_db(y) - rms_db(quiet) <= aug.GAIN_DB[1] + 0.5


def test_loud_input_is_scaled_not_clipped(bank, music):
    augmenter = aug.Augmenter(1.0, bank)
    for seed in range(4):
        y = augmenter(music * 4, np.random.default_rng(seed))
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
        assert np.sum(np.abs(y) >= 0.999) <= 2  # a clipped signal would sit at full scale for many samples


def test_noise_snr_and_color(music):
    out = aug.add_noise(music, np.random.default_rng(0), snr_db=(20.0, 20.0))
    assert rms_db(music) - rms_db(out - music) == pytest.approx(20.0, abs=0.5)
    rng = np.random.default_rng(1)
    f = np.fft.rfftfreq(4 * SR, 1 / SR)
    for color, slope_db in (("white", 3.0), ("pink", 0.0), ("brown", -3.0)):  # power per octave band, per octave
        power = np.abs(np.fft.rfft(aug.colored_noise(4 * SR, rng, color))) ** 2
        low, high = (np.sum(power[(f >= lo) & (f < 2 * lo)]) for lo in (200, 3200))  # 4 octaves apart
        assert 10 * np.log10(high / low) == pytest.approx(4 * slope_db, abs=2.0), color


# determinism and the old entry point


def test_same_seed_same_output(bank, music):
    augmenter = aug.Augmenter(1.0, bank)
    a = augmenter(music, np.random.default_rng(5))
    b = augmenter(music, np.random.default_rng(5))
    c = augmenter(music, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_augment_function_keeps_shape_p0_identity_and_bounds(music):
    np.testing.assert_array_equal(aug.augment(music, np.random.default_rng(0), p=0.0), music)
    for seed in range(3):
        out = aug.augment(music.copy(), np.random.default_rng(seed), p=1.0)
        assert out.shape == music.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
        assert not np.allclose(out, music, atol=1e-4)
    assert np.max(np.abs(aug.augment(music * 3, np.random.default_rng(0), p=1.0))) <= 1.0
    with pytest.raises(ValueError):
        aug.Augmenter(1.5)


# ablation: stages left out


def test_skipping_every_stage_leaves_the_input(bank, music):
    everything = aug.Augmenter(1.0, bank, reverb_share=1.0, room_p=1.0, skip=aug.STAGES)
    for seed in range(3):
        np.testing.assert_array_equal(everything(music, np.random.default_rng(seed)), music)


def test_a_skipped_stage_still_draws_so_the_rest_of_the_chain_is_the_same(bank, music):
    """Twins of an ablation must hear the same rooms and effects but for the stage left out: the rng ends in
    the same state, and leaving out only the last stage (the level) leaves the full output over a constant gain."""
    full = aug.Augmenter(1.0, bank, reverb_share=1.0, room_p=1.0)
    for stage in aug.STAGES:
        one_less = aug.Augmenter(1.0, bank, reverb_share=1.0, room_p=1.0, skip=(stage,))
        a, b = np.random.default_rng(4), np.random.default_rng(4)
        full(music, a), one_less(music, b)
        assert a.bit_generator.state == b.bit_generator.state, stage
    quiet = music * 0.05  # so that no gain in GAIN_DB reaches peak_safe
    with_gain = full(quiet, np.random.default_rng(8))
    without = aug.Augmenter(1.0, bank, reverb_share=1.0, room_p=1.0, skip=("gain",))(quiet, np.random.default_rng(8))
    loud = np.abs(without) > 1e-3
    ratio = with_gain[loud] / without[loud]
    assert np.ptp(ratio) < 1e-4 * np.abs(ratio).mean()
    assert aug.GAIN_DB[0] <= 20 * np.log10(ratio.mean()) <= aug.GAIN_DB[1]
    assert not np.allclose(with_gain, without)


def test_skipping_the_room_leaves_only_the_other_stages(bank, music):
    no_room = aug.Augmenter(0.0, bank, room_p=1.0, skip=("room",))
    np.testing.assert_array_equal(no_room(music, np.random.default_rng(1)), music)


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="reverbb"):
        aug.Augmenter(0.5, skip=("reverbb",))
