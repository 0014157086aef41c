"""Performance events: notes <-> tokens round trips, on hand-made and generated note lists."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from w2m2w import events as ev

# Velocity bins by hand (Magenta's): 32 bins of four MIDI velocities from 1, the last one short:
# 1-4 -> 0, 5-8 -> 1, ..., 121-124 -> 30, 125-127 -> 31; a bin reads back as the velocity in its
# middle, 1 + 4b + 2: 3, 7, 11, ..., 123, 127.
HAND_BIN = {v: b for b, low in enumerate(range(1, 128, 4)) for v in range(low, min(low + 4, 128))}
HAND_BIN_VELOCITY = list(range(3, 128, 4))


def test_vocabulary_layout():
    assert ev.VOCAB_SIZE == 3 + 128 + 128 + 100 + 32
    assert [ev.token_name(t) for t in (ev.PAD, ev.BOS, ev.EOS)] == ["PAD", "BOS", "EOS"]
    assert ev.token_name(ev.NOTE_ON + 60) == "NOTE_ON(60)"
    assert ev.token_name(ev.NOTE_OFF + 21) == "NOTE_OFF(21)"
    assert (
        ev.token_name(ev.TIME_SHIFT) == "TIME_SHIFT(10ms)" and ev.token_name(ev.TIME_SHIFT + 99) == "TIME_SHIFT(1000ms)"
    )
    assert ev.token_name(ev.VELOCITY + 31) == "VELOCITY(31)"
    with pytest.raises(ValueError):
        ev.token_name(ev.VOCAB_SIZE)


def test_velocity_bins():
    assert len(HAND_BIN) == 127 and len(HAND_BIN_VELOCITY) == 32 and HAND_BIN_VELOCITY[-1] == 127
    v = np.arange(1, 128)
    assert ev.velocity_bin(v).tolist() == [HAND_BIN[x] for x in range(1, 128)]
    assert ev.bin_velocity(np.arange(32)).tolist() == HAND_BIN_VELOCITY
    assert [int(ev.velocity_bin(x)) for x in (1, 4, 5, 63, 64, 65, 80, 124, 125, 127)] == [
        0,
        0,
        1,
        15,
        15,
        16,
        19,
        30,
        31,
        31,
    ]
    assert [int(ev.velocity_bin(x)) for x in (0, -3, 200, 4.4, 4.6)] == [0, 0, 31, 0, 1], "clipped to 1..127, rounded"
    assert int(ev.bin_velocity(ev.DEFAULT_VELOCITY_BIN)) == 63


def test_hand_made_sequence():
    notes = np.array([[0.0, 0.5, 60, 80], [0.0, 1.0, 64, 80], [2.5, 2.6, 67, 30]])
    names = [ev.token_name(t) for t in ev.notes_to_tokens(notes)]
    assert names == [
        "VELOCITY(19)",
        "NOTE_ON(60)",
        "NOTE_ON(64)",
        "TIME_SHIFT(500ms)",
        "NOTE_OFF(60)",
        "TIME_SHIFT(500ms)",
        "NOTE_OFF(64)",
        "TIME_SHIFT(1000ms)",
        "TIME_SHIFT(500ms)",
        "VELOCITY(7)",
        "NOTE_ON(67)",
        "TIME_SHIFT(100ms)",
        "NOTE_OFF(67)",
    ]


def test_restruck_key_and_same_step_release():
    # a key struck again while it sounds ends the earlier note; a release and a strike on one step stay two notes
    notes = np.array([[0.0, 2.0, 60, 64], [1.0, 1.5, 60, 64], [3.0, 3.5, 62, 64], [3.5, 4.0, 62, 64]])
    back = ev.tokens_to_notes(ev.notes_to_tokens(notes))
    np.testing.assert_allclose(back[:, :3], [[0.0, 1.0, 60], [1.0, 1.5, 60], [3.0, 3.5, 62], [3.5, 4.0, 62]])


def test_long_silence_and_start():
    notes = np.array([[0.0, 0.1, 60, 64], [7.234, 7.3, 61, 64]])
    toks = ev.notes_to_tokens(notes)
    assert sum(1 for t in toks if t == ev.TIME_SHIFT + 99) == 7
    np.testing.assert_allclose(ev.tokens_to_notes(toks)[:, :2], [[0.0, 0.1], [7.23, 7.3]])
    assert ev.duration_steps(toks) == 730
    shifted = ev.notes_to_tokens(notes, start=7.0)  # notes before `start` are left out
    np.testing.assert_allclose(ev.tokens_to_notes(shifted)[:, :3], [[0.23, 0.3, 61]])


def test_decoder_tolerates_any_sequence():
    rng = np.random.default_rng(0)
    for _ in range(20):
        toks = rng.integers(0, ev.VOCAB_SIZE, 300)
        notes = ev.tokens_to_notes(toks)
        assert notes.shape[1] == 4
        if len(notes):
            assert np.all(notes[:, 1] > notes[:, 0]) and np.all((notes[:, 3] >= 1) & (notes[:, 3] <= 127))
    assert ev.tokens_to_notes(
        np.array([ev.BOS, ev.NOTE_ON + 60, ev.TIME_SHIFT + 9, ev.EOS, ev.NOTE_ON + 61])
    ).tolist() == [[0.0, 0.1, 60, 63]]
    assert len(ev.tokens_to_notes(np.array([ev.NOTE_ON + 60, ev.TIME_SHIFT]), end_open_notes=False)) == 0


@st.composite
def note_lists(draw):
    """Note lists with chords, restruck and overlapping same-pitch notes, and long silences."""
    n = draw(st.integers(0, 40))
    t = 0.0
    rows = []
    pitches = draw(st.lists(st.integers(0, 127), min_size=1, max_size=6))  # few pitches: many same-key overlaps
    for _ in range(n):
        gap = draw(st.one_of(st.just(0.0), st.floats(0, 0.5), st.floats(1.0, 12.0)))  # chords, runs, silences
        t += gap
        dur = draw(st.one_of(st.floats(0.0005, 0.02), st.floats(0.02, 4.0)))
        pitch = draw(st.one_of(st.sampled_from(pitches), st.integers(0, 127)))
        vel = draw(st.integers(1, 127))
        rows.append([t, t + dur, pitch, vel])
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _grid(x: np.ndarray) -> np.ndarray:
    return np.rint(x * ev.STEPS_PER_SECOND)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(note_lists())
def test_round_trip_is_canonical_form(notes):
    toks = ev.notes_to_tokens(notes)
    back = ev.tokens_to_notes(toks)
    canon = ev.canonical_notes(notes)
    np.testing.assert_array_equal(back, canon)
    assert np.array_equal(ev.notes_to_tokens(back), toks), "encoding the decoded notes gives the same tokens"
    assert toks.min(initial=ev.N_SPECIAL) >= ev.N_SPECIAL and toks.max(initial=0) < ev.VOCAB_SIZE


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(note_lists())
def test_canonical_form_is_the_grid_and_bins(notes):
    """Exact up to the 10 ms grid and the velocity bins; a restruck key only cuts the note before."""
    canon = ev.canonical_notes(notes)
    on, off = _grid(notes[:, 0]), np.maximum(_grid(notes[:, 1]), _grid(notes[:, 0]) + 1)
    want = {}
    for o, f, p, v in zip(on, off, notes[:, 2].astype(int), (HAND_BIN[int(x)] for x in notes[:, 3])):
        key = (int(o), int(p))
        if key not in want or (f, v) > want[key]:
            want[key] = (f, v)
    assert len(canon) == len(want), "one note per key and onset step"
    for row in canon:
        o, p = int(_grid(row[0])), int(row[2])
        f, v = want[(o, p)]
        assert row[3] == HAND_BIN_VELOCITY[v], "the velocity in the middle of the note's bin"
        later = [k[0] for k in want if k[1] == p and k[0] > o]
        assert _grid(row[1]) == min([f] + later), "ends at its own release or where the key is struck again"
    # the canonical form is a fixed point
    np.testing.assert_array_equal(ev.canonical_notes(canon), canon)


@settings(max_examples=100, deadline=None)
@given(note_lists())
def test_no_same_key_overlap_means_plain_quantisation(notes):
    notes = notes[np.lexsort((notes[:, 0], notes[:, 2]))]
    keep = np.ones(len(notes), bool)
    last_off: dict[int, float] = {}
    for i, (o, f, p, _) in enumerate(notes):
        if _grid(o) < last_off.get(int(p), -1):
            keep[i] = False
        else:
            last_off[int(p)] = max(_grid(f), _grid(o) + 1)
    notes = notes[keep]
    back = ev.tokens_to_notes(ev.notes_to_tokens(notes))
    order = np.lexsort((notes[:, 2], _grid(notes[:, 0])))
    q = notes[order]
    np.testing.assert_array_equal(_grid(back[:, 0]), _grid(q[:, 0]))
    np.testing.assert_array_equal(_grid(back[:, 1]), np.maximum(_grid(q[:, 1]), _grid(q[:, 0]) + 1))
    np.testing.assert_array_equal(back[:, 2], q[:, 2])
    np.testing.assert_array_equal(back[:, 3], [HAND_BIN_VELOCITY[HAND_BIN[int(v)]] for v in q[:, 3]])


def test_token_names_at_the_edges_of_each_range():
    # the layout of the module's docstring, by hand: 0..2 special, 3..130 NOTE_ON, 131..258 NOTE_OFF,
    # 259..358 TIME_SHIFT 10..1000 ms, 359..390 VELOCITY 0..31
    names = {
        2: "EOS",
        3: "NOTE_ON(0)",
        130: "NOTE_ON(127)",
        131: "NOTE_OFF(0)",
        258: "NOTE_OFF(127)",
        259: "TIME_SHIFT(10ms)",
        358: "TIME_SHIFT(1000ms)",
        359: "VELOCITY(0)",
        390: "VELOCITY(31)",
    }
    assert {t: ev.token_name(t) for t in names} == names
    with pytest.raises(ValueError, match="token id 391 is outside the vocabulary of 391"):
        ev.token_name(391)


def test_duration_steps_by_hand():
    shift, vel = ev.TIME_SHIFT, ev.VELOCITY
    assert ev.duration_steps(np.array([shift])) == 1  # the shortest shift, 10 ms
    assert ev.duration_steps(np.array([shift + 99, shift + 4])) == 105
    assert ev.duration_steps(np.array([vel, vel + 31, ev.NOTE_ON + 60, ev.NOTE_OFF + 60])) == 0  # no shift at all
    assert ev.duration_steps(np.array([shift + 4, ev.EOS, shift + 9])) == 5  # stops at EOS
    assert ev.duration_steps(np.array([shift, ev.EOS, shift + 1, ev.EOS, shift + 2])) == 1  # at the first EOS
    assert ev.duration_steps(np.array([], dtype=np.int64)) == 0


def test_start_drops_every_note_struck_before_it():
    # integer rows (as a caller may build them): the note struck at `start` is kept and moves to 0; the one struck
    # before but still sounding at `start` is dropped like the one over before it
    notes = np.array([[0, 1, 60, 64], [1, 3, 61, 64], [2, 3, 62, 64]])
    names = [ev.token_name(t) for t in ev.notes_to_tokens(notes, start=2.0)]
    assert names == ["VELOCITY(15)", "NOTE_ON(62)", "TIME_SHIFT(1000ms)", "NOTE_OFF(62)"]


def test_no_notes_give_an_empty_int_stream():
    for toks in (ev.notes_to_tokens(np.zeros((0, 4))), ev.notes_to_tokens(np.array([[0.0, 1.0, 60, 64]]), start=5.0)):
        assert toks.shape == (0,) and toks.dtype == np.int64


def test_decoder_edges():
    # a key struck on the stream's last step sounds one step (10 ms); an id past the vocabulary (391) is ignored,
    # not read as a 33rd velocity bin
    assert ev.tokens_to_notes(np.array([ev.NOTE_ON + 60])).tolist() == [[0.0, 0.01, 60, 63]]
    toks = np.array([ev.VELOCITY + 7, ev.VOCAB_SIZE, ev.NOTE_ON + 60, ev.TIME_SHIFT, ev.NOTE_OFF + 60])
    assert ev.tokens_to_notes(toks).tolist() == [[0.0, 0.01, 60, 31]]  # bin 7: 1 + 4 * 7 + 2


def test_to_steps_are_integers_on_the_10ms_grid():
    steps = ev.to_steps(np.array([0.004, 0.126, 1.0, 7.234]))
    assert steps.dtype == np.int64 and steps.tolist() == [0, 13, 100, 723]


def test_notes_off_the_keyboard_or_not_finite_are_dropped():
    # keys 0..127 only, every field finite; a velocity past 127 is clipped (bin 31 reads back as 127), not dropped
    nan, inf = float("nan"), float("inf")
    notes = np.array(
        [
            [0.0, 0.5, -1, 64],
            [0.0, 0.5, 128, 64],
            [0.0, 0.5, 0, 200],
            [0.5, 1.0, 127, 64],
            [nan, 1.0, 60, 64],
            [1.0, inf, 61, 64],
        ]
    )
    assert ev.canonical_notes(notes).tolist() == [[0.0, 0.5, 0, 127], [0.5, 1.0, 127, 63]]


def test_canonical_rows_are_int64_and_bins_stand_for_whole_velocities():
    # by hand: 0.5 s is step 50 (100 steps a second); velocity 80 is bin (80 - 1) // 4 = 19, which stands for
    # 1 + 4 * 19 + 2 = 79; the top bin 31 for min(1 + 124 + 2, 127) = 127
    rows = ev._canonical_steps(np.array([[0.0, 0.5, 60, 80]]))
    assert rows.tolist() == [[0, 50, 60, 19]] and rows.dtype == np.int64
    empty = ev._canonical_steps(np.zeros((0, 4)))
    assert empty.shape == (0, 4) and empty.dtype == np.int64
    back = ev.bin_velocity(np.array([0, 19, 31]))
    assert back.tolist() == [3, 79, 127] and back.dtype.kind == "i"
