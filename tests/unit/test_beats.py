"""w2m2w.beats, the hand-made tracker: beats and meter of hand-made audio and note patterns at known tempi (the learned one: test_beat_tracker.py)."""

import mir_eval
import numpy as np

from w2m2w import beats as B


def click_track(bpm: float, seconds: float, sr: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """Decaying 1 kHz clicks on every beat starting at 0.5 s: audio (samples,), beat times (n,)."""
    times = np.arange(0.5, seconds - 0.5, 60.0 / bpm)
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    t = np.arange(int(0.03 * sr)) / sr
    click = (np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.005)).astype(np.float32)
    for b in times:
        i = int(b * sr)
        y[i : i + len(click)] += click
    return y, times


def waltz_notes(bpm: float = 100.0, bars: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A 3/4 pattern (n, 4): bass and a new chord on beat 1, quieter chords on 2 and 3; and the downbeats (m,)."""
    ibi = 60.0 / bpm
    roots = [48, 53, 55, 48]
    notes, downbeats = [], []
    for bar in range(bars):
        root = roots[bar % 4]
        for beat in range(3):
            t = 0.4 + (bar * 3 + beat) * ibi
            if beat == 0:
                downbeats.append(t)
                notes.append((t, t + 3 * ibi, root - 12, 90))
            for p in (root + 12, root + 16, root + 19):
                notes.append((t, t + ibi * 0.8, p, 85 if beat == 0 else 55))
    return np.array(notes, dtype=np.float64), np.array(downbeats)


def test_click_track_beats_and_tempo():
    y, truth = click_track(120.0, 20.0)
    est = B.beats_from_audio(y, 16000)
    assert abs(est.tempo - 120.0) < 6.0
    assert mir_eval.beat.f_measure(truth, est.times) > 0.9


def test_note_pattern_beats_meter_and_downbeats_handmade():
    notes, downbeats = waltz_notes()
    est = B.handmade_beats_from_notes(notes)
    assert abs(est.tempo - 100.0) < 5.0
    assert est.meter == 3
    assert mir_eval.beat.f_measure(downbeats, est.downbeats) > 0.9


def test_note_envelope_peaks_at_onsets_weighted_by_velocity():
    notes = np.array([[1.0, 1.5, 60, 100], [2.0, 2.5, 60, 25]])
    env = B.note_onset_envelope(notes, fps=100)
    assert np.argmax(env) == 100
    assert env[100] > env[200] > env[150]


def test_extend_beats_keeps_last_tempo_and_meter():
    times = np.array([1.0, 1.5, 2.0, 2.5, 3.1, 3.7, 4.3])  # slows to 0.6 s a beat
    db = np.array([True, False, True, False, True, False, True])
    ext = B.extend_beats(B.Beats(times, db, 2), end=6.0)
    tail = ext.times[ext.times > 4.3]
    np.testing.assert_allclose(np.diff(np.concatenate([[4.3], tail])), 0.5, atol=0.11)  # median of the last intervals
    assert ext.times[-1] >= 6.0 and ext.times[0] <= 1.0
    idx = np.flatnonzero(ext.is_downbeat)
    assert set(np.diff(idx)) == {2}


def test_a_switch_to_half_beats_in_the_last_bars_is_not_carried_on():
    # 24 beats of 0.84 s (20.2 s), then 8 of 0.42 s: the demo's transcription as the tracker read it. By
    # hand: the intervals ending in the last 20 s are 16 of 0.84 and 8 of 0.42, median 0.84.
    times = np.concatenate([0.84 * np.arange(25), 0.84 * 24 + 0.42 * np.arange(1, 9)])
    ext = B.extrapolate_beats(times, end=times[-1] + 4.0)
    np.testing.assert_allclose(np.diff(ext[len(times) - 1 :]), 0.84, atol=1e-9)
    # 17 half beats (7.1 s): the window then holds 16 intervals of 0.84 and 17 of 0.42, and the half beat wins
    more = np.concatenate([0.84 * np.arange(25), 0.84 * 24 + 0.42 * np.arange(1, 18)])
    np.testing.assert_allclose(np.diff(B.extrapolate_beats(more, end=more[-1] + 2.0)[len(more) - 1 :]), 0.42)


def test_the_carried_tempo_reads_the_last_20_seconds_not_the_whole_piece():
    # 30 s at 1 s a beat, then 21 s at 0.5: only the new tempo is in the last 20 s
    times = np.concatenate([np.arange(31.0), 30.0 + 0.5 * np.arange(1, 43)])
    tail = np.diff(B.extrapolate_beats(times, end=times[-1] + 3.0)[len(times) - 1 :])
    np.testing.assert_allclose(tail, 0.5)
    # with fewer than 8 intervals in the window, the last 8 decide: 3 beats of 10 s after 1-s beats
    sparse = np.concatenate([np.arange(11.0), 10.0 + 10.0 * np.arange(1, 4)])
    assert np.median(np.diff(sparse)[-8:]) == 1.0
    np.testing.assert_allclose(np.diff(B.extrapolate_beats(sparse, end=sparse[-1] + 3.0)[len(sparse) - 1 :]), 1.0)


def test_bar_positions_follow_accents():
    strength = np.tile([2.0, -1.0, -1.0, -1.0], 8)
    strength = np.concatenate([[-1.0], strength])  # a pickup beat
    pos = B.bar_positions(strength, 4)
    assert list(np.flatnonzero(pos == 0)) == list(range(1, 33, 4))


def test_shipped_learned_tracker_on_a_waltz():
    """The default beats_from_notes is the learned tracker (weights/beat_tracker.safetensors): tempo, 3/4 and its bar lines."""
    assert B.default_weights() is not None
    notes, downbeats = waltz_notes()
    est = B.beats_from_notes(notes)
    assert abs(est.tempo - 100.0) < 5.0
    assert est.meter == 3
    assert mir_eval.beat.f_measure(downbeats, est.downbeats) > 0.9


def test_extrapolated_beats_by_hand_on_both_sides():
    # intervals 0.4, 0.6, 0.5, 0.6: median 0.55 for both the head and the tail. Back to 0.6 s: floor(1.4 / 0.55) = 2
    # beats before (0.9, 1.45); on to 5.3 s: ceil(1.2 / 0.55) = 3 beats after (4.65, 5.2, 5.75)
    times = np.array([2.0, 2.4, 3.0, 3.5, 4.1])
    np.testing.assert_allclose(
        B.extrapolate_beats(times, end=5.3, start=0.6),
        [0.9, 1.45, 2.0, 2.4, 3.0, 3.5, 4.1, 4.65, 5.2, 5.75],
        atol=1e-9,
    )
    # two beats are enough: 0.5 s back to 0.2 (one beat), on to 2.6 (three); the defaults start at 0 s
    np.testing.assert_allclose(
        B.extrapolate_beats(np.array([1.0, 1.5]), end=2.6, start=0.2), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    )
    np.testing.assert_allclose(B.extrapolate_beats(np.array([1.0, 1.5]), end=1.5), [0.0, 0.5, 1.0, 1.5])
    # nothing to add where the beats already cover [start, end]
    np.testing.assert_allclose(B.extrapolate_beats(times, end=4.1, start=2.0), times)
