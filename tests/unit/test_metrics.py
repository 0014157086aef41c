"""mir_eval-based transcription metrics on note lists."""

from __future__ import annotations

import numpy as np
import pytest

from w2m2w.metrics import mean_metrics, transcription_metrics

F1_KEYS = ("note_f1", "note_velocity_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1")


@pytest.fixture()
def ref() -> np.ndarray:
    rng = np.random.default_rng(3)
    on = np.sort(rng.uniform(0, 10, 40))
    return np.column_stack(
        [on, on + rng.uniform(0.2, 1.0, 40), rng.integers(30, 100, 40), rng.integers(20, 120, 40)]
    ).astype(float)


def test_perfect_transcription(ref):
    m = transcription_metrics(ref, ref.copy())
    for k in F1_KEYS:
        assert m[k] == pytest.approx(1.0), k


def test_onsets_shifted_beyond_tolerance(ref):
    est = ref.copy()
    est[:, :2] += 0.06  # 60 ms > 50 ms
    m = transcription_metrics(ref, est)
    assert m["note_f1"] == 0.0 and m["note_offset_f1"] == 0.0
    assert m["frame_f1"] > 0.7  # the notes still overlap in time
    within = ref.copy()
    within[:, :2] += 0.04
    assert transcription_metrics(ref, within)["note_f1"] == pytest.approx(1.0)


def test_empty_estimate(ref):
    m = transcription_metrics(ref, np.zeros((0, 4)))
    for k in F1_KEYS:
        assert m[k] == 0.0, k


def test_wrong_velocities_only_hurt_velocity_f1(ref):
    est = ref.copy()
    est[:, 3] = est[::-1, 3]
    m = transcription_metrics(ref, est)
    assert m["note_f1"] == pytest.approx(1.0) and m["note_offset_f1"] == pytest.approx(1.0)
    assert m["note_offset_velocity_f1"] < 0.6
    assert m["note_velocity_f1"] == pytest.approx(m["note_offset_velocity_f1"]), (
        "the offsets are all right, so only the velocities count"
    )


# Velocities by hand: the reference's 4 notes have velocities 20, 40, 60, 80, which mir_eval maps to
# 0, 1/3, 2/3, 1; it fits the estimate's velocities to those by least squares (slope and intercept),
# and a note's velocity matches within 0.1 of that range.
VEL = np.array([[0.0, 1.0, 60, 20], [1.0, 2.0, 62, 40], [2.0, 2.5, 64, 60], [3.0, 3.5, 65, 80]])


def test_note_velocity_ignores_offsets_and_a_global_gain():
    est = VEL.copy()
    est[:, 1] += 0.5  # every offset wrong
    est[:, 3] = 0.5 * VEL[:, 3] + 10  # softer overall, same order and spacing: the fit undoes it
    m = transcription_metrics(VEL, est)
    assert m["note_velocity_f1"] == 1.0
    assert m["note_offset_velocity_f1"] == 0.0 and m["note_offset_f1"] == 0.0


def test_note_velocity_counts_the_notes_whose_velocity_is_off():
    # estimate 20, 40, 60, 20 against targets 0, 1/3, 2/3, 1: mean v = 35, mean target = 0.5,
    # slope = sum((v-35)(t-0.5)) / sum((v-35)^2)
    # = (-15*-0.5 + 5*-1/6 + 25*1/6 + -15*0.5) / (225 + 25 + 625 + 225) = (10/3) / 1100 = 1/330;
    # fitted t = 0.5 + (v - 35)/330: 20 -> 0.4545 (ref 0, miss), 40 -> 0.5152 (ref 1/3, miss),
    # 60 -> 0.5758 (ref 2/3, 0.091 away: match), 20 -> 0.4545 (ref 1, miss). One match of four.
    est = VEL.copy()
    est[:, 3] = [20, 40, 60, 20]
    m = transcription_metrics(VEL, est)
    assert m["note_velocity_precision"] == pytest.approx(0.25) and m["note_velocity_recall"] == pytest.approx(0.25)
    assert m["note_f1"] == 1.0


def test_half_the_notes(ref):
    m = transcription_metrics(ref, ref[::2])
    assert m["note_precision"] == pytest.approx(1.0)
    assert m["note_recall"] == pytest.approx(0.5)
    assert m["note_f1"] == pytest.approx(2 / 3)


def test_notes_outside_the_piano_are_ignored(ref):
    est = np.vstack([ref, [[1.0, 2.0, 10, 80], [3.0, 4.0, 115, 80]]])
    assert transcription_metrics(ref, est)["note_precision"] == pytest.approx(1.0)


def test_mean_metrics():
    assert mean_metrics([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]) == {"a": 0.5, "b": 0.5}
    assert mean_metrics([]) == {}


# Hand-made cases: four notes on four keys, no overlaps, so every count below is done by hand.
# At 100 frames per second a note of 1.0 s covers 100 frames and one of 0.5 s covers 50.
FOUR = np.array([[0.0, 1.0, 60, 80], [1.0, 2.0, 62, 80], [2.0, 2.5, 64, 80], [3.0, 3.5, 65, 80]])
ALL_KEYS = {
    f"{kind}_{m}"
    for kind in ("note", "note_velocity", "note_offset", "note_offset_velocity", "frame")
    for m in ("precision", "recall", "f1")
}


def test_right_onsets_wrong_offsets_score_zero_with_offsets():
    est = FOUR.copy()
    est[:, 1] += 0.5  # offsets 0.5 s late: past max(50 ms, 20% of every note)
    m = transcription_metrics(FOUR, est)
    assert m["note_precision"] == m["note_recall"] == m["note_f1"] == 1.0, "onsets and pitches are all right"
    for k in ("note_offset", "note_offset_velocity"):
        assert m[f"{k}_precision"] == m[f"{k}_recall"] == m[f"{k}_f1"] == 0.0, k


def test_offsets_only_count_for_the_offset_metrics():
    est = FOUR.copy()
    est[:, 1] -= 0.3  # 0.3 s early: outside 20% of a 1 s note, but onsets still right
    m = transcription_metrics(FOUR, est)
    assert m["note_f1"] == 1.0, "note F1 ignores offsets"
    assert m["note_offset_f1"] == 0.0


def test_offset_tolerance_is_a_fifth_of_the_reference_note():
    # a 1 s note: offsets within 0.2 s match, 0.2 s included (mir_eval rounds distances to 0.1 ms)
    ref = np.array([[0.0, 1.0, 60, 80]])
    for offset, f1 in ((1.1995, 1.0), (1.2, 1.0), (1.2001, 0.0), (0.8, 1.0), (0.7999, 0.0)):
        assert transcription_metrics(ref, np.array([[0.0, offset, 60, 80]]))["note_offset_f1"] == f1, offset


def test_zero_length_notes_are_scored_as_one_millisecond():
    # mir_eval rejects zero durations; a zero-length note is [onset, onset + 1 ms], whose offset tolerance is 50 ms
    m = transcription_metrics(np.array([[1.0, 1.0, 60, 80]]), np.array([[1.0, 1.03, 60, 80]]))
    assert m["note_offset_f1"] == 1.0
    m = transcription_metrics(np.array([[1.0, 1.03, 60, 80]]), np.array([[1.0, 1.0, 60, 80]]))
    assert m["note_offset_f1"] == 1.0


def test_frame_precision_and_recall_half_the_notes():
    # est holds notes 0 and 2: 150 of the reference's 300 frames, and nothing else
    m = transcription_metrics(FOUR, FOUR[[0, 2]])
    assert m["frame_precision"] == 1.0
    assert m["frame_recall"] == 0.5
    assert m["frame_f1"] == pytest.approx(2 / 3)


def test_frame_precision_and_recall_extra_note():
    # est adds a 1 s note the reference does not have: 300 of its 400 frames are right
    est = np.vstack([FOUR, [[4.0, 5.0, 70, 80]]])
    m = transcription_metrics(FOUR, est)
    assert m["frame_precision"] == pytest.approx(0.75)
    assert m["frame_recall"] == 1.0
    assert m["frame_f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert m["note_precision"] == pytest.approx(0.8) and m["note_recall"] == 1.0


def test_frame_f1_when_precision_and_recall_are_both_half():
    # two chords of two notes, one key right in each: 100 of 200 frames on both sides
    ref = np.array([[0.0, 1.0, 60, 80], [0.0, 1.0, 64, 80]])
    est = np.array([[0.0, 1.0, 60, 80], [0.0, 1.0, 67, 80]])
    m = transcription_metrics(ref, est)
    assert m["frame_precision"] == 0.5 and m["frame_recall"] == 0.5 and m["frame_f1"] == 0.5


def test_frames_of_either_side_count_past_the_other_sides_end():
    late = np.array(
        [[0.0, 1.0, 21, 80], [40.0, 41.0, 21, 80]]
    )  # ends long after the other side, and after its own pitch number
    early = late[:1]
    assert transcription_metrics(late, early)["frame_recall"] == 0.5
    assert transcription_metrics(early, late)["frame_precision"] == 0.5


def test_single_frame_notes():
    one = np.array([[0.0, 0.01, 60, 80]])  # one frame
    m = transcription_metrics(one, one)
    assert m["frame_precision"] == m["frame_recall"] == m["frame_f1"] == 1.0
    assert m["note_f1"] == m["note_offset_f1"] == m["note_offset_velocity_f1"] == 1.0


def test_frame_rate_default_is_100_per_second():
    # 0.02 s is two frames at 100/s; 0.0149 s rounds to one (at 101/s it would round to two)
    m = transcription_metrics(np.array([[0.0, 0.02, 60, 80]]), np.array([[0.0, 0.0149, 60, 80]]))
    assert m["frame_precision"] == 1.0 and m["frame_recall"] == 0.5
    m = transcription_metrics(np.array([[0.0, 1.0, 60, 80]]), np.array([[0.0, 0.5, 60, 80]]), frame_rate=10.0)
    assert m["frame_recall"] == 0.5


def test_onset_tolerance_reaches_every_note_metric():
    est = FOUR.copy()
    est[:, 0] += 0.08  # 80 ms late onsets, same offsets
    default = transcription_metrics(FOUR, est)
    wide = transcription_metrics(FOUR, est, onset_tolerance=0.1)
    for k in ("note_f1", "note_velocity_f1", "note_offset_f1", "note_offset_velocity_f1"):
        assert default[k] == 0.0 and wide[k] == 1.0, k


def test_onset_tolerance_narrower_than_the_default_reaches_every_note_metric():
    # 30 ms late onsets: inside mir_eval's 50 ms default, outside a 20 ms tolerance, for every note metric
    est = FOUR.copy()
    est[:, 0] += 0.03
    narrow = transcription_metrics(FOUR, est, onset_tolerance=0.02)
    default = transcription_metrics(FOUR, est)
    for k in ("note_f1", "note_velocity_f1", "note_offset_f1", "note_offset_velocity_f1"):
        assert default[k] == 1.0 and narrow[k] == 0.0, k


def test_every_metric_is_reported_and_zero_without_notes():
    assert set(transcription_metrics(FOUR, FOUR)) == ALL_KEYS
    for ref, est in ((FOUR, np.zeros((0, 4))), (np.zeros((0, 4)), FOUR), (np.zeros((0, 4)), np.zeros((0, 4)))):
        m = transcription_metrics(ref, est)
        assert m == {k: 0.0 for k in ALL_KEYS}


def test_notes_outside_the_piano_are_ignored_in_the_reference():
    ref = np.vstack([FOUR, [[1.0, 2.0, 10, 80], [3.0, 4.0, 115, 80]]])
    m = transcription_metrics(ref, FOUR)
    assert m["note_recall"] == 1.0 and m["frame_recall"] == 1.0


def test_midi_to_hz():
    from w2m2w.metrics import _midi_to_hz

    # A4 = 440 Hz, an octave is a factor of 2, middle C is 261.63 Hz
    np.testing.assert_allclose(
        _midi_to_hz(np.array([69.0, 81.0, 57.0, 60.0, 21.0])), [440.0, 880.0, 220.0, 261.6256, 27.5], rtol=1e-6
    )


def test_mean_metrics_of_one_row_and_keys_of_the_first():
    assert mean_metrics([{"a": 0.25}]) == {"a": 0.25}
    assert mean_metrics([{"a": 1.0}, {"a": 0.0, "b": 3.0}]) == {"a": 0.5}


# --- sustain pedal: each interval scored as a note of one pitch; every expected figure counted by hand ---
PEDAL_KEYS = {f"pedal_{kind}_{m}" for kind in ("onset", "onset_offset", "frame") for m in ("precision", "recall", "f1")}


def test_pedal_metrics_by_hand():
    from w2m2w.metrics import pedal_metrics

    ref = np.array([[1.0, 3.0], [4.0, 5.0], [6.0, 6.5]])
    est = np.array([[1.15, 3.1], [4.3, 5.0], [6.05, 7.0]])
    m = pedal_metrics(ref, est)
    assert set(m) == PEDAL_KEYS
    # onsets within 0.2 s: 1.15 (0.15 off) and 6.05 (0.05 off) match, 4.3 (0.3 off) does not
    assert m["pedal_onset_precision"] == pytest.approx(2 / 3) and m["pedal_onset_recall"] == pytest.approx(2 / 3)
    assert m["pedal_onset_f1"] == pytest.approx(2 / 3)
    # offsets within max(0.2 x length, 0.05): the 2 s press allows 0.4 (3.1 is 0.1 off: matched), the 0.5 s one
    # allows 0.1 (7.0 is 0.5 off: not matched)
    assert m["pedal_onset_offset_precision"] == pytest.approx(1 / 3) and m[
        "pedal_onset_offset_recall"
    ] == pytest.approx(1 / 3)
    assert m["pedal_onset_offset_f1"] == pytest.approx(1 / 3)
    # frames at 100/s: the reference holds 200 + 100 + 50 = 350, the estimate 195 + 70 + 95 = 360,
    # both 185 + 70 + 45 = 300: precision 5/6, recall 6/7, F1 2 (5/6)(6/7) / (5/6 + 6/7) = 60/71
    assert m["pedal_frame_precision"] == pytest.approx(5 / 6) and m["pedal_frame_recall"] == pytest.approx(6 / 7)
    assert m["pedal_frame_f1"] == pytest.approx(60 / 71)


def test_pedal_onset_tolerance_is_kong_et_als_200_ms():
    from w2m2w.metrics import pedal_metrics

    ref = np.array([[1.0, 2.0]])
    assert (
        pedal_metrics(ref, np.array([[1.19, 2.0]]))["pedal_onset_f1"] == 1.0
    )  # 190 ms: a miss for a note, a hit for the pedal
    assert pedal_metrics(ref, np.array([[1.2, 2.0]]))["pedal_onset_f1"] == 1.0  # the tolerance itself counts
    assert pedal_metrics(ref, np.array([[1.21, 2.0]]))["pedal_onset_f1"] == 0.0
    assert pedal_metrics(ref, np.array([[1.19, 2.0]]), onset_tolerance=0.05)["pedal_onset_f1"] == 0.0


def test_pedal_offset_tolerance_floor():
    from w2m2w.metrics import pedal_metrics

    # a 0.1 s press: 20 % is 20 ms, so the 50 ms floor decides
    ref = np.array([[1.0, 1.1]])
    assert pedal_metrics(ref, np.array([[1.0, 1.149]]))["pedal_onset_offset_f1"] == 1.0
    assert pedal_metrics(ref, np.array([[1.0, 1.151]]))["pedal_onset_offset_f1"] == 0.0


def test_one_estimate_matches_one_reference():
    from w2m2w.metrics import pedal_metrics

    # two presses near one: one matches, the other is a false positive
    m = pedal_metrics(np.array([[1.0, 2.0]]), np.array([[1.0, 1.5], [1.1, 2.0]]))
    assert (
        m["pedal_onset_precision"] == 0.5
        and m["pedal_onset_recall"] == 1.0
        and m["pedal_onset_f1"] == pytest.approx(2 / 3)
    )


def test_pedal_metrics_without_presses_are_zero():
    from w2m2w.metrics import pedal_metrics

    one = np.array([[1.0, 2.0]])
    for ref, est in ((one, np.zeros((0, 2))), (np.zeros((0, 2)), one), (np.zeros((0, 2)), np.zeros((0, 2)))):
        assert pedal_metrics(ref, est) == {k: 0.0 for k in PEDAL_KEYS}
    assert pedal_metrics(one, one) == {k: 1.0 for k in PEDAL_KEYS}


def test_pedal_offset_ratio_and_floor_are_passed_on():
    from w2m2w.metrics import pedal_metrics

    # a 1 s press, released 0.15 s late: inside the default 20 % (0.2 s), outside 10 % (0.1 s) with a 50 ms floor
    ref, est = np.array([[1.0, 2.0]]), np.array([[1.0, 2.15]])
    assert pedal_metrics(ref, est)["pedal_onset_offset_f1"] == 1.0
    assert pedal_metrics(ref, est, offset_ratio=0.1)["pedal_onset_offset_f1"] == 0.0
    assert pedal_metrics(ref, est, offset_ratio=0.3)["pedal_onset_offset_f1"] == 1.0
    # the floor: a 0.1 s press released 0.08 s late is outside 20 % (0.02 s) and the 50 ms floor, inside a 0.1 s floor
    ref, est = np.array([[1.0, 1.1]]), np.array([[1.0, 1.18]])
    assert pedal_metrics(ref, est)["pedal_onset_offset_f1"] == 0.0
    assert pedal_metrics(ref, est, offset_min_tolerance=0.1)["pedal_onset_offset_f1"] == 1.0
    # the onset metric never looks at offsets, whatever their tolerances
    assert pedal_metrics(ref, est, offset_ratio=0.0, offset_min_tolerance=0.0)["pedal_onset_f1"] == 1.0


def test_pedal_press_of_one_frame():
    from w2m2w.metrics import pedal_metrics

    # [0.5, 0.51] at 100 frames/s covers frame 50 only; a zero-length press is scored as 1 ms, which is one frame too
    one = np.array([[0.5, 0.51]])
    assert pedal_metrics(one, one) == {k: 1.0 for k in PEDAL_KEYS}
    m = pedal_metrics(one, np.array([[0.5, 0.5]]))
    assert m["pedal_frame_precision"] == m["pedal_frame_recall"] == 1.0
    # one frame later: no frame in common (the rolls are 0/1 per frame, by hand), onsets 10 ms apart still match
    m = pedal_metrics(one, np.array([[0.51, 0.52]]))
    assert m["pedal_frame_precision"] == m["pedal_frame_recall"] == m["pedal_frame_f1"] == 0.0
    assert m["pedal_onset_f1"] == 1.0
    # a one-frame press at the very start, against a two-frame one: 1 of 2 frames
    m = pedal_metrics(np.array([[0.0, 0.02]]), np.array([[0.0, 0.01]]))
    assert (
        m["pedal_frame_precision"] == 1.0
        and m["pedal_frame_recall"] == 0.5
        and m["pedal_frame_f1"] == pytest.approx(2 / 3)
    )


def test_pedal_frames_at_another_frame_rate():
    from w2m2w.metrics import pedal_metrics

    # at 10 frames/s a 0.5 s press is 5 frames and a 1 s press 10: recall 0.5
    m = pedal_metrics(np.array([[0.0, 1.0]]), np.array([[0.0, 0.5]]), frame_rate=10.0)
    assert m["pedal_frame_precision"] == 1.0 and m["pedal_frame_recall"] == 0.5
    # at the default 100/s, 0.014 s rounds to 1 frame and 0.02 s to 2 (at 50/s both would be 1)
    m = pedal_metrics(np.array([[0.0, 0.02]]), np.array([[0.0, 0.014]]))
    assert m["pedal_frame_recall"] == 0.5
