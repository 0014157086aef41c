"""Probabilities -> notes: onset runs, frame continuation, velocity, restrikes, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.decoding import decode_notes

FR = 10.0  # frames per second: round numbers for hand-made arrays
K = 39  # key index of middle C (MIDI 60)


def arrays(T: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((T, 88)), np.zeros((T, 88)), np.zeros((T, 88))


def test_onset_run_then_frames():
    onset, frame, vel = arrays()
    onset[2:4, K] = 0.9  # an onset run of two frames is one note
    frame[2:10, K] = 0.8
    vel[2:4, K] = [0.4, 0.6]
    notes = decode_notes(onset, frame, vel, FR)
    assert notes.shape == (1, 4)
    np.testing.assert_allclose(notes[0], [0.2, 1.0, 60, round(0.5 * 127)])


def test_onset_without_frames_lasts_its_run():
    onset, frame, vel = arrays()
    onset[5:8, K] = 0.7
    notes = decode_notes(onset, frame, vel, FR)
    np.testing.assert_allclose(notes[:, :3], [[0.5, 0.8, 60]])


def test_frames_without_onset_make_no_note():
    onset, frame, vel = arrays()
    frame[3:12, K] = 0.99
    assert decode_notes(onset, frame, vel, FR).shape == (0, 4)


def test_restrike_on_same_key_splits_notes():
    onset, frame, vel = arrays()
    onset[2, K] = onset[6, K] = 0.9
    frame[2:13, K] = 0.9
    vel[2, K], vel[6, K] = 0.2, 0.9
    notes = decode_notes(onset, frame, vel, FR)
    np.testing.assert_allclose(notes, [[0.2, 0.6, 60, round(0.2 * 127)], [0.6, 1.3, 60, round(0.9 * 127)]])


def test_gap_in_frames_ends_note():
    onset, frame, vel = arrays()
    onset[1, K] = 0.9
    frame[1:5, K] = 0.9
    frame[6:9, K] = 0.9  # after the gap: no onset, so no second note
    notes = decode_notes(onset, frame, vel, FR)
    np.testing.assert_allclose(notes[:, :2], [[0.1, 0.5]])


@pytest.mark.parametrize("threshold, expected", [(0.5, 0), (0.3, 1)])
def test_onset_threshold(threshold, expected):
    onset, frame, vel = arrays()
    onset[4, K] = 0.4
    frame[4:8, K] = 0.9
    assert len(decode_notes(onset, frame, vel, FR, onset_threshold=threshold)) == expected


def test_probability_exactly_at_a_threshold_does_not_count():
    # documented: a note starts where the onset probability is *above* the threshold and lasts
    # while the frame probability is *above* its threshold; equal is not above
    onset, frame, vel = arrays()
    onset[4, K] = 0.5
    frame[4:8, K] = 0.9
    assert len(decode_notes(onset, frame, vel, FR, onset_threshold=0.5)) == 0
    onset[4, K] = np.nextafter(0.5, 1.0)  # the smallest probability above 0.5 starts a note
    assert len(decode_notes(onset, frame, vel, FR, onset_threshold=0.5)) == 1
    onset[4, K] = 0.9
    frame[6:8, K] = 0.5  # frames 6 and 7 sit exactly at the threshold: the note ends at frame 6
    np.testing.assert_allclose(decode_notes(onset, frame, vel, FR, frame_threshold=0.5)[:, :2], [[0.4, 0.6]])


def test_frame_threshold_sets_offset():
    onset, frame, vel = arrays()
    onset[0, K] = 0.9
    frame[0:4, K] = 0.9
    frame[4:10, K] = 0.4
    assert decode_notes(onset, frame, vel, FR, frame_threshold=0.5)[0, 1] == pytest.approx(0.4)
    assert decode_notes(onset, frame, vel, FR, frame_threshold=0.3)[0, 1] == pytest.approx(1.0)


def test_velocity_scaling_and_clipping():
    onset, frame, vel = arrays()
    for k, v in ((0, 0.0), (10, 1.0), (20, 2.0), (30, 0.5)):
        onset[3, k] = 0.9
        vel[3, k] = v
    notes = decode_notes(onset, frame, vel, FR)
    assert notes[:, 2].tolist() == [21, 31, 41, 51]
    assert notes[:, 3].tolist() == [1, 127, 127, 64]  # 0 is raised to 1: a MIDI note-on needs velocity >= 1
    assert (decode_notes(onset, frame, None, FR)[:, 3] == 64).all()


def test_min_duration_and_sorting():
    onset, frame, vel = arrays()
    onset[5, 50] = 0.9  # short, high
    onset[5, 10] = 0.9
    frame[5:15, 10] = 0.9  # long, low
    onset[2, 70] = 0.9
    frame[2:6, 70] = 0.9
    notes = decode_notes(onset, frame, vel, FR)
    assert notes[:, 2].tolist() == [91, 31, 71]  # by onset, then pitch
    long_only = decode_notes(onset, frame, vel, FR, min_duration=0.35)
    assert long_only[:, 2].tolist() == [91, 31]


def test_note_running_to_the_end():
    onset, frame, vel = arrays(T=8)
    onset[6, K] = 0.9
    frame[6:, K] = 0.9
    np.testing.assert_allclose(decode_notes(onset, frame, vel, FR)[:, :2], [[0.6, 0.8]])


def test_offset_head_ends_a_note_the_frame_head_still_hears():
    onset, frame, vel = arrays()
    onset[2, K] = 0.9
    frame[2:15, K] = 0.8  # the string rings on (a room's reverb) past the release...
    offset = np.zeros((20, 88))
    offset[9, K] = 0.7  # ...which the offset head places at frame 9
    np.testing.assert_allclose(
        decode_notes(onset, frame, vel, FR)[:, :2], [[0.2, 1.5]]
    )  # without it: the frames decide
    np.testing.assert_allclose(
        decode_notes(onset, frame, vel, FR, offset=offset, offset_threshold=0.5)[:, :2], [[0.2, 0.9]]
    )
    np.testing.assert_allclose(
        decode_notes(onset, frame, vel, FR, offset=offset, offset_threshold=0.7)[:, :2], [[0.2, 1.5]]
    )  # strictly above
    offset[2, K] = 0.9  # an offset inside the onset run does not cut the note to nothing
    np.testing.assert_allclose(
        decode_notes(onset, frame, vel, FR, offset=offset, offset_threshold=0.5)[:, :2], [[0.2, 0.9]]
    )


def test_an_onset_run_that_reaches_the_last_frame_is_one_note_to_the_end():
    from w2m2w.decoding import decode_notes

    # 5 frames at 10 per second, key 0: onset above threshold on frames 3 and 4 (the last), frame head silent;
    # by hand: one note from 0.3 s to 0.5 s (the onset run sounds), velocity the mean of frames 3 and 4
    onset, frame, vel = np.zeros((5, 88)), np.zeros((5, 88)), np.zeros((5, 88))
    onset[3:, 0] = 0.9
    vel[3, 0], vel[4, 0] = 0.2, 0.6
    np.testing.assert_allclose(decode_notes(onset, frame, vel, 10.0), [[0.3, 0.5, 21, round(0.4 * 127)]])
    # one frame long, on the last frame
    onset[3, 0] = 0.0
    np.testing.assert_allclose(decode_notes(onset, frame, vel, 10.0), [[0.4, 0.5, 21, round(0.6 * 127)]])
