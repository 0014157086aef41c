"""events.key_state / valid_next against a plain per-token reading of the stream."""

from __future__ import annotations

import numpy as np

from w2m2w import events as ev


def reference_state(tokens: list[int]) -> np.ndarray:
    down: set[int] = set()
    rows = []
    for t in tokens:
        if ev.NOTE_ON <= t < ev.NOTE_OFF:
            down.add(t - ev.NOTE_ON)
        elif ev.NOTE_OFF <= t < ev.TIME_SHIFT:
            down.discard(t - ev.NOTE_OFF)
        elif t == ev.EOS:
            down.clear()
        row = np.zeros(ev.N_PITCHES, bool)
        row[list(down)] = True
        rows.append(row)
    return np.array(rows).reshape(-1, ev.N_PITCHES)


def test_hand_made_stream() -> None:
    on, off, shift = ev.NOTE_ON, ev.NOTE_OFF, ev.TIME_SHIFT
    toks = [on + 60, on + 64, shift + 9, off + 60, off + 70, shift, on + 60, off + 64]
    s = ev.key_state(np.array(toks))
    assert s.shape == (8, 128)
    assert [sorted(np.flatnonzero(r)) for r in s] == [[60], [60, 64], [60, 64], [64], [64], [64], [60, 64], [60]]


def test_matches_reference_on_random_streams() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        toks = rng.integers(0, ev.VOCAB_SIZE, size=300)
        toks[rng.random(300) < 0.5] = ev.NOTE_ON + rng.integers(50, 54, size=1)  # many hits on few keys
        np.testing.assert_array_equal(ev.key_state(toks), reference_state(toks.tolist()))


def test_real_notes_only_release_down_keys() -> None:
    notes = np.array([[0.0, 1.0, 60, 80], [0.5, 0.7, 60, 70], [0.2, 2.0, 64, 50]])  # a restrike of 60
    toks = ev.notes_to_tokens(notes)
    ok = ev.valid_next(toks)
    prev = np.concatenate([[np.ones(ev.VOCAB_SIZE, bool)], ok[:-1]])
    prev[0, ev.NOTE_OFF : ev.TIME_SHIFT] = False  # nothing is down before the first token
    assert all(prev[i, t] for i, t in enumerate(toks))  # every real event was allowed by the prefix before it
    assert not ok[-1, ev.NOTE_OFF : ev.TIME_SHIFT].any()  # all keys up at the end


def test_empty_and_row_shaped_streams() -> None:
    assert ev.key_state([]).shape == (0, ev.N_PITCHES) and ev.valid_next([]).shape == (0, ev.VOCAB_SIZE)
    toks = [ev.NOTE_ON + 60, ev.TIME_SHIFT, ev.NOTE_OFF + 60, ev.NOTE_ON + 62]
    np.testing.assert_array_equal(ev.key_state(np.array([toks])), reference_state(toks))  # a (1, T) row reads as (T,)


def test_valid_next_is_a_bool_mask() -> None:
    ok = ev.valid_next(np.array([ev.NOTE_ON + 60, ev.TIME_SHIFT]))
    assert ok.dtype == np.bool_ and ok.shape == (2, ev.VOCAB_SIZE)
    assert ok[:, ev.NOTE_OFF + 60].all() and ok.sum() == 2 * (ev.VOCAB_SIZE - ev.N_PITCHES + 1)
